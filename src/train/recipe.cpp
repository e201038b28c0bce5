#include "nnslim/train/recipe.h"

#include "nnslim/core/error.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/methods/registry.h"
#include "nnslim/train/run_dir.h"

#include <c10/util/Exception.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>

namespace nnslim {

namespace {

namespace fs = std::filesystem;

// ---- parsing ----------------------------------------------------------------------------------

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// Strips a trailing comment that is not inside a string.
std::string strip_comment(const std::string& s) {
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '"') in_string = !in_string;
    if (s[i] == '#' && !in_string) return s.substr(0, i);
  }
  return s;
}

std::string parse_value(const std::string& raw, const std::string& where) {
  if (raw.empty()) throw RequestError(where + ": missing value");
  if (raw.front() == '"') {
    if (raw.size() < 2 || raw.back() != '"' || raw.find('"', 1) != raw.size() - 1)
      throw RequestError(where + ": unterminated or malformed string " + raw);
    return raw.substr(1, raw.size() - 2);
  }
  if (raw == "true" || raw == "false") return raw;
  char* end = nullptr;
  std::strtod(raw.c_str(), &end);
  if (*end != '\0')
    throw RequestError(where + ": value must be a number, true/false or a \"string\", got " + raw);
  return raw;
}

// Keys that belong to the whole recipe (given on the command line), not to a stage.
const std::set<std::string> kNotInStages = {"model", "out", "force", "recipe", "resume", "check"};

// ---- stages -----------------------------------------------------------------------------------

// Whether an error message names the option `key` ("--target-macs 1.5", "target-macs must be",
// "'target-macs'"), as a whole word: "lr" is not named by "--finetune-lr".
bool mentions_key(const std::string& msg, const std::string& key) {
  auto word_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  };
  for (size_t at = msg.find(key); at != std::string::npos; at = msg.find(key, at + 1)) {
    size_t begin = at;
    while (begin > 0 && msg[begin - 1] == '-' && at - begin < 2) --begin;  // "--key"
    const bool starts = begin == 0 || !word_char(msg[begin - 1]);
    const bool ends = at + key.size() == msg.size() || !word_char(msg[at + key.size()]);
    if (starts && ends) return true;
  }
  return false;
}

std::string stage_dir(const std::string& out, size_t i, const RecipeStage& st) {
  return out + "/" + std::to_string(i + 1) + "-" + st.method;
}

// The stages as parsed, one line each (comments and layout may change between a run and its
// --resume; the stages may not).
Json stage_list(const Recipe& recipe) {
  Json list = Json::array();
  for (const auto& st : recipe.stages) {
    std::string line = st.method + " --method=" + st.method;
    for (const auto& k : st.keys) line += " --" + k.key + "=" + k.value;
    list.push(Json(line));
  }
  return list;
}

// A finished stage: its summary and a readable model (a damaged one is run again).
bool stage_done(const std::string& dir, size_t i, std::ostream* log) {
  if (!fs::exists(dir + "/summary.json") || !fs::exists(dir + "/model.nnslim")) return false;
  const std::string problem = model_file_problem(dir + "/model.nnslim");
  if (!problem.empty() && log)
    *log << "== stage " << i + 1 << ": " << dir << "/model.nnslim is unreadable (" << problem
         << "); running the stage again\n";
  return problem.empty();
}

// OUT/model.nnslim (and the compact unified file) from the last stage, replaced atomically.
void copy_final_model(const std::string& input, const std::string& out) {
  fs::copy_file(input, out + "/model.nnslim.tmp", fs::copy_options::overwrite_existing);
  fs::rename(out + "/model.nnslim.tmp", out + "/model.nnslim");
  fs::path unified = fs::path(input).parent_path() / "model.unified.nnslim";
  if (fs::exists(unified))
    fs::copy_file(unified, fs::path(out) / "model.unified.nnslim",
                  fs::copy_options::overwrite_existing);
}

Json recipe_summary(const Recipe& recipe, const std::string& model, const Json& stages) {
  const Json& first = stages.items().front();
  const Json& last = stages.items().back();
  Json s = Json::object();
  std::string methods;
  for (const auto& st : recipe.stages) methods += (methods.empty() ? "" : "+") + st.method;
  s.set("method", methods);
  s.set("recipe", recipe.path);
  s.set("input_model", model);
  s.set("model", last.has("model") ? last.get("model") : Json(""));
  s.set("dataset", last.has("dataset") ? last.get("dataset") : Json(""));
  s.set("before", first.get("before"));
  s.set("after", last.get("after"));
  double b = first.get("before").get("macs").num(), a = last.get("after").get("macs").num();
  s.set("macs_ratio", a > 0 ? b / a : 0.0);
  b = first.get("before").get("params").num();
  a = last.get("after").get("params").num();
  s.set("params_ratio", a > 0 ? b / a : 0.0);
  s.set("stages", stages);
  return s;
}

}  // namespace

Recipe parse_recipe(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw RequestError("cannot open recipe '" + path + "'");
  Recipe recipe{path, {}};
  auto& stages = recipe.stages;
  std::vector<RecipeKey> shared;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    std::string where = path + ":" + std::to_string(n);
    std::string s = trim(strip_comment(line));
    if (s.empty()) continue;
    if (s == "[[stage]]") {
      stages.push_back({n, n, "", shared});
      continue;
    }
    if (s.front() == '[')
      throw RequestError(where + ": unknown table " + s + " (only [[stage]] exists)");
    auto eq = s.find('=');
    if (eq == std::string::npos)
      throw RequestError(where + ": expected 'key = value', got '" + s + "'");
    std::string key = trim(s.substr(0, eq)), value = parse_value(trim(s.substr(eq + 1)), where);
    if (key.empty() || key.find_first_of(" \t\"") != std::string::npos)
      throw RequestError(where + ": bad key '" + key + "'");
    if (kNotInStages.count(key))
      throw RequestError(where + ": '" + key + "' belongs on the command line, not in a recipe");
    if (key == "method") {
      if (stages.empty()) throw RequestError(where + ": 'method' must be inside a [[stage]]");
      if (!stages.back().method.empty()) throw RequestError(where + ": a stage has one method");
      stages.back().method = value;
      stages.back().method_line = n;
      continue;
    }
    auto& keys = stages.empty() ? shared : stages.back().keys;
    for (const auto& k : keys)
      if (k.key == key && k.line != 0 && (stages.empty() || k.line > stages.back().line))
        throw RequestError(where + ": '" + key + "' is set twice (line " + std::to_string(k.line) +
                           ")");
    keys.push_back({key, value, n});
  }
  if (stages.empty()) throw RequestError(path + ": the recipe has no [[stage]]");
  for (const auto& st : stages)
    if (st.method.empty())
      throw RequestError(path + ":" + std::to_string(st.line) + ": the stage has no 'method'");
  return recipe;
}

CompressRun stage_run(const Recipe& recipe, size_t i, CompressJob base) {
  const RecipeStage& st = recipe.stages.at(i);
  auto fail = [&](int line, const std::string& what) {
    return RequestError(recipe.path + ":" + std::to_string(line) + ": stage " +
                        std::to_string(i + 1) + " (" + st.method + "): " + what);
  };
  try {
    find_method(st.method);
  } catch (const c10::Error& e) {
    throw RequestError(recipe.path + ":" + std::to_string(st.method_line) + ": stage " +
                       std::to_string(i + 1) + ": " + e.what_without_backtrace());
  }
  base.method = st.method;
  for (const auto& k : st.keys) {
    if (const RunOption* o = find_run_option(k.key)) {
      try {
        o->set(base.settings, k.value);
      } catch (const RequestError& e) {
        throw fail(k.line, e.what());
      }
      base.given.insert(k.key);
    } else {
      base.method_options[k.key] = k.value;  // the method checks its own keys
    }
  }
  try {
    return CompressRun(std::move(base));
  } catch (const RequestError& e) {
    const std::string msg = e.what();
    int line = st.line;
    for (const auto& k : st.keys)
      if (mentions_key(msg, k.key)) line = k.line;
    throw fail(line, msg);
  }
}

void check_recipe(const Recipe& recipe, const CompressJob& base) {
  CompressRun first = stage_run(recipe, 0, base);
  for (size_t i = 1; i < recipe.stages.size(); ++i) stage_run(recipe, i, base);
  first.prepare();  // the output directory, the input model and the dataset
}

Json run_recipe(const Recipe& recipe, const CompressJob& base, std::ostream* log) {
  const std::string& out = base.out_dir;
  check_recipe(recipe, base);
  create_out_dir(out);
  // The recipe's stages and input model: a resume with another recipe or model would reuse
  // stages that belong to a different run.
  Json identity = Json::object();
  identity.set("recipe", stage_list(recipe));
  identity.set("input_model", base.input_model);
  identity.set("input_fingerprint", file_fingerprint(base.input_model));
  check_or_record_run(out, identity, base.resume, base.notes);

  const size_t n = recipe.stages.size();
  std::string input = base.input_model;
  Json summaries = Json::array();
  for (size_t i = 0; i < n; ++i) {
    const RecipeStage& st = recipe.stages[i];
    const std::string dir = stage_dir(out, i, st);
    if (base.resume && stage_done(dir, i, log)) {
      if (log)
        *log << "== stage " << i + 1 << "/" << n << " (" << st.method << ") already done in " << dir
             << "\n";
    } else {
      if (log) *log << "== stage " << i + 1 << "/" << n << ": " << st.method << "\n" << std::flush;
      CompressJob job = base;
      job.input_model = input;
      job.out_dir = dir;
      // An interrupted stage continues from its checkpoints; a new one starts clean.
      job.force = !base.resume;
      CompressRun run = stage_run(recipe, i, job);
      if (base.notes)
        for (const auto& note : run.ineffective_options()) *base.notes << "note: " << note << "\n";
      run.run();
    }
    Json s = read_json_file(dir + "/summary.json");
    s.set("stage", static_cast<int64_t>(i + 1));
    summaries.push(s);
    input = dir + "/model.nnslim";
  }
  copy_final_model(input, out);
  Json summary = recipe_summary(recipe, base.input_model, summaries);
  write_file_atomic(out + "/summary.json", summary.dump(2) + "\n");
  return summary;
}

}  // namespace nnslim
