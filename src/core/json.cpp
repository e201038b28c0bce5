#include "nnslim/core/json.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace nnslim {

double Json::num() const {
  TORCH_CHECK(type_ == Type::kNumber, "json: expected a number");
  return num_;
}
int64_t Json::integer() const {
  double v = num();
  TORCH_CHECK(v == std::floor(v) && std::fabs(v) < 9.0e15, "json: expected an integer, got ", v);
  return static_cast<int64_t>(v);
}
bool Json::boolean() const {
  TORCH_CHECK(type_ == Type::kBool, "json: expected true or false");
  return bool_;
}
const std::string& Json::str() const {
  TORCH_CHECK(type_ == Type::kString, "json: expected a string");
  return str_;
}
const std::vector<Json>& Json::items() const {
  TORCH_CHECK(type_ == Type::kArray, "json: expected an array");
  return arr_;
}
const std::vector<std::pair<std::string, Json>>& Json::fields() const {
  TORCH_CHECK(type_ == Type::kObject, "json: expected an object");
  return obj_;
}

Json& Json::set(const std::string& key, Json value) {
  TORCH_CHECK(type_ == Type::kObject, "json: set on a non-object");
  for (auto& kv : obj_)
    if (kv.first == key) return kv.second = std::move(value);
  obj_.emplace_back(key, std::move(value));
  return obj_.back().second;
}
const Json* Json::find(const std::string& key) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& kv : obj_)
    if (kv.first == key) return &kv.second;
  return nullptr;
}
const Json& Json::get(const std::string& key) const {
  const Json* j = find(key);
  TORCH_CHECK(j, "json: missing key '", key, "'");
  return *j;
}
Json& Json::push(Json value) {
  TORCH_CHECK(type_ == Type::kArray, "json: push on a non-array");
  arr_.push_back(std::move(value));
  return arr_.back();
}
size_t Json::size() const {
  return type_ == Type::kArray ? arr_.size() : type_ == Type::kObject ? obj_.size() : 0;
}

namespace {
void escape(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}
void newline(std::string& out, int indent, int depth) {
  if (indent < 0) return;
  out += '\n';
  out.append(static_cast<size_t>(indent * depth), ' ');
}
}  // namespace

void Json::dump_to(std::string& out, int indent, int depth) const {
  switch (type_) {
    case Type::kNull:
      out += "null";
      break;
    case Type::kBool:
      out += bool_ ? "true" : "false";
      break;
    case Type::kNumber: {
      if (!std::isfinite(num_)) {
        out += "null";
      } else if (num_ == std::floor(num_) && std::fabs(num_) < 1e15) {
        out += std::to_string(static_cast<int64_t>(num_));
      } else {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.10g", num_);
        out += buf;
      }
      break;
    }
    case Type::kString:
      escape(out, str_);
      break;
    case Type::kArray:
      out += '[';
      for (size_t i = 0; i < arr_.size(); ++i) {
        if (i) out += indent < 0 ? ", " : ",";
        newline(out, indent, depth + 1);
        arr_[i].dump_to(out, indent, depth + 1);
      }
      if (!arr_.empty()) newline(out, indent, depth);
      out += ']';
      break;
    case Type::kObject:
      out += '{';
      for (size_t i = 0; i < obj_.size(); ++i) {
        if (i) out += indent < 0 ? ", " : ",";
        newline(out, indent, depth + 1);
        escape(out, obj_[i].first);
        out += ": ";
        obj_[i].second.dump_to(out, indent, depth + 1);
      }
      if (!obj_.empty()) newline(out, indent, depth);
      out += '}';
      break;
  }
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  return out;
}

namespace {
struct Parser {
  const std::string& s;
  size_t i = 0;
  [[noreturn]] void fail(const char* what) {
    size_t line = 1;
    for (size_t k = 0; k < i && k < s.size(); ++k) line += s[k] == '\n';
    TORCH_CHECK(false, "json: ", what, " at line ", line, " (offset ", i, ")");
  }
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
  }
  bool eat(char c) {
    ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail((std::string("expected '") + c + "'").c_str());
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (i >= s.size()) fail("unterminated string");
      char c = s[i++];
      if (c == '"') break;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size()) fail("unterminated escape");
      char e = s[i++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          if (i + 4 > s.size()) fail("bad \\u escape");
          unsigned cp = std::strtoul(s.substr(i, 4).c_str(), nullptr, 16);
          i += 4;
          // UTF-8 encode (BMP only; enough for our files).
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default:
          fail("bad escape");
      }
    }
    return out;
  }
  Json value(int depth) {
    if (depth > 200) fail("nesting too deep");
    ws();
    if (i >= s.size()) fail("unexpected end");
    char c = s[i];
    if (c == '{') {
      ++i;
      Json o = Json::object();
      if (eat('}')) return o;
      do {
        ws();
        std::string k = string();
        expect(':');
        o.set(k, value(depth + 1));
      } while (eat(','));
      expect('}');
      return o;
    }
    if (c == '[') {
      ++i;
      Json a = Json::array();
      if (eat(']')) return a;
      do a.push(value(depth + 1));
      while (eat(','));
      expect(']');
      return a;
    }
    if (c == '"') return Json(string());
    if (s.compare(i, 4, "true") == 0) {
      i += 4;
      return Json(true);
    }
    if (s.compare(i, 5, "false") == 0) {
      i += 5;
      return Json(false);
    }
    if (s.compare(i, 4, "null") == 0) {
      i += 4;
      return Json();
    }
    const char* start = s.c_str() + i;
    char* end = nullptr;
    double v = std::strtod(start, &end);
    if (end == start) fail("unexpected character");
    i += static_cast<size_t>(end - start);
    return Json(v);
  }
};
}  // namespace

Json Json::parse(const std::string& text) {
  Parser p{text};
  Json v = p.value(0);
  p.ws();
  if (p.i != text.size()) p.fail("trailing characters");
  return v;
}

}  // namespace nnslim
