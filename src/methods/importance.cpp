#include "nnslim/methods/importance.h"

#include "nnslim/data/loader.h"
#include "nnslim/graph/execute.h"

#include <torch/torch.h>

namespace nnslim {

namespace {
struct CriterionName {
  Criterion c;
  const char* name;
};
constexpr CriterionName kNames[] = {{Criterion::kL1, "l1"},         {Criterion::kL2, "l2"},
                                    {Criterion::kBn, "bn"},         {Criterion::kFpgm, "fpgm"},
                                    {Criterion::kTaylor, "taylor"}, {Criterion::kRandom, "random"}};

bool is_filter(const Graph& g, const ParamDim& pd) {
  const Node& n = g.node(pd.node);
  return pd.out_side && !pd.buffer && pd.param == "weight" &&
         (n.op == Op::kConv2d || n.op == Op::kLinear);
}

// A per-channel score summed over the group's coupled layers (METHODS §3.3: "coupled layers use
// the summed score"): `score` maps one producer's / depthwise layer's [channels, D] filter rows
// to [channels]. For l1 this equals scoring the concatenation; for l2 and fpgm it does not.
template <typename Score>
torch::Tensor summed_over_filters(const Graph& g, const Coupling& c, const ChannelGroup& grp,
                                  Score score) {
  auto s = torch::zeros({grp.channels}, torch::kDouble);
  for (const auto& pd : grp.params)
    if (is_filter(g, pd)) s += score(channel_rows(g, c, grp, pd).to(torch::kCPU, torch::kDouble));
  return s;
}

torch::Tensor l1_rows(const torch::Tensor& f) { return f.abs().sum(1); }

std::map<int, torch::Tensor> taylor(const Graph& graph, const Coupling& c,
                                    const ImportanceData& d) {
  TORCH_CHECK(d.train && d.train->size() > 0, "taylor importance needs training data");
  Graph g = graph.clone();
  std::map<int, torch::Tensor> acc;
  for (int id : c.prunable()) acc[id] = torch::zeros({c.groups[id].channels}, torch::kDouble);
  LoaderOptions lo;
  lo.batch_size = d.batch_size;
  lo.seed = d.seed;
  EpochLoader loader(*d.train, lo, 0);
  auto params = g.parameters();
  auto device = params.empty() ? torch::Device(torch::kCPU) : params[0].device();
  auto dtype = params.empty() ? torch::kFloat : params[0].scalar_type();
  for (int64_t b = 0; b < d.batches; ++b) {
    auto batch = loader.next();
    if (!batch) break;
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
    // Train-mode BN, as during training; running statistics of the copy are discarded.
    auto logits = forward(g, batch->x.to(device, dtype), Mode::kTrain);
    torch::cross_entropy_loss(logits, batch->y.to(device)).backward();
    torch::NoGradGuard ng;
    for (int id : c.prunable()) {
      const auto& grp = c.groups[id];
      auto s = torch::zeros({grp.channels}, torch::kDouble);
      for (const auto& pd : grp.params) {
        if (!pd.out_side || pd.buffer) continue;
        const auto& p = g.node(pd.node).params.at(pd.param);
        if (!p.grad().defined()) continue;
        // w * dL/dw, gathered per channel like the weights themselves (channel_rows reads
        // through the graph, so the product stands in for the parameter briefly).
        auto& node = g.node(pd.node);
        auto saved = node.params.at(pd.param);
        node.params.at(pd.param) = saved.detach() * saved.grad();
        s += channel_rows(g, c, grp, pd).to(torch::kCPU, torch::kDouble).sum(1);
        node.params.at(pd.param) = saved;
      }
      acc[id] += s * s;
    }
  }
  return acc;
}
}  // namespace

Criterion criterion_from_name(const std::string& name) {
  std::string known;
  for (const auto& n : kNames) {
    if (name == n.name) return n.c;
    known += known.empty() ? n.name : std::string(", ") + n.name;
  }
  TORCH_CHECK(false, "unknown importance criterion '", name, "' (known: ", known, ")");
}

const char* criterion_name(Criterion c) {
  for (const auto& n : kNames)
    if (n.c == c) return n.name;
  return "?";
}

std::map<int, torch::Tensor> channel_importance(const Graph& graph, const Coupling& c,
                                                Criterion criterion, const ImportanceData& d) {
  if (criterion == Criterion::kTaylor) return taylor(graph, c, d);
  std::map<int, torch::Tensor> out;
  torch::NoGradGuard ng;
  auto gen = at::detail::createCPUGenerator(d.seed);
  for (int id : c.prunable()) {
    const auto& grp = c.groups[id];
    switch (criterion) {
      case Criterion::kL1:
        out[id] = summed_over_filters(graph, c, grp, l1_rows);
        break;
      case Criterion::kL2:
        out[id] = summed_over_filters(
            graph, c, grp, [](const torch::Tensor& f) { return f.pow(2).sum(1).sqrt(); });
        break;
      case Criterion::kBn: {
        if (grp.norms.empty()) {
          out[id] = summed_over_filters(graph, c, grp, l1_rows);
          break;
        }
        auto s = torch::zeros({grp.channels}, torch::kDouble);
        for (const auto& pd : grp.params) {
          const Node& n = graph.node(pd.node);
          if (n.op == Op::kBatchNorm2d && pd.param == "weight" && !pd.buffer)
            s += channel_rows(graph, c, grp, pd).to(torch::kCPU, torch::kDouble).abs().sum(1);
        }
        out[id] = s;
        break;
      }
      case Criterion::kFpgm:
        // Each filter's summed distance to the layer's other filters (the geometric-median proxy).
        out[id] = summed_over_filters(graph, c, grp, [](const torch::Tensor& f) {
          return torch::cdist(f.unsqueeze(0), f.unsqueeze(0)).squeeze(0).sum(1);
        });
        break;
      case Criterion::kRandom:
        out[id] = torch::rand({grp.channels}, gen, torch::kDouble);
        break;
      case Criterion::kTaylor:
        break;
    }
  }
  return out;
}

}  // namespace nnslim
