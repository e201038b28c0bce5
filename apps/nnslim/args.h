// A small command-line parser for the nnslim verbs: --flag, --option VALUE, --option=VALUE and
// positionals, typed values, --help text, and usage errors that name the flag.
#pragma once

#include "nnslim/core/error.h"

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace nnslim::cli {

// A mistake in how the command was called: main prints it with the verb, exit code 2 -- as it
// does the library's RequestError, of which it is one.
struct UsageError : RequestError {
  using RequestError::RequestError;
};

class ArgParser {
 public:
  ArgParser(std::string verb, std::string synopsis, std::string description);

  void flag(const std::string& name, bool* out, const std::string& help);
  void option(const std::string& name, std::string* out, const std::string& metavar,
              const std::string& help);
  void option(const std::string& name, int64_t* out, const std::string& metavar,
              const std::string& help);
  void option(const std::string& name, double* out, const std::string& metavar,
              const std::string& help);
  // An option whose text is parsed and read back by the caller's functions (the options
  // declared in a library table); set may throw RequestError naming the option.
  void custom(const std::string& name, const std::string& metavar, const std::string& help,
              bool is_flag, std::function<void(const std::string&)> set,
              std::function<std::string()> get);
  void positional(const std::string& name, std::string* out, const std::string& help,
                  bool required = true);
  // Every remaining positional argument (after the named ones) goes to `out`, e.g. "DIR...".
  void rest(const std::string& name, std::vector<std::string>* out, const std::string& help);
  // Adds a section heading to the help output before the next options.
  void section(const std::string& title);

  // Returns false when --help was requested (the help text is then printed to stdout).
  // Throws UsageError for unknown flags, missing values, bad values, missing positionals.
  bool parse(const std::vector<std::string>& args);
  bool given(const std::string& name) const { return given_.count(name) > 0; }
  const std::set<std::string>& given_names() const { return given_; }
  // Current values of every option (for checkpoints); flags as "true"/"false".
  std::map<std::string, std::string> values() const;
  // Sets options from such a map, except those given on the command line (for --resume).
  void apply(const std::map<std::string, std::string>& values);
  std::string help() const;
  const std::string& synopsis() const { return synopsis_; }

 private:
  struct Entry {
    std::string name, metavar, help, section;
    bool is_flag = false;
    std::function<void(const std::string&)> set;
    std::function<std::string()> get;
  };
  Entry entry(const std::string& name, const std::string& metavar, const std::string& help,
              bool is_flag) const;  // in the current section
  Entry* find(const std::string& name);
  std::string verb_, synopsis_, description_, current_section_;
  std::vector<Entry> options_;
  struct Pos {
    std::string name, help;
    std::string* out;
    bool required;
  };
  std::vector<Pos> positionals_;
  std::vector<std::string>* rest_ = nullptr;
  std::string rest_name_, rest_help_;
  std::set<std::string> given_;
};

// Parses "3x32x32" into {3, 32, 32}. Throws UsageError naming `flag`.
std::vector<int64_t> parse_shape(const std::string& s, const std::string& flag);

}  // namespace nnslim::cli
