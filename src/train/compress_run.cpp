#include "nnslim/train/compress_run.h"

#include "nnslim/core/error.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/graph/unified_file.h"
#include "nnslim/methods/registry.h"
#include "nnslim/train/run_dir.h"

#include <c10/util/Exception.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <ostream>

namespace nnslim {

namespace fs = std::filesystem;

namespace {

Json method_options_json(const std::map<std::string, std::string>& values) {
  Json j = Json::object();
  for (const auto& kv : values) j.set(kv.first, kv.second);
  return j;
}

// The method's options with their defaults filled in (as the registry declares them).
std::map<std::string, std::string> with_defaults(const std::string& method,
                                                 const std::map<std::string, std::string>& given) {
  std::map<std::string, std::string> all;
  for (const auto& o : find_method(method).options) all[o.key] = o.default_value;
  for (const auto& kv : given) all[kv.first] = kv.second;
  return all;
}

Json summary_json(const CompressJob& job, const Graph& g, const CompressResult& r, double wall) {
  Json s = Json::object();
  s.set("method", job.method);
  s.set("options", method_options_json(job.method_options));
  s.set("input_model", job.input_model);
  s.set("model", g.meta.count("model") ? g.meta.at("model") : "");
  s.set("dataset", job.settings.data.dataset);
  s.set("epochs", job.settings.train.epochs);
  s.set("finetune_epochs", job.settings.finetune_epochs);
  if (job.settings.finetune_epochs > 0) s.set("finetune_lr", r.finetune_lr);
  s.set("world_size", job.group ? job.group->world_size() : int64_t{1});
  if (job.group) s.set("dist_backend", job.group->backend());
  s.set("before", r.before.to_json());
  s.set("after_surgery", r.after_surgery.to_json());
  if (r.after_recalibration) s.set("after_recalibration", r.after_recalibration->to_json());
  s.set("after", r.after.to_json());
  s.set("macs_ratio", r.after.macs > 0 ? double(r.before.macs) / r.after.macs : 0.0);
  s.set("params_ratio", r.after.params > 0 ? double(r.before.params) / r.after.params : 0.0);
  if (r.after.latency_ms > 0) {
    s.set("latency_ratio", r.before.latency_ms / r.after.latency_ms);
    s.set("latency_ratio_batch64", r.before.latency_ms_batch64 / r.after.latency_ms_batch64);
  }
  s.set("method_details", r.method);
  s.set("wall_seconds", wall);
  return s;
}

// OUT/metrics.jsonl: the phases' records in order, each tagged with its phase.
void merge_phase_metrics(const std::string& out) {
  std::string all;
  for (const char* phase : {"train", "finetune"}) {
    std::ifstream f(out + "/" + phase + "/metrics.jsonl");
    for (std::string line; std::getline(f, line);) {
      Json j = Json::parse(line);
      j.set("phase", phase);
      all += j.dump() + "\n";
    }
  }
  write_file_atomic(out + "/metrics.jsonl", all);
}

}  // namespace

bool finished_run_intact(const std::string& out, std::ostream* log) {
  if (!fs::exists(out + "/summary.json")) return false;
  const std::string problem = model_file_problem(out + "/model.nnslim");
  if (!problem.empty() && log)
    *log << out << "/model.nnslim is unreadable (" << problem
         << "); finishing the run again from its checkpoints\n";
  return problem.empty();
}

CompressRun::CompressRun(CompressJob job) : job_(std::move(job)) {
  try {
    method_ = create_method(job_.method, job_.method_options);  // validates the method's options
  } catch (const c10::Error& e) {
    throw RequestError(e.what_without_backtrace());
  }
  job_.method_options = with_defaults(job_.method, job_.method_options);
  validate_settings(job_.settings);
}

std::vector<std::string> CompressRun::ineffective_options() const {
  auto notes = nnslim::ineffective_options(
      job_.settings, job_.given, "the method does not train (fine-tuning takes --finetune-lr)");
  if (job_.given.count("finetune-lr") && job_.settings.finetune_epochs == 0)
    notes.push_back("--finetune-lr has no effect without --finetune-epochs");
  return notes;
}

void CompressRun::prepare() {
  if (prepared_) return;
  if (job_.input_model.empty()) throw RequestError("--model IN.nnslim is required");
  const bool rank0 = !job_.group || job_.group->rank() == 0;
  if (!job_.resume && rank0)
    check_out_dir(job_.out_dir, job_.force);
  else if (job_.out_dir.empty())
    throw RequestError("--out DIR is required");  // continue in it
  for (const char* file : {"/model.nnslim", "/model.unified.nnslim"}) {
    std::error_code ec;
    if (fs::equivalent(job_.out_dir + file, job_.input_model, ec))
      throw RequestError("--model " + job_.input_model + " is in --out " + job_.out_dir +
                         ", where the compressed model is written; choose another --out");
  }
  input_ = load_model_file(job_.input_model);
  auto it = input_.meta.find("dataset");
  if (!job_.given.count("dataset") && it != input_.meta.end())
    job_.settings.data.dataset = it->second;
  check_dataset_name(job_.settings.data.dataset);
  follow_model(job_.settings.data, input_);  // --dataset synthetic takes the model's shapes
  prepared_ = true;
}

Json CompressRun::identity() const {
  Json id = Json::object();
  id.set("method", job_.method);
  id.set("options", method_options_json(job_.method_options));
  id.set("settings", result_settings(job_.settings));
  id.set("input_model", job_.input_model);
  id.set("input_fingerprint", file_fingerprint(job_.input_model));
  return id;
}

CompressRunOutcome CompressRun::run() {
  prepare();
  try {
    method_->check_applicable(input_);  // before anything is written or trained
  } catch (const c10::Error& e) {
    throw RequestError(std::string(e.what_without_backtrace()) + " (in " + job_.input_model + ")");
  }
  const std::string& out = job_.out_dir;
  auto data = load_data(job_.settings.data);
  check_model_fits_data(input_, data.train, job_.input_model);
  const bool rank0 = !job_.group || job_.group->rank() == 0;
  if (rank0) {
    create_out_dir(out);
    check_or_record_run(out, identity(), job_.resume, job_.notes);
  }
  if (job_.group) job_.group->barrier();  // the others read OUT only once rank 0 has set it up
  CompressRunOutcome outcome;
  // A finished run is not redone: resuming it with the same command has nothing left to do
  // (unless its model file was damaged since: then it is finished again from the checkpoints).
  if (job_.resume && finished_run_intact(out, job_.notes)) {
    outcome.already_finished = true;
    outcome.summary = read_json_file(out + "/summary.json");
    return outcome;
  }
  CompressOptions co = compression_options(job_.settings, out, job_.resume);
  co.train.progress = job_.progress;
  co.train.progress_bar = job_.progress_bar;
  co.train.group = job_.group;
  if (!rank0) co.measure_latency = false;  // rank 0's measurement is the one reported
  Graph g = std::move(input_);             // the pipeline edits it into the compressed model
  prepared_ = false;                       // (another run() loads the input again)
  auto t0 = std::chrono::steady_clock::now();
  outcome.result = compress(g, method_, data.train, data.test, co, &data.val);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!rank0) {  // the ranks hold the same model: rank 0 writes it
    outcome.model = std::move(g);
    return outcome;
  }
  save_graph(g, out + "/model.nnslim");
  // Unified layers also get the compact file (block mask, magnitudes, sign bits, free weights).
  if (!unified_layer_blocks(g).empty()) save_unified(g, out + "/model.unified.nnslim");
  outcome.summary = summary_json(job_, g, outcome.result, wall);
  write_file_atomic(out + "/summary.json", outcome.summary.dump(2) + "\n");
  merge_phase_metrics(out);
  outcome.model = std::move(g);
  return outcome;
}

}  // namespace nnslim
