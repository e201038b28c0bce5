// A small JSON value: enough to write summary.json / metrics.jsonl and to read them back
// (reports, recipes). Objects keep their keys in insertion order so output is stable.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace nnslim {

class Json {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::kBool), bool_(b) {}
  Json(int v) : type_(Type::kNumber), num_(v) {}
  Json(int64_t v) : type_(Type::kNumber), num_(static_cast<double>(v)) {}
  Json(uint64_t v) : type_(Type::kNumber), num_(static_cast<double>(v)) {}
  Json(double v) : type_(Type::kNumber), num_(v) {}
  Json(const char* s) : type_(Type::kString), str_(s) {}
  Json(std::string s) : type_(Type::kString), str_(std::move(s)) {}
  static Json array() {
    Json j;
    j.type_ = Type::kArray;
    return j;
  }
  static Json object() {
    Json j;
    j.type_ = Type::kObject;
    return j;
  }
  template <typename T>
  static Json array_of(const std::vector<T>& v) {
    Json j = array();
    for (const auto& x : v) j.push(Json(x));
    return j;
  }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_object() const { return type_ == Type::kObject; }
  bool is_array() const { return type_ == Type::kArray; }

  // Accessors throw c10::Error on a type mismatch.
  double num() const;
  int64_t integer() const;
  bool boolean() const;
  const std::string& str() const;
  const std::vector<Json>& items() const;
  const std::vector<std::pair<std::string, Json>>& fields() const;

  // Object access: set (insert or replace), get (throws if absent), has, find (nullptr if absent).
  Json& set(const std::string& key, Json value);
  const Json& get(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  const Json* find(const std::string& key) const;
  Json& push(Json value);  // arrays
  size_t size() const;

  // Compact (indent < 0) or pretty output. Non-finite numbers are written as null.
  std::string dump(int indent = -1) const;
  // Throws c10::Error with the position of the problem.
  static Json parse(const std::string& text);

 private:
  void dump_to(std::string& out, int indent, int depth) const;
  Type type_ = Type::kNull;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;
};

}  // namespace nnslim
