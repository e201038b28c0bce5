#include "nnslim/eval/evaluate.h"

#include "nnslim/core/json.h"
#include "nnslim/data/loader.h"
#include "nnslim/graph/execute.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace nnslim {

int64_t count_topk_correct(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k) {
  k = std::min<int64_t>(k, logits.size(1));
  auto top = std::get<1>(logits.topk(k, 1));
  return top.eq(labels.view({-1, 1})).any(1).sum().item<int64_t>();
}

namespace {
std::string join_floats(const std::vector<float>& v) {
  std::ostringstream os;
  os.precision(9);
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}
// The model file's "mean"/"std" metadata: finite numbers, std > 0 (a file edited by hand or an
// imported ONNX model could say anything; std = 0 would turn every input into inf).
std::vector<float> split_floats(const std::string& s, const char* key) {
  std::vector<float> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    float v = std::strtof(item.c_str(), &end);
    TORCH_CHECK(!item.empty() && end && *end == '\0' && std::isfinite(v),
                "the model's normalisation metadata '", key, "' is not a list of numbers: '", s,
                "'");
    TORCH_CHECK(std::string(key) != "std" || v > 0,
                "the model's normalisation metadata 'std' must be "
                "> 0, got '",
                s, "'");
    out.push_back(v);
  }
  return out;
}
}  // namespace

void stamp_dataset(Graph& graph, const Dataset& data) {
  graph.meta["dataset"] = data.name;
  graph.meta["classes"] = std::to_string(data.classes);
  graph.meta["mean"] = join_floats(data.mean);
  graph.meta["std"] = join_floats(data.std);
  if (!data.class_names.empty()) {
    graph.meta["class_names"] = Json::array_of(data.class_names).dump();
  }
}

std::vector<std::string> graph_class_names(const Graph& graph) {
  std::vector<std::string> out;
  auto it = graph.meta.find("class_names");
  if (it == graph.meta.end()) return out;
  const Json j = Json::parse(it->second);
  TORCH_CHECK(j.is_array(), "the model's 'class_names' metadata is not a JSON array");
  for (const auto& n : j.items()) out.push_back(n.str());
  return out;
}

void graph_normalisation(const Graph& graph, std::vector<float>& mean, std::vector<float>& std) {
  mean.clear();
  std.clear();
  auto m = graph.meta.find("mean"), s = graph.meta.find("std");
  if (m == graph.meta.end() || s == graph.meta.end()) return;
  mean = split_floats(m->second, "mean");
  std = split_floats(s->second, "std");
}

Dataset with_graph_normalisation(const Graph& graph, const Dataset& data) {
  Dataset d = data;
  std::vector<float> mean, std;
  graph_normalisation(graph, mean, std);
  if (mean.size() == d.mean.size() && std.size() == d.std.size()) {
    d.mean = mean;
    d.std = std;
  }
  return d;
}

EvalResult evaluate(const Graph& graph, const Dataset& data, int64_t batch_size,
                    torch::Device device) {
  TORCH_CHECK(batch_size >= 1, "eval batch size must be >= 1");
  TORCH_CHECK(data.size() > 0, "cannot evaluate on an empty dataset");
  auto shape = data.image_shape();
  TORCH_CHECK(shape == graph.input_shape, "dataset images are ", shape, " but the model expects ",
              graph.input_shape);
  std::vector<float> mean, std;
  graph_normalisation(graph, mean, std);
  if (mean.size() != static_cast<size_t>(shape[0]) || std.size() != mean.size()) {
    mean = data.mean;
    std = data.std;
  }
  auto m = torch::tensor(mean).view({1, -1, 1, 1}).to(device);
  auto s = torch::tensor(std).view({1, -1, 1, 1}).to(device);
  auto params = graph.parameters();
  auto dtype = params.empty() ? torch::kFloat : params[0].scalar_type();
  torch::NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0;
  int64_t c1 = 0, c5 = 0;
  auto score = [&](const torch::Tensor& x, const torch::Tensor& y) {
    auto logits = forward(graph, x.to(dtype), Mode::kEval);
    loss_sum += torch::cross_entropy_loss(logits, y, {}, at::Reduction::Sum).item<double>();
    c1 += count_topk_correct(logits, y, 1);
    c5 += count_topk_correct(logits, y, 5);
  };
  if (data.source) {  // decoded and transformed (eval transforms) by the loader
    Dataset d = data;
    d.mean = mean;
    d.std = std;
    LoaderOptions lo;
    lo.batch_size = batch_size;
    lo.shuffle = false;
    EpochLoader loader(d, lo, 0);
    while (auto b = loader.next()) score(b->x.to(device), b->y.to(device));
  } else {
    for (int64_t i = 0; i < data.size(); i += batch_size) {
      int64_t n = std::min(batch_size, data.size() - i);
      auto x = data.images.narrow(0, i, n).to(device).to(torch::kFloat).div_(255.0).sub_(m).div_(s);
      score(x, data.labels.narrow(0, i, n).to(device));
    }
  }
  r.examples = data.size();
  r.loss = loss_sum / r.examples;
  r.top1 = 100.0 * c1 / r.examples;
  r.top5 = 100.0 * c5 / r.examples;
  return r;
}

}  // namespace nnslim
