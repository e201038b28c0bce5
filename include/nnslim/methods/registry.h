// The one table of compression methods (src/methods/registry.cpp). Each method declares its
// options (key, default, help) so the CLI can offer them as flags and recipes can validate them
// before any training starts. An unknown method or option is an error that lists the known ones.
#pragma once

#include "nnslim/methods/method.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace nnslim {

struct MethodOption {
  std::string key;            // e.g. "lambda"; the CLI flag is --<key>
  std::string default_value;  // as text; "" = no default (optional)
  std::string help;
};

// Option values of one method, checked against its MethodOption list.
class MethodConfig {
 public:
  MethodConfig(std::string method, const std::vector<MethodOption>& options,
               const std::map<std::string, std::string>& values);
  const std::string& method() const { return method_; }
  std::string str(const std::string& key) const;
  double number(const std::string& key) const;  // throws naming method and key if not a number
  int64_t integer(const std::string& key) const;
  bool flag(const std::string& key) const;  // "true"/"false"/"1"/"0"
  bool has(const std::string& key) const;   // a non-empty value is set
  // An integer >= minimum, or nullopt when the option is unset (its default is "").
  std::optional<int64_t> optional_integer(const std::string& key, int64_t minimum) const;
  // A comma-separated list of names ("a, b,c"): trimmed, empty items dropped, in order.
  std::vector<std::string> names(const std::string& key) const;
  std::set<std::string> name_set(const std::string& key) const;
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::string method_;
  std::map<std::string, std::string> values_;
};

struct MethodInfo {
  std::string name;
  std::string summary;
  std::vector<MethodOption> options;
  std::function<std::shared_ptr<Method>(const MethodConfig&)> create;
};

// A default value as option text: the shortest text that reads back as the same number, so a
// method's option table can take its defaults from its options struct (one place for each).
std::string option_text(double value);
std::string option_text(bool value);

// Throws "<method>: --exclude names unknown node 'X'" for a name the graph does not have.
void check_nodes_exist(const Graph& g, const std::set<std::string>& names, const char* method);

const std::vector<MethodInfo>& method_registry();
// Throws c10::Error listing the known names.
const MethodInfo& find_method(const std::string& name);
// Builds a validated config and the method; unknown keys throw, listing the method's options.
std::shared_ptr<Method> create_method(const std::string& name,
                                      const std::map<std::string, std::string>& values);

}  // namespace nnslim
