// Helpers of the ONNX tests: running a graph, comparing outputs at the tolerance the tests use,
// reading PyTorch's reference tensors, and running an ONNX file in OpenCV's DNN module (an
// independent runtime; only when the tests are built with it, NNSLIM_HAVE_OPENCV).
#pragma once

#include "nnslim/graph/graph.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace nnslim::testing {

// The graph's output in eval mode, without autograd.
torch::Tensor eval(const Graph& g, const torch::Tensor& x);

// Tolerance 1e-4, relative to the output's scale when that exceeds 1.
void expect_close(const torch::Tensor& ref, const torch::Tensor& got, const std::string& label);

// A file of float32 values (little endian, as numpy's tofile writes), reshaped. Fails the test
// (ADD_FAILURE) and returns an empty tensor when the file is missing or has the wrong size.
torch::Tensor read_floats(const std::string& path, const std::vector<int64_t>& shape);

#ifdef NNSLIM_HAVE_OPENCV
// Runs the ONNX file at `path` on x [N, C, H, W] in OpenCV's DNN module (one thread).
torch::Tensor run_opencv(const std::string& path, const torch::Tensor& x);
#endif

}  // namespace nnslim::testing
