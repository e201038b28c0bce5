#include "common.h"

#include "nnslim/graph/serialize.h"
#include "nnslim/graph/shape.h"
#include "nnslim/models/zoo.h"
#include "nnslim/train/threads.h"

#include <fstream>

#include <torch/torch.h>

#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

namespace nnslim::cli {

namespace fs = std::filesystem;

void add_run_options(ArgParser& p, RunSettings& settings, std::initializer_list<OptionGroup> groups,
                     const std::string& dataset_default) {
  auto section = [](OptionGroup g) -> const char* {
    switch (g) {
      case OptionGroup::kData:
      case OptionGroup::kTrainingData:
        return "data";
      case OptionGroup::kTraining:
        return "training";
      case OptionGroup::kRuntime:
        return "runtime";
      case OptionGroup::kCompress:
        return nullptr;  // with the verb's own options
    }
    return nullptr;
  };
  for (const auto& o : run_options()) {
    if (std::find(groups.begin(), groups.end(), o.group) == groups.end()) continue;
    if (const char* title = section(o.group)) p.section(title);
    std::string help = o.help;
    if (o.key == "dataset")
      help = "dataset: " + known_datasets() +
             (dataset_default.empty() ? "" : " (default: " + dataset_default + ")");
    const RunOption* opt = &o;
    p.custom(
        o.key, o.metavar, help, o.is_flag(),
        [opt, &settings](const std::string& v) { opt->set(settings, v); },
        [opt, &settings] { return opt->get(settings); });
  }
}

void print_notes(const std::vector<std::string>& notes) {
  for (const auto& n : notes) std::cerr << "note: " << n << "\n";
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

std::shared_ptr<dist::ProcessGroup> join_launched_group(RunSettings& settings) {
  const dist::LaunchEnv env = dist::launch_env_from_environment();
  if (!env.distributed()) return nullptr;
  const bool cuda = parse_device(settings.train.device).is_cuda();
  const std::string backend = dist::resolve_backend(settings.dist_backend, cuda);
  if (cuda) settings.train.device = "cuda:" + std::to_string(env.local_rank);
  if (settings.threads == 0) {  // W processes on one machine: each its share of the cores
    const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
    settings.threads = std::max<int64_t>(1, cores / env.local_world_size);
  }
  auto group = dist::ProcessGroup::join(env, backend, std::chrono::seconds(600));
  if (group->rank() != 0) settings.quiet = true;
  if (!settings.quiet)
    std::cout << "data-parallel: " << group->world_size() << " processes (" << backend
              << ", launched by " << env.source << ", rendezvous " << env.master_addr << ":"
              << env.master_port << "); --batch-size " << settings.train.batch_size
              << " is the global batch\n";
  return group;
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
  std::transform(start.begin(), start.end(), start.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return start.rfind("<!doctype html", 0) == 0 || start.rfind("<html", 0) == 0;
}
}  // namespace

void check_out_file(const std::string& out, const std::string& flag,
                    const std::vector<std::string>& inputs, OutKind kind, bool force) {
  if (!fs::exists(out)) return;
  std::error_code ec;
  for (const auto& in : inputs)
    if (fs::equivalent(out, in, ec))
      throw UsageError("--" + flag + " " + out + " is the input " + in);
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

Graph file_or_zoo_model(std::string& path, std::string& model, const std::string& input,
                        int64_t classes) {
  const bool looks_like_file = model.find('/') != std::string::npos ||
                               model.find(".nnslim") != std::string::npos ||
                               std::filesystem::is_regular_file(model);
  if (path.empty() && looks_like_file) std::swap(path, model);
  if (path.empty() == model.empty()) throw UsageError("give either a MODEL file or --model NAME");
  return path.empty() ? build_model(model, parse_shape(input, "input"), classes)
                      : load_model_file(path);
}

void write_text(const std::string& path, const std::string& text) { write_file_atomic(path, text); }

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
                human_count(r.params).c_str(), human_count(r.nonzero_params).c_str(),
                human_count(r.macs).c_str(), human_count(r.nonzero_macs).c_str());
  os << buf;
  return os.str();
}

}  // namespace nnslim::cli
