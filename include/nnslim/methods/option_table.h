// A method's options declared once: each entry binds a key ("prox-epochs", the CLI flag
// --prox-epochs and the recipe key) to a field of the method's options struct, with its help.
// From the table come the registry's option list (the defaults are the struct's initial
// values, as text), the parsing of a MethodConfig into the struct, and the options part of
// describe() (each key with '-' as '_': "prox_epochs").
#pragma once

#include "nnslim/core/json.h"
#include "nnslim/methods/registry.h"

#include <c10/util/Exception.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// The accessor of a field of the options struct, for an OptionTable entry:
//   table.number("lambda", NNSLIM_FIELD(lambda), "group-lasso weight")
#define NNSLIM_FIELD(member) \
  [](auto& o) -> auto& { return o.member; }

namespace nnslim {

template <typename Options>
class OptionTable {
 public:
  explicit OptionTable(std::string method) : method_(std::move(method)) {}

  template <typename Get>  // Get: NNSLIM_FIELD(member) of type double
  OptionTable& number(const std::string& key, Get get, std::string help) {
    return add(
        key, option_text(get(defaults())), std::move(help),
        [key, get](const MethodConfig& c, Options& o) { get(o) = c.number(key); },
        [get](const Options& o) { return Json(get(o)); });
  }
  template <typename Get>  // Get: NNSLIM_FIELD(member) of type int64_t
  OptionTable& integer(const std::string& key, Get get, std::string help) {
    return add(
        key, std::to_string(get(defaults())), std::move(help),
        [key, get](const MethodConfig& c, Options& o) { get(o) = c.integer(key); },
        [get](const Options& o) { return Json(get(o)); });
  }
  template <typename Get>  // Get: NNSLIM_FIELD(member) of type bool
  OptionTable& flag(const std::string& key, Get get, std::string help) {
    return add(
        key, option_text(get(defaults())), std::move(help),
        [key, get](const MethodConfig& c, Options& o) { get(o) = c.flag(key); },
        [get](const Options& o) { return Json(get(o)); });
  }
  template <typename Get>  // Get: NNSLIM_FIELD(member) of type std::string
  OptionTable& text(const std::string& key, Get get, std::string help) {
    return add(
        key, get(defaults()), std::move(help),
        [key, get](const MethodConfig& c, Options& o) { get(o) = c.str(key); },
        [get](const Options& o) { return Json(get(o)); });
  }
  // std::optional<int64_t>: unset by default; a value must be >= minimum.
  template <typename Get>
  OptionTable& optional_integer(const std::string& key, Get get, int64_t minimum,
                                std::string help) {
    return add(
        key, "", std::move(help),
        [key, get, minimum](const MethodConfig& c, Options& o) {
          get(o) = c.optional_integer(key, minimum);
        },
        [get](const Options& o) {
          const auto& v = get(o);
          return v ? Json(*v) : Json();
        });
  }
  // std::optional<double>: unset by default (the options' validate() checks its range).
  template <typename Get>
  OptionTable& optional_number(const std::string& key, Get get, std::string help) {
    return add(
        key, "", std::move(help),
        [key, get](const MethodConfig& c, Options& o) {
          if (c.has(key)) get(o) = c.number(key);
        },
        [get](const Options& o) {
          const auto& v = get(o);
          return v ? Json(*v) : Json();
        });
  }
  // A comma-separated list of names into a std::set or std::vector of strings.
  template <typename Get>
  OptionTable& names(const std::string& key, Get get, std::string help) {
    return add(
        key, "", std::move(help),
        [key, get](const MethodConfig& c, Options& o) {
          auto v = c.names(key);
          using Field = std::decay_t<decltype(get(o))>;  // std::set or std::vector
          get(o) = Field(v.begin(), v.end());
        },
        [get](const Options& o) {
          const auto& v = get(o);
          return Json::array_of(std::vector<std::string>(v.begin(), v.end()));
        });
  }
  // One of a fixed list of names, each standing for a value of the field.
  template <typename Get, typename T>
  OptionTable& choice(const std::string& key, Get get, std::vector<std::pair<std::string, T>> names,
                      std::string help) {
    std::string default_name;
    for (const auto& [n, v] : names)
      if (v == get(defaults())) default_name = n;
    TORCH_INTERNAL_ASSERT(!default_name.empty(), method_, ": the default of ", key, " has no name");
    const std::string method = method_;
    return add(
        key, default_name, std::move(help),
        [key, get, names, method](const MethodConfig& c, Options& o) {
          const std::string given = c.str(key);
          std::string list;
          for (size_t i = 0; i < names.size(); ++i) {
            if (names[i].first == given) {
              get(o) = names[i].second;
              return;
            }
            list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i].first;
          }
          TORCH_CHECK(false, method, ": ", key, " must be ", list, ", got '", given, "'");
        },
        [get, names](const Options& o) {
          for (const auto& [n, v] : names)
            if (v == get(o)) return Json(n);
          return Json();
        });
  }

  // Any other field type: its default text, how to read it and how to report it.
  OptionTable& custom(const std::string& key, std::string default_text, std::string help,
                      std::function<void(const MethodConfig&, Options&)> read,
                      std::function<Json(const Options&)> describe) {
    return add(key, std::move(default_text), std::move(help), std::move(read), std::move(describe));
  }

  // The registry's list: key, default text, help (in table order).
  std::vector<MethodOption> options() const {
    std::vector<MethodOption> out;
    for (const auto& e : entries_) out.push_back(e.option);
    return out;
  }
  // The options a config asks for (fields it leaves unset keep the struct's defaults).
  Options read(const MethodConfig& c) const {
    Options o;
    for (const auto& e : entries_) e.read(c, o);
    return o;
  }
  // Every option into `out` under its key with '_' for '-' (unset optionals: null).
  void describe(const Options& o, Json& out) const {
    for (const auto& e : entries_) {
      std::string k = e.option.key;
      for (char& ch : k)
        if (ch == '-') ch = '_';
      out.set(k, e.describe(o));
    }
  }

 private:
  struct Entry {
    MethodOption option;
    std::function<void(const MethodConfig&, Options&)> read;
    std::function<Json(const Options&)> describe;
  };
  static const Options& defaults() {
    static const Options d;
    return d;
  }
  OptionTable& add(const std::string& key, std::string default_text, std::string help,
                   std::function<void(const MethodConfig&, Options&)> read,
                   std::function<Json(const Options&)> describe) {
    entries_.push_back(
        {{key, std::move(default_text), std::move(help)}, std::move(read), std::move(describe)});
    return *this;
  }
  std::string method_;
  std::vector<Entry> entries_;
};

}  // namespace nnslim
