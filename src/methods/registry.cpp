#include "nnslim/methods/registry.h"

#include "nnslim/methods/adapruner.h"
#include "nnslim/methods/grda.h"
#include "nnslim/methods/hspg.h"
#include "nnslim/methods/magnitude.h"
#include "nnslim/methods/obproxsg.h"
#include "nnslim/methods/trp.h"
#include "nnslim/methods/unify.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <sstream>

namespace nnslim {

// ---- the table: one line per method, in the order `nnslim compress --help` lists them ------
const std::vector<MethodInfo>& method_registry() {
  static const std::vector<MethodInfo> table = {
      {"magnitude", "criterion-based channel pruning (l1, l2, bn, fpgm, taylor, random)",
       MagnitudePruning::option_list(), MagnitudePruning::create},
      {"adapruner", "BN-scale widths, bisection to a MAC budget, adaptive weight inheritance",
       AdaPruner::option_list(), AdaPruner::create},
      trp_method_info(),
      grda_method_info(),
      hspg_method_info(),
      obproxsg_method_info(),
      unify_method_info(),
  };
  return table;
}

// ---- lookup and configuration ------------------------------------------------------------------

namespace {
std::string known_methods() {
  std::string s;
  for (const auto& m : method_registry()) s += (s.empty() ? "" : ", ") + m.name;
  return s.empty() ? "none yet" : s;
}
}  // namespace

const MethodInfo& find_method(const std::string& name) {
  for (const auto& m : method_registry())
    if (m.name == name) return m;
  TORCH_CHECK(false, "unknown method '", name, "' (known: ", known_methods(), ")");
}

MethodConfig::MethodConfig(std::string method, const std::vector<MethodOption>& options,
                           const std::map<std::string, std::string>& values)
    : method_(std::move(method)) {
  for (const auto& o : options) values_[o.key] = o.default_value;
  for (const auto& kv : values) {
    bool known = false;
    for (const auto& o : options) known |= o.key == kv.first;
    if (!known) {
      std::string keys;
      for (const auto& o : options) keys += (keys.empty() ? "" : ", ") + o.key;
      TORCH_CHECK(false, method_, ": unknown option '", kv.first,
                  "' (options: ", keys.empty() ? "none" : keys, ")");
    }
    values_[kv.first] = kv.second;
  }
}

std::string MethodConfig::str(const std::string& key) const {
  auto it = values_.find(key);
  TORCH_INTERNAL_ASSERT(it != values_.end(), method_, ": option '", key, "' is not declared");
  return it->second;
}

bool MethodConfig::has(const std::string& key) const {
  auto it = values_.find(key);
  return it != values_.end() && !it->second.empty();
}

double MethodConfig::number(const std::string& key) const {
  std::string v = str(key);
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  TORCH_CHECK(!v.empty() && *end == '\0' && std::isfinite(x), method_, ": option '", key,
              "' expects a number, got '", v, "'");
  return x;
}

int64_t MethodConfig::integer(const std::string& key) const {
  std::string v = str(key);
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  TORCH_CHECK(!v.empty() && *end == '\0', method_, ": option '", key, "' expects an integer, got '",
              v, "'");
  return x;
}

bool MethodConfig::flag(const std::string& key) const {
  std::string v = str(key);
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0" || v.empty()) return false;
  TORCH_CHECK(false, method_, ": option '", key, "' expects true or false, got '", v, "'");
}

std::optional<int64_t> MethodConfig::optional_integer(const std::string& key,
                                                      int64_t minimum) const {
  if (!has(key)) return std::nullopt;
  int64_t v = integer(key);
  TORCH_CHECK(v >= minimum, method_, ": ", key, " must be >= ", minimum, ", got ", v);
  return v;
}

std::vector<std::string> MethodConfig::names(const std::string& key) const {
  std::vector<std::string> out;
  std::stringstream ss(str(key));
  for (std::string item; std::getline(ss, item, ',');) {
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

std::set<std::string> MethodConfig::name_set(const std::string& key) const {
  auto v = names(key);
  return {v.begin(), v.end()};
}

std::string option_text(double value) {
  std::string text;
  for (int precision = 1; precision <= 17; ++precision) {
    std::ostringstream os;
    os << std::setprecision(precision) << value;
    text = os.str();
    if (std::strtod(text.c_str(), nullptr) == value) break;
  }
  // "1e-05" -> "1e-5", as people write it.
  auto e = text.find('e');
  if (e != std::string::npos) {
    size_t digits = e + 1 + (text[e + 1] == '-' || text[e + 1] == '+');
    while (digits + 1 < text.size() && text[digits] == '0') text.erase(digits, 1);
    if (text[e + 1] == '+') text.erase(e + 1, 1);
  }
  return text;
}

std::string option_text(bool value) { return value ? "true" : "false"; }

void check_nodes_exist(const Graph& g, const std::set<std::string>& names, const char* method) {
  for (const auto& name : names)
    TORCH_CHECK(g.find(name), method, ": --exclude names unknown node '", name, "'");
}

std::shared_ptr<Method> create_method(const std::string& name,
                                      const std::map<std::string, std::string>& values) {
  const MethodInfo& info = find_method(name);
  return info.create(MethodConfig(name, info.options, values));
}

}  // namespace nnslim
