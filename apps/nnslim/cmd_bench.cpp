// nnslim bench: measured inference latency (or training throughput) of a model.
#include "common.h"

#include "nnslim/graph/serialize.h"
#include "nnslim/models/zoo.h"
#include "nnslim/report/latency.h"

#include <iostream>

namespace nnslim::cli {

namespace {
std::string pairs_note(const LatencyResult& r) {
  std::string s;
  if (r.merged_conv_pairs) s += ", " + std::to_string(r.merged_conv_pairs) + " factor pairs merged";
  if (r.fused_conv_pairs) s += ", " + std::to_string(r.fused_conv_pairs) + " factor pairs fused";
  if (r.sparse_convs) s += ", " + std::to_string(r.sparse_convs) + " convs run sparse";
  return s;
}
}  // namespace

int cmd_bench(const std::vector<std::string>& args) {
  std::string path, model, input = "1x32x32", device = "cpu";
  int64_t classes = 10, batch = 1, threads = 0, warmup = 5, runs = 20;
  double seconds = 2.0;
  bool train = false, json = false, no_fold = false, keep_factors = false, dense = false;
  std::string format = "auto";
  ArgParser p(
      "bench",
      "nnslim bench (MODEL | --model NAME) [--batch-size B] [--threads T] [--train] [--json]",
      "Measures inference latency (median and p90 over repeated runs after warm-up, BatchNorm\n"
      "folded into the convolutions as in an exported model) and\n"
      "images/s on random input. With --train, measures full training steps (forward,\n"
      "backward, SGD momentum) instead.\n\n"
      "Threads sleep between ops (OMP_WAIT_POLICY=PASSIVE, nnslim's default). On an idle\n"
      "machine, OMP_WAIT_POLICY=ACTIVE nnslim bench ... measures what a dedicated inference\n"
      "runtime gets (its threads spin): much faster for small layers at several threads.");
  p.positional("MODEL", &path, "a *.nnslim model file", /*required=*/false);
  p.option("model", &model, "NAME", "a zoo model instead of a file (a file path works too)");
  p.option("input", &input, "CxHxW", "input shape for --model");
  p.option("classes", &classes, "K", "classes for --model");
  p.option("batch-size", &batch, "B", "batch size");
  p.option("threads", &threads, "N", "CPU threads (0 = all cores)");
  p.option("device", &device, "DEV", "cpu, cuda or auto");
  p.option("warmup", &warmup, "N", "untimed runs before timing");
  p.option("runs", &runs, "N", "minimum timed runs");
  p.option("seconds", &seconds, "S", "minimum total timed seconds");
  p.flag("train", &train, "time training steps instead of inference");
  p.option("memory-format", &format, "F",
           "inference: auto (time both, keep the faster), nchw or nhwc");
  p.flag("keep-factors", &keep_factors,
         "inference: run factorised convs as they are (default: each kxk conv read only by a 1x1 "
         "conv runs as the pair, the one conv it equals, or a fused kernel, whichever is fastest)");
  p.flag("dense", &dense,
         "inference: run every conv dense (default: each conv with >= 50% zero weights runs dense "
         "or with a sparse kernel, whichever is fastest)");
  p.flag("no-fold-bn", &no_fold,
         "inference: keep BatchNorm nodes (default: folded into the convs, as exported)");
  p.flag("json", &json, "print JSON");
  if (!p.parse(args)) return 0;
  if (batch < 1) throw UsageError("--batch-size must be >= 1");
  if (warmup < 0 || runs < 1 || seconds < 0)
    throw UsageError("--warmup >= 0, --runs >= 1, --seconds >= 0");
  set_threads(threads);
  Graph g = file_or_zoo_model(path, model, input, classes);
  LatencyOptions o;
  o.batch_size = batch;
  o.warmup = warmup;
  o.min_runs = runs;
  o.min_seconds = seconds;
  o.device = parse_device(device);
  o.fold_batchnorm = !no_fold;
  o.plan_factor_pairs = !keep_factors;
  o.plan_sparse_convs = !dense;
  if (format == "auto")
    o.memory_format = LatencyOptions::Format::kAuto;
  else if (format == "nchw")
    o.memory_format = LatencyOptions::Format::kContiguous;
  else if (format == "nhwc")
    o.memory_format = LatencyOptions::Format::kChannelsLast;
  else
    throw UsageError("--memory-format must be auto, nchw or nhwc, got '" + format + "'");
  LatencyResult r = train ? measure_train_step(g, o) : measure_latency(g, o);
  std::string name = path.empty() ? model : path;
  if (json) {
    Json j = Json::object();
    j.set("model", name);
    j.set("mode", train ? "train" : "inference");
    if (!train) {
      j.set("batchnorm_folded", !no_fold);
      j.set("memory_format", r.channels_last ? "nhwc" : "nchw");
      j.set("merged_conv_pairs", r.merged_conv_pairs);
      j.set("fused_conv_pairs", r.fused_conv_pairs);
      j.set("sparse_convs", r.sparse_convs);
    }
    j.set("batch_size", batch);
    j.set("threads", static_cast<int64_t>(torch::get_num_threads()));
    j.set("device", device);
    j.set("median_ms", r.median_ms);
    j.set("p90_ms", r.p90_ms);
    j.set("mean_ms", r.mean_ms);
    j.set("images_per_second", r.images_per_second);
    j.set("runs", r.runs);
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf(
        "%s %s, batch %lld, %d threads: median %.3f ms, p90 %.3f ms, %.1f images/s "
        "(%lld runs%s%s)\n",
        name.c_str(), train ? "training step" : "inference", (long long)batch,
        torch::get_num_threads(), r.median_ms, r.p90_ms, r.images_per_second, (long long)r.runs,
        train             ? ""
        : r.channels_last ? ", NHWC"
                          : ", NCHW",
        train ? "" : pairs_note(r).c_str());
  }
  return 0;
}

}  // namespace nnslim::cli
