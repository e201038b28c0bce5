// nnslim compress: run one compression method (or a recipe of several) on a saved model. The
// run itself is the library's (train/compress_run.h, train/recipe.h): this file parses, calls
// and prints.
#include "common.h"

#include "nnslim/methods/registry.h"
#include "nnslim/train/compress_run.h"
#include "nnslim/train/recipe.h"

#include <c10/util/Exception.h>

#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <iostream>

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

bool has_recipe_arg(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--recipe" || a.rfind("--recipe=", 0) == 0) return true;
  return false;
}

std::string methods_help() {
  std::string s = "methods:\n";
  for (const auto& m : method_registry())
    s += "  " + m.name + std::string(m.name.size() < 12 ? 12 - m.name.size() : 1, ' ') + m.summary +
         "\n";
  return s + "'nnslim compress --method NAME --help' lists a method's own options.";
}

void print_result_table(const CompressResult& r, const std::string& out) {
  std::printf("\n%-14s %10s %12s %8s %12s %14s\n", "", "params", "MACs", "top-1", "latency b1",
              "latency b64");
  auto ms = [](double v) {  // "-" where nothing was measured (--no-latency, after surgery)
    char b[32];
    std::snprintf(b, sizeof b, "%.3fms", v);
    return v > 0 ? std::string(b) : std::string("-");
  };
  auto row = [&](const char* name, const ModelStats& st, bool lat) {
    std::printf("%-14s %10s %12s %7.2f%% %12s %14s\n", name, human_count(st.params).c_str(),
                human_count(st.macs).c_str(), st.top1, (lat ? ms(st.latency_ms) : "-").c_str(),
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

int compress_with_recipe(const std::string& path, const CompressJob& base, bool check) {
  Recipe recipe = parse_recipe(path);
  if (check) {  // every stage validated; nothing is run or written
    check_recipe(recipe, base);
    std::cout << "ok: " << recipe.stages.size() << " stage(s) of " << path << " would compress "
              << base.input_model << " into " << base.out_dir << (base.resume ? " (resuming)" : "")
              << "\n";
    return 0;
  }
  Json s = run_recipe(recipe, base, &std::cout);
  std::cout << "recipe done: " << s.get("method").str() << ", MACs " << s.get("macs_ratio").num()
            << "x smaller, top-1 " << s.get("before").get("top1").num() << "% -> "
            << s.get("after").get("top1").num() << "%; wrote " << base.out_dir << "/model.nnslim\n";
  return 0;
}
}  // namespace

int cmd_compress(const std::vector<std::string>& args) {
  CompressJob job;
  job.method = find_method_arg(args);
  job.settings.train.epochs = 0;  // compress trains only when asked
  std::string recipe;
  bool check = false;
  ArgParser p("compress",
              "nnslim compress --method NAME --model IN.nnslim [--dataset NAME] [--epochs N]\n"
              "                [--finetune-epochs N] [method options] --out DIR",
              "Compresses a saved model: measures it, trains it with the method for --epochs\n"
              "(0 = none), makes the compression structural (surgery), fine-tunes for\n"
              "--finetune-epochs, and measures again. Writes DIR/model.nnslim (the compressed,\n"
              "physically smaller model), DIR/summary.json (method, options, before/after params,\n"
              "MACs, top-1, latency) and DIR/metrics.jsonl.\n\n" +
                  methods_help());
  p.option("method", &job.method, "NAME", "compression method (see above)");
  p.option("model", &job.input_model, "IN", "input model (*.nnslim), e.g. from 'nnslim train'");
  p.option("out", &job.out_dir, "DIR", "output directory (must be new or empty unless --force)");
  p.flag("force", &job.force, "write into an existing non-empty --out directory");
  add_run_options(p, job.settings, {OptionGroup::kCompress});
  p.option("recipe", &recipe, "FILE",
           "run the stages of a recipe file instead of one --method\n"
           "                            (see docs/cli.md; e.g. recipes/adapruner-trp-grda.toml)");
  p.flag("resume", &job.resume,
         "continue an interrupted run in --out from its checkpoints (with\n"
         "                            --recipe: also skip the stages already finished)");
  p.flag("check", &check, "validate the options and exit without running");
  add_run_options(p, job.settings,
                  {OptionGroup::kData, OptionGroup::kTrainingData, OptionGroup::kTraining,
                   OptionGroup::kRuntime},
                  "the dataset recorded in the model");
  const MethodInfo* info = nullptr;
  if (!job.method.empty() && !has_recipe_arg(args)) {  // a recipe's stages name their methods
    try {
      info = &find_method(job.method);
    } catch (const c10::Error& e) {
      throw UsageError(std::string("--method: ") + e.what_without_backtrace());
    }
    p.section(job.method + " options");
    for (const auto& o : info->options) {
      job.method_options[o.key] = o.default_value;
      p.option(o.key, &job.method_options[o.key], "V", o.help);
    }
  }
  if (!p.parse(args)) return 0;
  job.group = join_launched_group(job.settings);  // under torchrun: this process's rank
  job.given = p.given_names();
  job.progress = job.settings.quiet ? nullptr : &std::cout;
  job.progress_bar = !job.settings.quiet && ::isatty(STDOUT_FILENO);
  job.notes = &std::cerr;
  if (!recipe.empty()) {
    if (job.group)
      throw UsageError(
          "--recipe does not run data-parallel yet (one stage at a time does: "
          "nnslim compress --method NAME under torchrun, --model the last stage's "
          "output)");
    if (job.input_model.empty()) throw UsageError("--model IN.nnslim is required");
    if (job.out_dir.empty()) throw UsageError("--out DIR is required");
    set_threads(job.settings.threads);
    return compress_with_recipe(recipe, job, check);
  }
  if (!info) throw UsageError("--method NAME is required\n" + methods_help());
  if (job.input_model.empty()) throw UsageError("--model IN.nnslim is required");
  CompressRun run(job);  // validates the method's and the run's options
  print_notes(run.ineffective_options());
  set_threads(job.settings.threads);
  run.prepare();
  if (check) {  // everything above, without the data or the training
    if (!job.settings.quiet)
      std::cout << "ok: would compress " << job.input_model << " with " << job.method << " on "
                << run.job().settings.data.dataset << " into " << job.out_dir
                << (job.resume ? " (resuming)" : "") << "\n";
    return 0;
  }
  CompressRunOutcome r = run.run();
  if (r.already_finished) {
    if (!writes_files(job.group)) return 0;
    std::cout << "the run in " << job.out_dir << " is already finished (" << job.out_dir
              << "/summary.json); nothing to do\n";
    return 0;
  }
  if (!job.settings.quiet && writes_files(job.group)) print_result_table(r.result, job.out_dir);
  return 0;
}

}  // namespace nnslim::cli
