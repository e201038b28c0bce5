#include "recipe.h"

#include "common.h"

#include "nnslim/report/json.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace nnslim::cli {

int cmd_compress(const std::vector<std::string>& args);

namespace {

namespace fs = std::filesystem;

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
  if (raw.empty()) throw UsageError(where + ": missing value");
  if (raw.front() == '"') {
    if (raw.size() < 2 || raw.back() != '"' || raw.find('"', 1) != raw.size() - 1)
      throw UsageError(where + ": unterminated or malformed string " + raw);
    return raw.substr(1, raw.size() - 2);
  }
  if (raw == "true" || raw == "false") return raw;
  char* end = nullptr;
  std::strtod(raw.c_str(), &end);
  if (*end != '\0') throw UsageError(where + ": value must be a number, true/false or a \"string\", got " + raw);
  return raw;
}

// Keys that belong to the whole recipe (given on the command line), not to a stage.
const std::set<std::string> kNotInStages = {"model", "out", "force", "recipe", "resume", "check"};

std::string arg_value(const std::vector<std::string>& args, const std::string& key) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--" + key && i + 1 < args.size()) return args[i + 1];
    if (args[i].rfind("--" + key + "=", 0) == 0) return args[i].substr(key.size() + 3);
  }
  return "";
}

bool has_flag(const std::vector<std::string>& args, const std::string& key) {
  for (const auto& a : args)
    if (a == "--" + key || a == "--" + key + "=true") return true;
  return false;
}

// The command line minus the recipe-level options: what every stage inherits.
std::vector<std::string> common_args(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string key = a.rfind("--", 0) == 0 ? a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2) : "";
    if (kNotInStages.count(key)) {
      bool takes_value = key != "force" && key != "resume" && key != "check";
      if (takes_value && a.find('=') == std::string::npos) ++i;
      continue;
    }
    out.push_back(a);
  }
  return out;
}

// Whether an error message names the option `key` ("--target-macs 1.5", "target-macs must be",
// "'target-macs'"), as a whole word: "lr" is not named by "--finetune-lr".
bool mentions_key(const std::string& msg, const std::string& key) {
  auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; };
  for (size_t at = msg.find(key); at != std::string::npos; at = msg.find(key, at + 1)) {
    size_t begin = at;
    while (begin > 0 && msg[begin - 1] == '-' && at - begin < 2) --begin;  // "--key"
    const bool starts = begin == 0 || !word_char(msg[begin - 1]);
    const bool ends = at + key.size() == msg.size() || !word_char(msg[at + key.size()]);
    if (starts && ends) return true;
  }
  return false;
}

// Silences note_ineffective_options for its lifetime (also when a stage's check throws).
struct NotesOff {
  NotesOff() { g_print_notes = false; }
  ~NotesOff() { g_print_notes = true; }
};

}  // namespace

std::vector<RecipeStage> parse_recipe(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw UsageError("cannot open recipe '" + path + "'");
  std::vector<RecipeKey> shared;
  std::vector<RecipeStage> stages;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    std::string where = path + ":" + std::to_string(n);
    std::string s = trim(strip_comment(line));
    if (s.empty()) continue;
    if (s == "[[stage]]") {
      stages.push_back({n, n, "", shared});
      continue;
    }
    if (s.front() == '[') throw UsageError(where + ": unknown table " + s + " (only [[stage]] exists)");
    auto eq = s.find('=');
    if (eq == std::string::npos) throw UsageError(where + ": expected 'key = value', got '" + s + "'");
    std::string key = trim(s.substr(0, eq)), value = parse_value(trim(s.substr(eq + 1)), where);
    if (key.empty() || key.find_first_of(" \t\"") != std::string::npos) throw UsageError(where + ": bad key '" + key + "'");
    if (kNotInStages.count(key))
      throw UsageError(where + ": '" + key + "' belongs on the command line, not in a recipe");
    if (key == "method") {
      if (stages.empty()) throw UsageError(where + ": 'method' must be inside a [[stage]]");
      if (!stages.back().method.empty()) throw UsageError(where + ": a stage has one method");
      stages.back().method = value;
      stages.back().method_line = n;
      continue;
    }
    auto& keys = stages.empty() ? shared : stages.back().keys;
    for (const auto& k : keys)
      if (k.key == key && k.line != 0 && (stages.empty() || k.line > stages.back().line))
        throw UsageError(where + ": '" + key + "' is set twice (line " + std::to_string(k.line) + ")");
    keys.push_back({key, value, n});
  }
  if (stages.empty()) throw UsageError(path + ": the recipe has no [[stage]]");
  for (const auto& st : stages)
    if (st.method.empty()) throw UsageError(path + ":" + std::to_string(st.line) + ": the stage has no 'method'");
  return stages;
}

std::vector<std::string> stage_args(const RecipeStage& stage) {
  std::vector<std::string> a{"--method=" + stage.method};
  for (const auto& k : stage.keys) a.push_back("--" + k.key + "=" + k.value);
  return a;
}

int run_recipe(const std::vector<std::string>& args) {
  const std::string recipe = arg_value(args, "recipe"), model = arg_value(args, "model"),
                    out = arg_value(args, "out");
  const bool resume = has_flag(args, "resume"), force = has_flag(args, "force");
  if (model.empty()) throw UsageError("--model IN.nnslim is required");
  if (out.empty()) throw UsageError("--out DIR is required");
  auto stages = parse_recipe(recipe);
  auto common = common_args(args);

  // Validate every stage before any training: unknown methods, keys and values fail here,
  // naming the recipe line.
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& st = stages[i];
    std::vector<std::string> a = common;
    for (const auto& s : stage_args(st)) a.push_back(s);
    a.insert(a.end(), {"--model", model, "--out", out, "--check", "--quiet"});
    if (resume) a.push_back("--resume");
    if (force) a.push_back("--force");
    try {
      NotesOff notes_off;  // each stage notes its own options when it runs
      cmd_compress(a);
    } catch (const UsageError& e) {
      const std::string msg = e.what();
      int line = msg.find("--method") != std::string::npos ? st.method_line : st.line;
      for (const auto& k : st.keys)
        if (mentions_key(msg, k.key)) line = k.line;
      throw UsageError(recipe + ":" + std::to_string(line) + ": stage " + std::to_string(i + 1) +
                       " (" + st.method + "): " + e.what());
    } catch (const c10::Error& e) {  // unknown method
      throw UsageError(recipe + ":" + std::to_string(st.method_line) + ": stage " + std::to_string(i + 1) +
                       ": " + e.what_without_backtrace());
    }
  }
  if (has_flag(args, "check")) {  // every stage validated; nothing is run or written
    std::cout << "ok: " << stages.size() << " stage(s) of " << recipe << " would compress " << model
              << " into " << out << (resume ? " (resuming)" : "") << "\n";
    return 0;
  }
  if (!resume) check_out_dir(out, force);
  {
    std::error_code ec;
    if (fs::equivalent(out + "/model.nnslim", model, ec))
      throw UsageError("--model " + model + " is in --out " + out +
                       ", where the recipe's model is written; choose another --out");
  }
  create_out_dir(out);
  // The recipe's text and input model: a resume with another recipe or model would reuse stages
  // that belong to a different run.
  // Stages as parsed (comments and layout may change between the runs).
  Json identity = Json::object();
  Json stage_list = Json::array();
  for (const auto& st : stages) {
    std::string line = st.method;
    for (const auto& a : stage_args(st)) line += " " + a;
    stage_list.push(Json(line));
  }
  identity.set("recipe", stage_list);
  identity.set("input_model", model);
  identity.set("input_fingerprint", file_fingerprint(model));
  check_or_record_run(out, identity, resume);

  std::string input = model;
  Json stage_summaries = Json::array();
  for (size_t i = 0; i < stages.size(); ++i) {
    std::string dir = out + "/" + std::to_string(i + 1) + "-" + stages[i].method;
    bool done = fs::exists(dir + "/summary.json") && fs::exists(dir + "/model.nnslim");
    if (done && resume) {
      try {
        load_model_file(dir + "/model.nnslim");  // a damaged file is not a finished stage
      } catch (const c10::Error& e) {
        std::cout << "== stage " << i + 1 << ": " << dir << "/model.nnslim is unreadable ("
                  << e.what_without_backtrace() << "); running the stage again\n";
        done = false;
      }
    }
    if (done && resume) {
      std::cout << "== stage " << i + 1 << "/" << stages.size() << " (" << stages[i].method
                << ") already done in " << dir << "\n";
    } else {
      std::cout << "== stage " << i + 1 << "/" << stages.size() << ": " << stages[i].method << "\n" << std::flush;
      std::vector<std::string> a = common;
      for (const auto& s : stage_args(stages[i])) a.push_back(s);
      // An interrupted stage continues from its checkpoints; a new one starts clean.
      a.insert(a.end(), {"--model", input, "--out", dir, resume ? "--resume" : "--force"});
      int rc = cmd_compress(a);
      if (rc != 0) return rc;
    }
    Json s = read_json_file(dir + "/summary.json");
    s.set("stage", static_cast<int64_t>(i + 1));
    stage_summaries.push(s);
    input = dir + "/model.nnslim";
  }
  // The final model and a summary comparing the recipe's input with its output.
  fs::copy_file(input, out + "/model.nnslim.tmp", fs::copy_options::overwrite_existing);
  fs::rename(out + "/model.nnslim.tmp", out + "/model.nnslim");
  for (const char* extra : {"model.unified.nnslim"}) {
    fs::path src = fs::path(input).parent_path() / extra;
    if (fs::exists(src)) fs::copy_file(src, fs::path(out) / extra, fs::copy_options::overwrite_existing);
  }
  const Json& first = stage_summaries.items().front();
  const Json& last = stage_summaries.items().back();
  Json s = Json::object();
  std::string methods;
  for (const auto& st : stages) methods += (methods.empty() ? "" : "+") + st.method;
  s.set("method", methods);
  s.set("recipe", recipe);
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
  s.set("stages", stage_summaries);
  write_text(out + "/summary.json", s.dump(2) + "\n");
  std::cout << "recipe done: " << methods << ", MACs " << s.get("macs_ratio").num() << "x smaller, top-1 "
            << first.get("before").get("top1").num() << "% -> " << last.get("after").get("top1").num()
            << "%; wrote " << out << "/model.nnslim\n";
  return 0;
}

}  // namespace nnslim::cli
