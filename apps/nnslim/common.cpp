#include "common.h"

#include "nnslim/graph/shape.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/models/zoo.h"
#include "nnslim/train/threads.h"

#include <fstream>

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <vector>

namespace nnslim::cli {

namespace fs = std::filesystem;

namespace {
std::string known_datasets() {
  std::string names;
  for (const auto& n : dataset_names()) names += (names.empty() ? "" : ", ") + n;
  return names;
}
}  // namespace

void add_data_flags(ArgParser& p, DataFlags& f, bool default_from_model, bool trains) {
  p.section("data");
  p.option("dataset", &f.dataset, "NAME",
           "dataset: " + known_datasets() +
               (default_from_model ? " (default: the dataset recorded in the model)" : ""));
  p.option("data-dir", &f.data_dir, "DIR",
           "where the dataset files are (default: the dataset's standard place, e.g. "
           "/usr/share/datasets/fashion-mnist)");
  if (trains) p.option("limit-train", &f.limit_train, "N", "use only the first N training images (0 = all)");
  p.option("limit-test", &f.limit_test, "N", "evaluate on the first N test images (0 = all)");
  if (trains)
    p.option("val-split", &f.val_split, "N",
             "hold out the last N training images as a validation set for per-epoch evaluation");
}

void check_dataset_name(const std::string& name) {
  for (const auto& n : dataset_names())
    if (n == name) return;
  throw UsageError("--dataset: unknown dataset '" + name + "' (known: " + known_datasets() + ")");
}

LoadedData load_data(const DataFlags& f) {
  if (f.limit_train < 0) throw UsageError("--limit-train must be >= 0");
  if (f.limit_test < 0) throw UsageError("--limit-test must be >= 0");
  if (f.val_split < 0) throw UsageError("--val-split must be >= 0");
  check_dataset_name(f.dataset);
  DataSplits s = load_dataset(f.dataset, f.data_dir);
  LoadedData d;
  d.train = take_first(s.train, f.limit_train);
  d.test = take_first(s.test, f.limit_test);
  if (f.val_split > 0) {
    if (f.val_split >= d.train.size())
      throw UsageError("--val-split " + std::to_string(f.val_split) + " leaves no training images");
    std::tie(d.train, d.val) = split_validation(d.train, f.val_split);
  }
  return d;
}

void add_train_flags(ArgParser& p, TrainFlags& f) {
  p.section("training");
  p.option("epochs", &f.epochs, "N", "epochs to train");
  p.option("batch-size", &f.batch_size, "B", "mini-batch size");
  p.option("lr", &f.lr, "X", "initial learning rate");
  p.option("momentum", &f.momentum, "X", "SGD momentum");
  p.flag("nesterov", &f.nesterov, "use Nesterov momentum");
  p.option("weight-decay", &f.weight_decay, "X", "L2 weight decay");
  p.option("schedule", &f.schedule, "KIND", "lr schedule: constant, step, multistep, cosine, grda");
  p.option("milestones", &f.milestones, "E1,E2", "multistep: epochs where lr is multiplied by gamma");
  p.option("gamma", &f.gamma, "X", "step/multistep: lr factor");
  p.option("step-size", &f.step_size, "N", "step: epochs between lr drops");
  p.option("warmup-epochs", &f.warmup_epochs, "X", "linear lr warm-up length in epochs");
  p.option("seed", &f.seed, "S", "seed for weights, shuffling and augmentation");
  p.flag("no-augment", &f.no_augment, "no random crop / flip");
  p.flag("no-flip", &f.no_flip, "random crop only, no horizontal flip");
  p.section("runtime");
  p.option("device", &f.device, "DEV", "cpu, cuda or auto (cuda when available)");
  p.option("threads", &f.threads, "N", "CPU threads (0 = all cores)");
  p.option("checkpoint-minutes", &f.checkpoint_minutes, "M",
           "also checkpoint inside an epoch every M minutes, so --resume after a kill loses at "
           "most that much (0 = at epoch ends only)");
  p.flag("quiet", &f.quiet, "print nothing while training");
}

bool g_print_notes = true;

void note(const std::string& text) {
  if (g_print_notes) std::cerr << "note: " << text << "\n";
}

void note_ineffective_options(const ArgParser& p, const TrainFlags& f, const std::string& what_trains) {
  if (f.epochs == 0) {
    for (const char* o : {"lr", "schedule", "warmup-epochs", "milestones", "gamma", "step-size"})
      if (p.given(o)) note(std::string("--") + o + " has no effect: --epochs is 0, so " + what_trains);
    return;
  }
  const std::string& k = f.schedule;
  if (p.given("milestones") && k != "multistep")
    note("--milestones has no effect with --schedule " + k + " (only multistep uses it)");
  if (p.given("gamma") && k != "step" && k != "multistep")
    note("--gamma has no effect with --schedule " + k + " (only step and multistep use it)");
  if (p.given("step-size") && k != "step")
    note("--step-size has no effect with --schedule " + k + " (only step uses it)");
}

TrainOptions to_train_options(const TrainFlags& f, const std::string& out_dir) {
  TrainOptions o;
  o.epochs = f.epochs;
  o.batch_size = f.batch_size;
  o.momentum = f.momentum;
  o.nesterov = f.nesterov;
  o.weight_decay = f.weight_decay;
  o.schedule.kind = f.schedule;
  o.schedule.base_lr = f.lr;
  o.schedule.milestones = parse_int_list(f.milestones, "milestones");
  o.schedule.gamma = f.gamma;
  o.schedule.step_size = f.step_size;
  o.schedule.warmup_epochs = f.warmup_epochs;
  o.seed = static_cast<uint64_t>(f.seed);
  o.augment = !f.no_augment;
  o.hflip = !f.no_flip;
  o.device = f.device;
  if (!(f.checkpoint_minutes >= 0))
    throw UsageError("--checkpoint-minutes must be >= 0 (0 = at epoch ends only)");
  o.checkpoint_seconds = 60 * f.checkpoint_minutes;
  o.out_dir = out_dir;
  o.progress = f.quiet ? nullptr : &std::cout;
  o.progress_bar = !f.quiet && ::isatty(STDOUT_FILENO);
  // Options a user can get wrong are usage errors (exit 2), named by their flag.
  try {
    o.validate();
  } catch (const c10::Error& e) {
    throw UsageError(e.what_without_backtrace());
  }
  return o;
}

void set_threads(int64_t threads) {
  if (threads < 0) throw UsageError("--threads must be >= 0");
  // Far more threads than cores only thrashes (and 100000 would exhaust the process limits).
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  const int64_t most = std::max<int64_t>(64, 4 * cores);
  if (threads > most)
    throw UsageError("--threads " + std::to_string(threads) + " is far more than this machine's " +
                     std::to_string(cores) + " cores (at most " + std::to_string(most) +
                     "; 0 = all cores)");
  set_compute_threads(static_cast<int>(threads));
}

void check_out_dir(const std::string& dir, bool force) {
  if (dir.empty()) throw UsageError("--out DIR is required");
  if (fs::exists(dir)) {
    if (!fs::is_directory(dir)) throw UsageError("--out " + dir + " exists and is not a directory");
    if (!fs::is_empty(dir) && !force)
      throw UsageError("--out " + dir +
                       " exists and is not empty; choose another directory, pass --resume to " +
                       "continue the run in it, or --force to write into it anyway");
  }
}

void create_out_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  TORCH_CHECK(!ec, dir, ": cannot create directory: ", ec.message());
}

namespace {
std::string file_head(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary);
  std::string head(n, '\0');
  f.read(head.data(), static_cast<std::streamsize>(n));
  head.resize(static_cast<size_t>(f.gcount()));
  return head;
}

bool is_nnslim_file(const std::string& path) { return file_head(path, 6) == "NNSLIM"; }

// Whether an existing file is what the verb writes, so that running it again replaces its own
// earlier output. ONNX: every exporter (ours, PyTorch's, onnx.helper) writes ModelProto's field
// 1, ir_version, first: the byte 0x08. HTML: the page starts with <!DOCTYPE html> or <html.
bool is_file_of_kind(const std::string& path, OutKind kind) {
  std::string head = file_head(path, 64);
  if (kind == OutKind::Onnx) return !head.empty() && head[0] == '\x08';
  size_t i = head.find_first_not_of(" \t\r\n");
  std::string start = i == std::string::npos ? "" : head.substr(i, 14);
  std::transform(start.begin(), start.end(), start.begin(), [](unsigned char c) { return std::tolower(c); });
  return start.rfind("<!doctype html", 0) == 0 || start.rfind("<html", 0) == 0;
}
}  // namespace

void check_out_file(const std::string& out, const std::string& flag,
                    const std::vector<std::string>& inputs, OutKind kind, bool force) {
  if (!fs::exists(out)) return;
  std::error_code ec;
  for (const auto& in : inputs)
    if (fs::equivalent(out, in, ec)) throw UsageError("--" + flag + " " + out + " is the input " + in);
  if (fs::is_directory(out)) throw UsageError("--" + flag + " " + out + " is a directory");
  if (is_nnslim_file(out))
    throw UsageError("--" + flag + " " + out + " is an nnslim model or checkpoint; refusing to " +
                     "overwrite it (choose another file name)");
  if (!force && !is_file_of_kind(out, kind))
    throw UsageError("--" + flag + " " + out + " exists and is not " +
                     (kind == OutKind::Onnx ? "an ONNX model" : "an HTML page") +
                     "; refusing to overwrite it (choose another file name, or --force)");
}

void ModelFileArg::add_to(ArgParser& p) {
  p.positional("MODEL", &positional, "a *.nnslim model file", /*required=*/false);
  p.option("model", &flag, "FILE", "the model file, given this way instead of MODEL");
}

std::string ModelFileArg::path() const {
  if (!positional.empty() && !flag.empty() && positional != flag)
    throw UsageError("two models given: " + positional + " and --model " + flag + "; give one");
  if (positional.empty() && flag.empty()) throw UsageError("missing MODEL (a *.nnslim model file)");
  return positional.empty() ? flag : positional;
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
    if (!v) add(key, text(value), "not given");
    else if (v->dump() != value.dump()) add(key, text(value), text(*v));
  }
  for (const auto& [key, value] : now.fields())
    if (!was.has(key)) add(key, "not given", text(value));
  return s;
}
}  // namespace

void check_or_record_run(const std::string& out, const Json& identity, bool resume) {
  const std::string path = out + "/run.json";
  if (resume && fs::exists(path)) {
    Json was = read_json_file(path);
    for (const auto& [key, what] : std::vector<std::pair<std::string, std::string>>{
             {"method", "another method"}, {"input_fingerprint", "another input model (file contents)"},
             {"options", "other method options"}, {"settings", "other training options"},
             {"recipe", "another recipe"}}) {
      const bool had = was.has(key), has = identity.has(key);
      if (!had && !has) continue;
      // Runs recorded before "settings" existed resume without that check.
      if (!had && key == "settings") continue;
      const Json none("none");
      const Json& a = had ? was.get(key) : none;
      const Json& b = has ? identity.get(key) : none;
      if (a.dump() != b.dump())
        throw UsageError("--resume: the run in " + out + " was started with " + what + " (" +
                         describe_change(a, b) + "); resume with the same command, or start a "
                         "new --out");
    }
    return;
  }
  // (A directory without run.json may still hold checkpoints to resume from, e.g. a training
  // phase copied in from another run: only an empty one means there is nothing to resume.)
  std::error_code ec;
  if (resume && fs::is_empty(out, ec))
    std::cerr << "note: --resume, but " << out << " holds no earlier run; starting a new one\n";
  write_text(path, identity.dump(2) + "\n");
}

Graph file_or_zoo_model(std::string& path, std::string& model, const std::string& input, int64_t classes) {
  const bool looks_like_file = model.find('/') != std::string::npos ||
                               model.find(".nnslim") != std::string::npos || std::filesystem::is_regular_file(model);
  if (path.empty() && looks_like_file) std::swap(path, model);
  if (path.empty() == model.empty()) throw UsageError("give either a MODEL file or --model NAME");
  return path.empty() ? build_model(model, parse_shape(input, "input"), classes) : load_model_file(path);
}

void check_fits_data(const Graph& graph, const Dataset& data, const std::string& path) {
  auto shape = data.image_shape();
  if (graph.input_shape != shape)
    throw UsageError(path + " takes " + shape_str(graph.input_shape) + " inputs but dataset '" +
                     data.name + "' has " + shape_str(shape) + " images; pick the dataset it was trained on");
  auto it = graph.meta.find("classes");
  if (it != graph.meta.end() && std::to_string(data.classes) != it->second)
    throw UsageError(path + " has " + it->second + " classes but dataset '" + data.name + "' has " +
                     std::to_string(data.classes));
}

void write_text(const std::string& path, const std::string& text) { write_file_atomic(path, text); }

std::string human(double v) {
  char buf[32];
  if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string cost_table(const CostReport& r) {
  // "sparsity" = exact zeros / elements of the layer's trainable parameters ("-" without any).
  auto sparsity = [](int64_t params, int64_t nonzero) -> std::string {
    if (params <= 0) return "-";
    char b[32];
    std::snprintf(b, sizeof b, "%.2f%%", 100.0 * double(params - nonzero) / double(params));
    return b;
  };
  std::ostringstream os;
  size_t w = 4;
  for (const auto& n : r.nodes) w = std::max(w, n.name.size());
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-*s  %-13s  %-12s  %10s  %10s  %8s  %12s\n", (int)w, "name",
                "op", "output", "params", "nonzero", "sparsity", "MACs");
  os << buf << std::string(w + 79, '-') << "\n";
  for (const auto& n : r.nodes) {
    std::snprintf(buf, sizeof buf, "%-*s  %-13s  %-12s  %10lld  %10lld  %8s  %12lld\n", (int)w,
                  n.name.c_str(), op_name(n.op), shape_str(n.out_shape).c_str(),
                  (long long)n.params, (long long)n.nonzero_params,
                  sparsity(n.params, n.nonzero_params).c_str(), (long long)n.macs);
    os << buf;
  }
  os << std::string(w + 79, '-') << "\n";
  std::snprintf(buf, sizeof buf, "%-*s  %-13s  %-12s  %10lld  %10lld  %8s  %12lld\n", (int)w,
                "total", "", "", (long long)r.params, (long long)r.nonzero_params,
                sparsity(r.params, r.nonzero_params).c_str(), (long long)r.macs);
  os << buf;
  std::snprintf(buf, sizeof buf,
                "params %s (nonzero %s), MACs %s (nonzero %s); MACs count Conv2d and Linear "
                "multiply-accumulates only\n",
                human(r.params).c_str(), human(r.nonzero_params).c_str(), human(r.macs).c_str(),
                human(r.nonzero_macs).c_str());
  os << buf;
  return os.str();
}

}  // namespace nnslim::cli
