#include "args.h"

#include "nnslim/train/settings.h"

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace nnslim::cli {

ArgParser::ArgParser(std::string verb, std::string synopsis, std::string description)
    : verb_(std::move(verb)),
      synopsis_(std::move(synopsis)),
      description_(std::move(description)) {}

void ArgParser::section(const std::string& title) { current_section_ = title; }

ArgParser::Entry ArgParser::entry(const std::string& name, const std::string& metavar,
                                  const std::string& help, bool is_flag) const {
  Entry e;
  e.name = name;
  e.metavar = metavar;
  e.help = help;
  e.section = current_section_;
  e.is_flag = is_flag;
  return e;
}

void ArgParser::flag(const std::string& name, bool* out, const std::string& help) {
  Entry e = entry(name, "", help, true);
  e.set = [out, name](const std::string& v) {
    if (v == "true" || v == "1")
      *out = true;
    else if (v == "false" || v == "0")
      *out = false;
    else
      throw UsageError("--" + name + " takes no value (got '" + v + "')");
  };
  e.get = [out] { return std::string(*out ? "true" : "false"); };
  options_.push_back(std::move(e));
}

void ArgParser::option(const std::string& name, std::string* out, const std::string& metavar,
                       const std::string& help) {
  Entry e = entry(name, metavar, help, false);
  e.set = [out](const std::string& v) { *out = v; };
  e.get = [out] { return *out; };
  options_.push_back(std::move(e));
}

void ArgParser::option(const std::string& name, int64_t* out, const std::string& metavar,
                       const std::string& help) {
  Entry e = entry(name, metavar, help, false);
  e.set = [out, name](const std::string& v) {
    char* end = nullptr;
    errno = 0;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE)
      throw UsageError("--" + name + " expects an integer, got '" + v + "'");
    *out = x;
  };
  e.get = [out] { return std::to_string(*out); };
  options_.push_back(std::move(e));
}

void ArgParser::option(const std::string& name, double* out, const std::string& metavar,
                       const std::string& help) {
  Entry e = entry(name, metavar, help, false);
  e.set = [out, name](const std::string& v) {
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(x))
      throw UsageError("--" + name + " expects a number, got '" + v + "'");
    *out = x;
  };
  e.get = [out] { return number_text(*out); };  // 0.1, not 0.10000000000000001
  options_.push_back(std::move(e));
}

void ArgParser::custom(const std::string& name, const std::string& metavar, const std::string& help,
                       bool is_flag, std::function<void(const std::string&)> set,
                       std::function<std::string()> get) {
  Entry e = entry(name, is_flag ? "" : metavar, help, is_flag);
  e.set = std::move(set);
  e.get = std::move(get);
  options_.push_back(std::move(e));
}

void ArgParser::positional(const std::string& name, std::string* out, const std::string& help,
                           bool required) {
  positionals_.push_back({name, help, out, required});
}

void ArgParser::rest(const std::string& name, std::vector<std::string>* out,
                     const std::string& help) {
  rest_ = out;
  rest_name_ = name;
  rest_help_ = help;
}

ArgParser::Entry* ArgParser::find(const std::string& name) {
  for (auto& e : options_)
    if (e.name == name) return &e;
  return nullptr;
}

bool ArgParser::parse(const std::vector<std::string>& args) {
  size_t next_pos = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << help();
      return false;
    }
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2), value;
      bool inline_value = false;
      auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_value = true;
      }
      Entry* e = find(name);
      if (!e) throw UsageError("unknown option --" + name + " (see 'nnslim " + verb_ + " --help')");
      if (e->is_flag) {
        e->set(inline_value ? value : "true");
      } else {
        if (!inline_value) {
          if (i + 1 >= args.size()) throw UsageError("--" + name + " needs a value");
          // "--epochs --lr 0.1": the value was forgotten; do not swallow the next option.
          if (args[i + 1].rfind("--", 0) == 0 && args[i + 1].size() > 2)
            throw UsageError("--" + name + " needs a value (got the option " + args[i + 1] + ")");
          value = args[++i];
        }
        e->set(value);
      }
      given_.insert(name);
      continue;
    }
    if (next_pos >= positionals_.size() && rest_) {
      rest_->push_back(a);
      continue;
    }
    if (next_pos >= positionals_.size())
      throw UsageError("unexpected argument '" + a + "' (see 'nnslim " + verb_ + " --help')");
    *positionals_[next_pos++].out = a;
  }
  for (size_t k = next_pos; k < positionals_.size(); ++k)
    if (positionals_[k].required) throw UsageError("missing " + positionals_[k].name);
  return true;
}

std::map<std::string, std::string> ArgParser::values() const {
  std::map<std::string, std::string> m;
  for (const auto& e : options_) m[e.name] = e.get();
  return m;
}

void ArgParser::apply(const std::map<std::string, std::string>& values) {
  for (const auto& kv : values) {
    Entry* e = find(kv.first);
    if (e && !given(kv.first)) e->set(kv.second);
  }
}

std::string ArgParser::help() const {
  std::ostringstream os;
  os << "usage: " << synopsis_ << "\n\n" << description_ << "\n";
  if (!positionals_.empty() || rest_) {
    os << "\narguments:\n";
    auto row = [&](const std::string& name, const std::string& help) {
      std::string left = "  " + name;
      os << left << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << help << "\n";
    };
    for (const auto& p : positionals_) row(p.name, p.help);
    if (rest_) row(rest_name_ + "...", rest_help_);
  }
  std::string section = "\x01";
  for (const auto& e : options_) {
    if (e.section != section) {
      section = e.section;
      os << "\n" << (section.empty() ? "options" : section) << ":\n";
    }
    std::string left = "  --" + e.name + (e.metavar.empty() ? "" : " " + e.metavar);
    std::string def = e.is_flag ? "" : e.get();
    std::string text = e.help;
    if (!e.is_flag && !def.empty() && text.find("(default") == std::string::npos)
      text += " (default " + def + ")";
    os << left << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << text << "\n";
  }
  os << "  --help                    show this help\n";
  return os.str();
}

std::vector<int64_t> parse_shape(const std::string& s, const std::string& flag) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, 'x')) {
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 1)
      throw UsageError("--" + flag + " expects CxHxW with positive integers (e.g. 1x32x32), got '" +
                       s + "'");
    out.push_back(v);
  }
  if (out.size() != 3)
    throw UsageError("--" + flag + " expects CxHxW (e.g. 1x32x32), got '" + s + "'");
  return out;
}

}  // namespace nnslim::cli
