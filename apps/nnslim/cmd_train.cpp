// nnslim train: build a zoo model and train it (or resume an interrupted run).
#include "common.h"

#include "nnslim/report/latency.h"

#include "nnslim/graph/builder.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/models/zoo.h"

#include <torch/torch.h>

#include <algorithm>

#include <unistd.h>
#include <filesystem>
#include <iostream>

namespace nnslim::cli {

int cmd_train(const std::vector<std::string>& args) {
  std::string model = "resnet20", out, resume, init;
  bool force = false, no_latency = false, reinit = false;
  RunSettings settings;
  const DataSelection& data = settings.data;
  const TrainOptions& train = settings.train;
  std::string names;
  for (const auto& n : model_names()) names += (names.empty() ? "" : ", ") + n;
  ArgParser p(
      "train", "nnslim train --model NAME [--dataset NAME] [options] --out DIR",
      "Trains a model from the zoo and writes DIR/model.nnslim, DIR/summary.json,\n"
      "DIR/metrics.jsonl (one record per epoch) and DIR/checkpoint.nnslim-ckpt (after\n"
      "every epoch). An interrupted run continues with 'nnslim train --resume DIR' and ends\n"
      "with the same weights as an uninterrupted one. --epochs 0 writes the initialised model.\n"
      "--init FILE.nnslim trains a saved model instead (e.g. fine-tunes a compressed one\n"
      "further), normalising the data as that model was first trained; with --reinit it\n"
      "trains that architecture from fresh weights (the from-scratch control for a\n"
      "compressed network).");
  p.option("model", &model, "NAME", "model: " + names);
  p.option("init", &init, "FILE", "start from this saved model (*.nnslim) instead of --model");
  p.flag("reinit", &reinit,
         "with --init: draw fresh weights (seeded by --seed) for the saved architecture");
  p.option("out", &out, "DIR", "output directory (must be new or empty unless --force)");
  p.flag("force", &force, "write into an existing non-empty --out directory");
  p.flag("no-latency", &no_latency, "skip the inference latency measurement for summary.json");
  p.option("resume", &resume, "DIR",
           "continue the run in DIR with its recorded options (--epochs may be raised)");
  add_run_options(p, settings,
                  {OptionGroup::kData, OptionGroup::kTrainingData, OptionGroup::kTraining,
                   OptionGroup::kRuntime});
  if (!p.parse(args)) return 0;

  auto group = join_launched_group(settings);  // under torchrun: this process's rank
  const bool rank0 = writes_files(group);
  Checkpoint ckpt;
  bool resuming = !resume.empty();
  if (!init.empty() && p.given("model"))
    throw UsageError("--init FILE replaces --model NAME; give one");
  if (!init.empty() && resuming) throw UsageError("--resume continues its own run; drop --init");
  if (reinit && init.empty() && !resuming)
    throw UsageError(
        "--reinit draws fresh weights for the model given with --init FILE; give --init");
  if (init.empty() && !resuming) {
    const auto known = model_names();
    if (std::find(known.begin(), known.end(), model) == known.end())
      throw UsageError("--model: unknown model '" + model + "' (known: " + names + ")");
  }
  Graph initial;
  if (!init.empty()) {
    initial = load_model_file(init);  // before anything is written: a bad file fails early
    auto it = initial.meta.find("dataset");
    if (!p.given("dataset") && it != initial.meta.end()) settings.data.dataset = it->second;
    follow_model(settings.data, initial);  // --dataset synthetic takes the model's shapes
    model = initial.meta.count("model") ? initial.meta.at("model") : init;
  }
  if (resuming) {
    if (!out.empty() && out != resume) throw UsageError("--resume DIR writes into DIR; drop --out");
    if (p.given("model"))
      throw UsageError("--resume DIR continues the model it trained; drop --model");
    ckpt = load_checkpoint(checkpoint_path(resume));
    p.apply(ckpt.options);  // the run's own options, except those given now
    if (train.epochs < ckpt.epochs_done)
      throw UsageError("--epochs " + std::to_string(train.epochs) + ": the run in " + resume +
                       " has already trained " + std::to_string(ckpt.epochs_done) +
                       (ckpt.epochs_done == 1 ? " epoch" : " epochs") +
                       "; to train further, pass a larger --epochs");
    if (train.epochs == ckpt.epochs_done && std::filesystem::exists(resume + "/summary.json")) {
      std::cout << "the run in " << resume << " has already trained all its " << ckpt.epochs_done
                << (ckpt.epochs_done == 1 ? " epoch" : " epochs")
                << "; nothing to do (pass a larger --epochs to train further)\n";
      return 0;
    }
    out = resume;
  } else if (rank0) {
    check_out_dir(out, force);
  }
  set_threads(settings.threads);
  TrainOptions opt = training_options(settings, out);
  opt.group = group;
  opt.progress = settings.quiet ? nullptr : &std::cout;
  opt.progress_bar = !settings.quiet && ::isatty(STDOUT_FILENO);
  print_notes(ineffective_options(settings, p.given_names(), "the model does not train"));
  auto d = load_data(data);
  const Dataset& monitor = data.val_split > 0 ? d.val : d.test;

  torch::manual_seed(static_cast<uint64_t>(train.seed));
  Graph g = resuming        ? ckpt.graph
            : !init.empty() ? std::move(initial)
                            : build_model(model, d.train.image_shape(), d.train.classes);
  if (!init.empty()) check_model_fits_data(g, d.train, init);
  if (reinit && !resuming) reinitialize(g);  // after the seed: the same --seed, the same weights
  if (!resuming && rank0) create_out_dir(out);
  if (!settings.quiet) {
    auto cost = count_cost(g);
    std::cout << "nnslim train: " << model << " on " << data.dataset << " (" << d.train.size()
              << " train / " << monitor.size() << (data.val_split > 0 ? " val" : " test")
              << " images, " << shape_str(d.train.image_shape()) << ", " << d.train.classes
              << " classes), " << human_count(cost.params) << " params, " << human_count(cost.macs)
              << " MACs, " << torch::get_num_threads()
              << (torch::get_num_threads() == 1 ? " thread" : " threads") << ", device "
              << parse_device(opt.device) << "\n";
    if (resuming) std::cout << "resuming " << resume_position(ckpt) << "\n";
    std::cout << std::flush;
  }
  Trainer trainer(g, opt);
  trainer.checkpoint_options = p.values();
  trainer.checkpoint_options.erase("resume");
  trainer.checkpoint_options.erase("force");
  TrainResult r = trainer.fit(d.train, &monitor, resuming ? &ckpt : nullptr);
  if (!rank0) return 0;  // the ranks hold the same weights: rank 0 writes them

  g.to(torch::kCPU);
  save_graph(g, out + "/model.nnslim");
  EvalResult test = evaluate(g, d.test);
  auto cost = count_cost(g);
  Json s = Json::object();
  s.set("model", model);
  s.set("dataset", data.dataset);
  s.set("input_shape", Json::array_of(g.input_shape));
  s.set("classes", g.classes());
  s.set("params", cost.params);
  s.set("macs", cost.macs);
  s.set("top1", test.top1);
  s.set("top5", test.top5);
  s.set("test_loss", test.loss);
  s.set("epochs", train.epochs);
  s.set("train_images", d.train.size());
  s.set("wall_seconds", r.wall_seconds);
  s.set("train_images_per_second", r.train_images_per_second);
  s.set("seed", static_cast<int64_t>(train.seed));
  s.set("world_size", group ? group->world_size() : int64_t{1});
  if (group) s.set("dist_backend", group->backend());
  if (!no_latency) {  // so that reports compare trained and compressed models alike
    LatencyOptions lo;
    lo.min_seconds = 0.5;
    lo.warmup = 3;
    s.set("latency_ms", measure_latency(g, lo).median_ms);
    lo.batch_size = 64;
    lo.min_runs = 5;
    lo.warmup = 2;
    s.set("latency_ms_batch64", measure_latency(g, lo).median_ms);
  }
  write_text(out + "/summary.json", s.dump(2) + "\n");
  if (!settings.quiet)
    std::printf(
        "done: test top-1 %.2f%%, top-5 %.2f%% on %lld images; %s params, %s MACs; "
        "%.0fs; wrote %s/model.nnslim\n",
        test.top1, test.top5, (long long)test.examples, human_count(cost.params).c_str(),
        human_count(cost.macs).c_str(), r.wall_seconds, out.c_str());
  return 0;
}

}  // namespace nnslim::cli
