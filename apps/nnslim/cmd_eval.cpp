// nnslim eval: accuracy and loss of a saved model on a dataset's test split.
#include "common.h"

#include "nnslim/graph/serialize.h"

#include <cmath>
#include <iostream>
#include <stdexcept>

namespace nnslim::cli {

int cmd_eval(const std::vector<std::string>& args) {
  std::string model_path;
  bool json = false;
  int64_t batch = 256, threads = 0;
  std::string device = "auto";
  RunSettings settings;
  DataSelection& data = settings.data;
  ArgParser p("eval", "nnslim eval MODEL [--dataset NAME] [--data-dir DIR] [--json]",
              "Evaluates a saved model (*.nnslim) on the test split: top-1, top-5 and loss.\n"
              "Inputs are normalised with the statistics stored in the model file.");
  ModelFileArg model_arg;
  model_arg.add_to(p);
  p.flag("json", &json, "print a JSON object instead of text");
  p.option("batch-size", &batch, "B", "evaluation batch size");
  p.option("device", &device, "DEV", "cpu, cuda or auto");
  p.option("threads", &threads, "N", "CPU threads (0 = all cores)");
  add_run_options(p, settings, {OptionGroup::kData}, "the dataset recorded in the model");
  if (!p.parse(args)) return 0;
  model_path = model_arg.path();
  if (batch < 1) throw UsageError("--batch-size must be >= 1");
  set_threads(threads);
  Graph g = load_model_file(model_path);
  auto it = g.meta.find("dataset");
  if (!p.given("dataset") && it != g.meta.end()) data.dataset = it->second;
  follow_model(data, g);
  data.check_train = false;  // an image folder's training images are not decoded
  auto d = load_data(data);
  check_model_fits_data(g, d.test, model_path);
  torch::Device dev = parse_device(device);
  g.to(dev);
  EvalResult r = evaluate(g, d.test, batch, dev);
  if (!std::isfinite(r.loss))
    throw std::runtime_error(model_path + " computes non-finite outputs (loss " +
                             std::to_string(r.loss) + "): its weights contain NaN/Inf or its " +
                             "normalisation is broken; the model cannot be evaluated");
  if (json) {
    Json j = Json::object();
    j.set("model", model_path);
    j.set("dataset", data.dataset);
    j.set("examples", r.examples);
    j.set("top1", r.top1);
    j.set("top5", r.top5);
    j.set("loss", r.loss);
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("%s on %s (%lld test images): top-1 %.2f%%  top-5 %.2f%%  loss %.4f\n",
                model_path.c_str(), data.dataset.c_str(), (long long)r.examples, r.top1, r.top5,
                r.loss);
  }
  return 0;
}

}  // namespace nnslim::cli
