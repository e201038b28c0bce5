#include "nnslim/train/compress.h"

#include "nnslim/eval/recalibrate.h"
#include "nnslim/graph/cost.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/report/latency.h"
#include "nnslim/train/checkpoint.h"

#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <ostream>

namespace nnslim {

Json ModelStats::to_json() const {
  Json j = Json::object();
  j.set("params", params);
  j.set("macs", macs);
  j.set("nonzero_params", nonzero_params);
  j.set("nonzero_macs", nonzero_macs);
  j.set("top1", top1);
  j.set("top5", top5);
  // null, not 0, where latency was not measured (--no-latency; right after the surgery).
  j.set("latency_ms", latency_ms > 0 ? Json(latency_ms) : Json(nullptr));
  j.set("latency_ms_batch64", latency_ms_batch64 > 0 ? Json(latency_ms_batch64) : Json(nullptr));
  j.set("file_bytes", file_bytes);
  return j;
}

ModelStats measure_model(const Graph& graph, const Dataset& test, bool latency,
                         double latency_seconds, torch::Device device) {
  ModelStats s;
  auto cost = count_cost(graph);
  s.params = cost.params;
  s.macs = cost.macs;
  s.nonzero_params = cost.nonzero_params;
  s.nonzero_macs = cost.nonzero_macs;
  s.file_bytes = static_cast<int64_t>(graph_to_bytes(graph).size()) + 28;  // + file framing
  if (test.size() > 0) {
    Graph g = graph.clone();
    g.to(device);
    auto r = evaluate(g, test, 256, device);
    s.top1 = r.top1;
    s.top5 = r.top5;
  }
  if (latency) {
    LatencyOptions o;
    o.device = device;
    o.min_seconds = latency_seconds;
    o.batch_size = 1;
    s.latency_ms = measure_latency(graph, o).median_ms;
    o.batch_size = 64;
    o.min_runs = 5;
    s.latency_ms_batch64 = measure_latency(graph, o).median_ms;
  }
  return s;
}

namespace {
// The checkpoint an interrupted phase left in `dir`, when resuming.
std::optional<Checkpoint> resume_point(const std::string& dir, bool resume) {
  if (!resume || dir.empty() || !std::filesystem::exists(checkpoint_path(dir))) return std::nullopt;
  return load_checkpoint(checkpoint_path(dir));
}

bool has_batchnorm(const Graph& g) {
  for (const auto& n : g.nodes)
    if (n.op == Op::kBatchNorm2d) return true;
  return false;
}

std::string phase_dir(const std::string& out, const std::string& phase) {
  if (out.empty()) return "";
  std::string d = out + "/" + phase;
  std::filesystem::create_directories(d);
  return d;
}
}  // namespace

CompressResult compress(Graph& graph, const std::shared_ptr<Method>& method_ptr,
                        const Dataset& train, const Dataset& test, const CompressOptions& o,
                        const Dataset* val) {
  TORCH_CHECK(method_ptr, "compress: no method given");
  Method& method = *method_ptr;
  CompressResult r;
  torch::Device device = parse_device(o.train.device);
  r.before = measure_model(graph, test, o.measure_latency, o.latency_seconds, device);
  std::ostream* log = o.train.progress;

  // Progress lines are flushed (std::endl): a long phase follows each, and a log file must show it.
  // Train with the method (its hooks shape the weights); with 0 epochs the method still gets
  // begin() through a zero-epoch fit so it can set up state that finalize() reads.
  TrainOptions t = o.train;
  t.out_dir = phase_dir(o.train.out_dir, "train");
  if (log && t.epochs > 0)
    *log << "== training with " << method.name() << " for " << t.epochs
         << (t.epochs == 1 ? " epoch" : " epochs") << std::endl;
  Trainer trainer(graph, t, {method_ptr});
  auto trained = resume_point(t.out_dir, o.resume);
  if (log && trained)
    *log << "== resuming the training phase " << resume_position(*trained) << std::endl;
  trainer.fit(train, &test, trained ? &*trained : nullptr);

  // Surgery.
  if (log) *log << "== finalizing " << method.name() << std::endl;
  graph.to(device);
  FinalizeContext ctx{graph};
  Dataset normalised = with_graph_normalisation(graph, train);
  ctx.train = &normalised;
  Dataset val_normalised;
  if (val && val->size() > 0) {
    val_normalised = with_graph_normalisation(graph, *val);
    ctx.val = &val_normalised;
  }
  ctx.epochs = t.epochs;
  ctx.progress = log;
  // Every rank runs the surgery on the same weights; only rank 0 keeps its checkpoints (the
  // others, resumed, redo it exactly from the trained weights).
  const bool rank0 = !o.train.group || o.train.group->rank() == 0;
  ctx.finalize_dir = rank0 ? phase_dir(o.train.out_dir, "finalize") : "";
  ctx.resuming = o.resume;
  method.finalize(ctx);
  validate(graph);
  graph.to(torch::kCPU);
  r.after_surgery = measure_model(graph, test, false, 0, device);
  if (o.recalibrate_batches > 0 && has_batchnorm(graph)) {
    if (log)
      *log << "== recalibrating BatchNorm statistics on " << o.recalibrate_batches << " batches"
           << std::endl;
    recalibrate_bn(graph, normalised, o.recalibrate_batches, o.train.batch_size, o.train.seed);
    r.after_recalibration = measure_model(graph, test, false, 0, device);
  }

  // Fine-tune.
  if (o.finetune_epochs > 0) {
    r.finetune_lr = method.finetune_lr(o.finetune_lr);
    if (log)
      *log << "== fine-tuning for " << o.finetune_epochs
           << (o.finetune_epochs == 1 ? " epoch" : " epochs") << " from lr " << r.finetune_lr
           << std::endl;
    TrainOptions f = o.train;
    f.epochs = o.finetune_epochs;
    f.schedule = LrSchedule();
    f.schedule.kind = "cosine";
    f.schedule.base_lr = r.finetune_lr;
    f.out_dir = phase_dir(o.train.out_dir, "finetune");
    std::vector<std::shared_ptr<Method>> hooks;
    if (auto m = method.finetune_method()) hooks.push_back(m);
    auto tuned = resume_point(f.out_dir, o.resume);
    if (log && tuned) *log << "== resuming fine-tuning " << resume_position(*tuned) << std::endl;
    Trainer(graph, f, hooks).fit(train, &test, tuned ? &*tuned : nullptr);
    graph.to(torch::kCPU);
  }
  r.after = measure_model(graph, test, o.measure_latency, o.latency_seconds, device);
  r.method = Json::object();
  method.describe(r.method);
  return r;
}

}  // namespace nnslim
