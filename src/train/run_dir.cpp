#include "nnslim/train/run_dir.h"

#include "nnslim/eval/evaluate.h"

#include "nnslim/core/error.h"
#include "nnslim/graph/model_file.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/graph/shape.h"

#include <c10/util/Exception.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <vector>

namespace nnslim {

namespace fs = std::filesystem;

void check_out_dir(const std::string& dir, bool force) {
  if (dir.empty()) throw RequestError("--out DIR is required");
  if (!fs::exists(dir)) return;
  if (!fs::is_directory(dir)) throw RequestError("--out " + dir + " exists and is not a directory");
  if (!fs::is_empty(dir) && !force)
    throw RequestError("--out " + dir +
                       " exists and is not empty; choose another directory, pass --resume to " +
                       "continue the run in it, or --force to write into it anyway");
}

void create_out_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  TORCH_CHECK(!ec, dir, ": cannot create directory: ", ec.message());
}

Json read_json_file(const std::string& path) {
  std::ifstream f(path);
  TORCH_CHECK(f, path, ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return Json::parse(ss.str());
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": not valid JSON (" + e.what_without_backtrace() + ")");
  }
}

namespace {
// "--c 0.05, now 0.07; --finetune-epochs 1, now 0" for two objects of option values; the two
// values themselves otherwise.
std::string describe_change(const Json& was, const Json& now) {
  if (!was.is_object() || !now.is_object()) return was.dump() + ", now " + now.dump();
  std::string s;
  auto add = [&](const std::string& key, const std::string& a, const std::string& b) {
    s += (s.empty() ? "" : "; ") + ("--" + key + " " + a + ", now " + b);
  };
  auto text = [](const Json& v) { return v.is_string() ? v.str() : v.dump(); };
  for (const auto& [key, value] : was.fields()) {
    const Json* v = now.find(key);
    if (!v)
      add(key, text(value), "not given");
    else if (v->dump() != value.dump())
      add(key, text(value), text(*v));
  }
  for (const auto& [key, value] : now.fields())
    if (!was.has(key)) add(key, "not given", text(value));
  return s;
}

// The parts of an identity, with what a difference in each means.
const std::vector<std::pair<std::string, std::string>> kIdentityParts = {
    {"method", "another method"},
    {"input_fingerprint", "another input model (file contents)"},
    {"options", "other method options"},
    {"settings", "other training options"},
    {"recipe", "another recipe"}};
}  // namespace

void check_or_record_run(const std::string& out, const Json& identity, bool resume,
                         std::ostream* notes) {
  const std::string path = out + "/run.json";
  if (resume && fs::exists(path)) {
    Json was = read_json_file(path);
    for (const auto& [key, what] : kIdentityParts) {
      const bool had = was.has(key), has = identity.has(key);
      if (!had && !has) continue;
      if (!had && key == "settings") continue;  // runs recorded before "settings" existed
      const Json none("none");
      const Json& a = had ? was.get(key) : none;
      const Json& b = has ? identity.get(key) : none;
      if (a.dump() != b.dump())
        throw RequestError("--resume: the run in " + out + " was started with " + what + " (" +
                           describe_change(a, b) +
                           "); resume with the same command, or start a "
                           "new --out");
    }
    return;
  }
  // (A directory without run.json may still hold checkpoints to resume from, e.g. a training
  // phase copied in from another run: only an empty one means there is nothing to resume.)
  std::error_code ec;
  if (resume && notes && fs::is_empty(out, ec))
    *notes << "note: --resume, but " << out << " holds no earlier run; starting a new one\n";
  write_file_atomic(path, identity.dump(2) + "\n");
}

std::string model_file_problem(const std::string& path) {
  try {
    load_model_file(path);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

void check_model_fits_data(const Graph& graph, const Dataset& data, const std::string& path) {
  auto shape = data.image_shape();
  if (graph.input_shape != shape)
    throw RequestError(
        path + " takes " + shape_str(graph.input_shape) + " inputs but dataset '" + data.name +
        "' has " + shape_str(shape) +
        " images; pick the dataset it was trained on (--dataset), or --dataset synthetic to "
        "run it on generated images of its shape");
  auto it = graph.meta.find("classes");
  if (it != graph.meta.end() && std::to_string(data.classes) != it->second)
    throw RequestError(path + " has " + it->second + " classes but dataset '" + data.name +
                       "' has " + std::to_string(data.classes));
  const auto names = graph_class_names(graph);
  if (!names.empty() && !data.class_names.empty() && names != data.class_names) {
    size_t i = 0;
    while (i < names.size() && i < data.class_names.size() && names[i] == data.class_names[i]) ++i;
    throw RequestError(path + " was trained on other classes: its class " + std::to_string(i) +
                       " is '" + (i < names.size() ? names[i] : "") + "', the data's is '" +
                       (i < data.class_names.size() ? data.class_names[i] : "") + "'");
  }
}

}  // namespace nnslim
