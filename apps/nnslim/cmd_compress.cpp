// nnslim compress: run one compression method on a saved model (the pipeline in
// train/compress.h) and write the compressed, physically smaller model.
#include "common.h"
#include "recipe.h"

#include "nnslim/graph/serialize.h"
#include "nnslim/methods/registry.h"
#include "nnslim/graph/unified_file.h"
#include "nnslim/train/compress.h"

#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

namespace nnslim::cli {

namespace {
// The method is needed before parsing: its options become flags.
std::string find_method_arg(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--method" && i + 1 < args.size()) return args[i + 1];
    if (args[i].rfind("--method=", 0) == 0) return args[i].substr(9);
  }
  return "";
}

// The options that shape the run's result (training, fine-tuning, data), to refuse a --resume
// that would finish it differently. Runtime options (threads, device, output) may change.
Json run_settings(const ArgParser& p, const std::map<std::string, std::string>& method_values) {
  static const std::set<std::string> runtime = {
      "method", "model", "out", "force", "resume", "check", "recipe", "no-latency",
      "data-dir", "device", "threads", "checkpoint-minutes", "quiet"};
  Json j = Json::object();
  for (const auto& [key, value] : p.values())
    if (!runtime.count(key) && !method_values.count(key)) j.set(key, value);
  return j;
}

// summary.json written and model.nnslim readable.
bool finished_run_intact(const std::string& out) {
  if (!std::filesystem::exists(out + "/summary.json")) return false;
  try {
    load_model_file(out + "/model.nnslim");
    return true;
  } catch (const std::exception& e) {
    std::cout << out << "/model.nnslim is unreadable (" << e.what()
              << "); finishing the run again from its checkpoints\n";
    return false;
  }
}

std::string methods_help() {
  std::string s = "methods:\n";
  for (const auto& m : method_registry())
    s += "  " + m.name + std::string(m.name.size() < 12 ? 12 - m.name.size() : 1, ' ') +
         m.summary + "\n";
  return s + "'nnslim compress --method NAME --help' lists a method's own options.";
}
}  // namespace

int cmd_compress(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--recipe" || a.rfind("--recipe=", 0) == 0) return run_recipe(args);
  std::string method = find_method_arg(args), model_path, out, recipe;
  bool force = false, no_latency = false, check = false, resume = false;
  int64_t finetune_epochs = 0, recalibrate_bn = 0;
  double finetune_lr = 0.01;
  DataFlags data;
  TrainFlags train;
  train.epochs = 0;
  ArgParser p("compress",
              "nnslim compress --method NAME --model IN.nnslim [--dataset NAME] [--epochs N]\n"
              "                [--finetune-epochs N] [method options] --out DIR",
              "Compresses a saved model: measures it, trains it with the method for --epochs\n"
              "(0 = none), makes the compression structural (surgery), fine-tunes for\n"
              "--finetune-epochs, and measures again. Writes DIR/model.nnslim (the compressed,\n"
              "physically smaller model), DIR/summary.json (method, options, before/after params,\n"
              "MACs, top-1, latency) and DIR/metrics.jsonl.\n\n" + methods_help());
  p.option("method", &method, "NAME", "compression method (see above)");
  p.option("model", &model_path, "IN", "input model (*.nnslim), e.g. from 'nnslim train'");
  p.option("out", &out, "DIR", "output directory (must be new or empty unless --force)");
  p.flag("force", &force, "write into an existing non-empty --out directory");
  p.option("finetune-epochs", &finetune_epochs, "N", "fine-tuning epochs after the surgery");
  p.option("finetune-lr", &finetune_lr, "X", "fine-tuning learning rate (cosine decay)");
  p.option("recalibrate-bn", &recalibrate_bn, "N",
           "re-estimate BatchNorm statistics on N training batches right after the\n"
           "                            surgery (0 = off); helps where the surgery changed weights\n"
           "                            (magnitude, unify); reported as after_recalibration");
  p.flag("no-latency", &no_latency, "skip latency measurements (faster)");
  p.option("recipe", &recipe, "FILE", "run the stages of a recipe file instead of one --method\n"
           "                            (see docs/cli.md; e.g. recipes/adapruner-trp-grda.toml)");
  p.flag("resume", &resume, "continue an interrupted run in --out from its checkpoints (with\n"
         "                            --recipe: also skip the stages already finished)");
  p.flag("check", &check, "validate the options and exit without running");
  add_data_flags(p, data, /*default_from_model=*/true);
  add_train_flags(p, train);
  std::map<std::string, std::string> method_values;
  const MethodInfo* info = nullptr;
  if (!method.empty()) {
    try {
      info = &find_method(method);
    } catch (const c10::Error& e) {
      throw UsageError(std::string("--method: ") + e.what_without_backtrace());
    }
    p.section(method + " options");
    for (const auto& o : info->options) {
      method_values[o.key] = o.default_value;
      p.option(o.key, &method_values[o.key], "V", o.help);
    }
  }
  if (!p.parse(args)) return 0;
  if (!info) throw UsageError("--method NAME is required\n" + methods_help());
  if (model_path.empty()) throw UsageError("--model IN.nnslim is required");
  if (finetune_epochs < 0) throw UsageError("--finetune-epochs must be >= 0");
  if (!(finetune_lr > 0)) throw UsageError("--finetune-lr must be > 0");
  if (recalibrate_bn < 0) throw UsageError("--recalibrate-bn must be >= 0 (batches; 0 = off)");
  std::shared_ptr<Method> m;
  try {
    m = create_method(method, method_values);  // validates the method's options
  } catch (const c10::Error& e) {
    throw UsageError(e.what_without_backtrace());
  }
  TrainOptions topt = to_train_options(train, out);  // validates the training options
  note_ineffective_options(p, train, "the method does not train (fine-tuning takes --finetune-lr)");
  if (p.given("finetune-lr") && finetune_epochs == 0)
    note("--finetune-lr has no effect without --finetune-epochs");
  if (!resume) check_out_dir(out, force);
  else if (out.empty()) throw UsageError("--out DIR is required");  // continue in it, whatever is there
  for (const char* file : {"/model.nnslim", "/model.unified.nnslim"}) {
    std::error_code ec;
    if (std::filesystem::equivalent(out + file, model_path, ec))
      throw UsageError("--model " + model_path + " is in --out " + out +
                       ", where the compressed model is written; choose another --out");
  }
  set_threads(train.threads);

  Graph g = load_model_file(model_path);
  auto it = g.meta.find("dataset");
  if (!p.given("dataset") && it != g.meta.end()) data.dataset = it->second;
  if (check) {  // everything above, without the data or the training
    check_dataset_name(data.dataset);  // (a real run checks it when it loads the data)
    if (!train.quiet)
      std::cout << "ok: would compress " << model_path << " with " << method << " on "
                << data.dataset << " into " << out << (resume ? " (resuming)" : "") << "\n";
    return 0;  // (not check_applicable: a recipe's --check sees only its input model)
  }
  try {
    m->check_applicable(g);  // before anything is written or trained
  } catch (const c10::Error& e) {
    throw UsageError(std::string(e.what_without_backtrace()) + " (in " + model_path + ")");
  }
  auto d = load_data(data);
  check_fits_data(g, d.train, model_path);
  create_out_dir(out);
  Json identity = Json::object();
  identity.set("method", method);
  Json method_options = Json::object();
  for (const auto& kv : method_values) method_options.set(kv.first, kv.second);
  identity.set("options", method_options);
  identity.set("settings", run_settings(p, method_values));
  identity.set("input_model", model_path);
  identity.set("input_fingerprint", file_fingerprint(model_path));
  check_or_record_run(out, identity, resume);
  // A finished run is not redone: resuming it with the same command has nothing left to do
  // (unless its model file was damaged since: then it is finished again from the checkpoints).
  if (resume && finished_run_intact(out)) {
    std::cout << "the run in " << out << " is already finished (" << out
              << "/summary.json); nothing to do\n";
    return 0;
  }
  CompressOptions co;
  co.train = topt;
  co.finetune_epochs = finetune_epochs;
  co.finetune_lr = finetune_lr;
  co.recalibrate_batches = recalibrate_bn;
  co.measure_latency = !no_latency;
  co.resume = resume;
  auto t0 = std::chrono::steady_clock::now();
  CompressResult r = compress(g, *m, d.train, d.test, co);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  save_graph(g, out + "/model.nnslim");
  // Unified layers also get the compact file (block mask, magnitudes, sign bits, free weights).
  if (!unified_layer_blocks(g).empty()) save_unified(g, out + "/model.unified.nnslim");

  Json s = Json::object();
  s.set("method", method);
  s.set("options", method_options);
  s.set("input_model", model_path);
  s.set("model", g.meta.count("model") ? g.meta.at("model") : "");
  s.set("dataset", data.dataset);
  s.set("epochs", train.epochs);
  s.set("finetune_epochs", finetune_epochs);
  if (finetune_epochs > 0) s.set("finetune_lr", r.finetune_lr);
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
  write_text(out + "/summary.json", s.dump(2) + "\n");
  // Concatenate the phases' metrics into DIR/metrics.jsonl, each record tagged with its phase.
  std::string all;
  for (const char* phase : {"train", "finetune"}) {
    std::ifstream f(out + "/" + phase + "/metrics.jsonl");
    for (std::string line; std::getline(f, line);) {
      Json j = Json::parse(line);
      j.set("phase", phase);
      all += j.dump() + "\n";
    }
  }
  write_text(out + "/metrics.jsonl", all);
  if (!train.quiet) {
    std::printf("\n%-14s %10s %12s %8s %12s %14s\n", "", "params", "MACs", "top-1", "latency b1",
                "latency b64");
    auto ms = [](double v) {  // "-" where nothing was measured (--no-latency, after surgery)
      char b[32];
      std::snprintf(b, sizeof b, "%.3fms", v);
      return v > 0 ? std::string(b) : std::string("-");
    };
    auto row = [&](const char* name, const ModelStats& st, bool lat) {
      std::printf("%-14s %10s %12s %7.2f%% %12s %14s\n", name, human(st.params).c_str(),
                  human(st.macs).c_str(), st.top1, (lat ? ms(st.latency_ms) : "-").c_str(),
                  (lat ? ms(st.latency_ms_batch64) : "-").c_str());
    };
    row("before", r.before, true);
    row("after surgery", r.after_surgery, false);
    if (r.after_recalibration) row("after BN recal", *r.after_recalibration, false);
    row("after", r.after, true);
    std::printf("MACs %.2fx smaller, params %.2fx smaller; wrote %s/model.nnslim\n",
                double(r.before.macs) / std::max<int64_t>(1, r.after.macs),
                double(r.before.params) / std::max<int64_t>(1, r.after.params), out.c_str());
  }
  return 0;
}

}  // namespace nnslim::cli
