#include "nnslim/eval/recalibrate.h"

#include "nnslim/data/loader.h"
#include "nnslim/graph/execute.h"

#include <torch/torch.h>

namespace nnslim {

void recalibrate_bn(Graph& graph, const Dataset& data, int64_t batches, int64_t batch_size,
                    uint64_t seed) {
  TORCH_CHECK(batches >= 1, "BN recalibration needs at least one batch");
  std::vector<Node*> bns;
  std::vector<double> momenta;
  torch::NoGradGuard no_grad;
  for (auto& n : graph.nodes)
    if (n.op == Op::kBatchNorm2d) {
      n.buffers.at("running_mean").zero_();
      n.buffers.at("running_var").fill_(1.0);
      bns.push_back(&n);
      momenta.push_back(n.attrs.momentum);
    }
  if (bns.empty()) return;
  LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.seed = seed;
  EpochLoader loader(data, lo, 0);
  auto params = graph.parameters();
  auto device = params[0].device();
  auto dtype = params[0].scalar_type();
  for (int64_t k = 0; k < batches; ++k) {
    auto b = loader.next();
    if (!b) break;
    // Momentum 1/(k+1) turns the exponential average into the exact mean over the batches.
    for (auto* n : bns) n->attrs.momentum = 1.0 / static_cast<double>(k + 1);
    forward(graph, b->x.to(device, dtype), Mode::kTrain);
  }
  for (size_t i = 0; i < bns.size(); ++i) bns[i]->attrs.momentum = momenta[i];
}

}  // namespace nnslim
