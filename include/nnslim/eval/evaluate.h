// Evaluation: loss, top-1 and top-5 accuracy of a graph on a dataset.
#pragma once

#include "nnslim/data/dataset.h"
#include "nnslim/graph/graph.h"

#include <torch/types.h>

namespace nnslim {

struct EvalResult {
  double loss = 0;
  double top1 = 0;  // percent
  double top5 = 0;  // percent (top-k with k = min(5, classes))
  int64_t examples = 0;
};

// Eval mode, no gradients, batches in dataset order, no augmentation. The dataset is normalised
// with the *graph's* mean/std metadata when present (so a model is evaluated as it was trained),
// otherwise with the dataset's own statistics.
EvalResult evaluate(const Graph& graph, const Dataset& data, int64_t batch_size = 256,
                    torch::Device device = torch::kCPU);

// Number of correct predictions in the top-k of logits [B, K] for labels [B].
int64_t count_topk_correct(const torch::Tensor& logits, const torch::Tensor& labels, int64_t k);

// Stores the dataset's name and normalisation into the graph's metadata ("dataset", "mean",
// "std", "classes", and "class_names" -- a JSON array -- where the data names its classes), so
// the file alone says how to feed it.
void stamp_dataset(Graph& graph, const Dataset& data);
// The class names stored by stamp_dataset (empty if none).
std::vector<std::string> graph_class_names(const Graph& graph);
// Reads back the normalisation stored by stamp_dataset (empty vectors if absent).
void graph_normalisation(const Graph& graph, std::vector<float>& mean, std::vector<float>& std);

// The dataset with the graph's stored normalisation (when the graph has one for as many
// channels), so batches are normalised the way the model was trained. Shares the image tensors.
Dataset with_graph_normalisation(const Graph& graph, const Dataset& data);

}  // namespace nnslim
