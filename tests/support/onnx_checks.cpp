#include "support/onnx_checks.h"

#include "nnslim/graph/execute.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#ifdef NNSLIM_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#endif

#include <fstream>
#include <iterator>

namespace nnslim::testing {

torch::Tensor eval(const Graph& g, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return forward(g, x, Mode::kEval);
}

void expect_close(const torch::Tensor& ref, const torch::Tensor& got, const std::string& label) {
  ASSERT_EQ(ref.sizes(), got.sizes()) << label;
  double scale = std::max(1.0, ref.abs().max().item<double>());
  EXPECT_LE(max_abs_diff(ref, got), 1e-4 * scale) << label;
}

torch::Tensor read_floats(const std::string& path, const std::vector<int64_t>& shape) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), {});
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  if (!f.good() && !f.eof()) ADD_FAILURE() << "cannot read " << path;
  if (static_cast<int64_t>(bytes.size()) != numel * 4) {
    ADD_FAILURE() << path << ": " << bytes.size() << " bytes, expected " << numel * 4;
    return {};
  }
  return torch::from_blob(bytes.data(), {numel}, torch::kFloat).clone().reshape(shape);
}

#ifdef NNSLIM_HAVE_OPENCV
torch::Tensor run_opencv(const std::string& path, const torch::Tensor& x) {
  cv::setNumThreads(1);
  cv::dnn::Net net = cv::dnn::readNetFromONNX(path);
  auto xc = x.contiguous();
  int sizes[4] = {static_cast<int>(x.size(0)), static_cast<int>(x.size(1)),
                  static_cast<int>(x.size(2)), static_cast<int>(x.size(3))};
  cv::Mat blob(4, sizes, CV_32F, xc.data_ptr<float>());
  net.setInput(blob);
  cv::Mat out = net.forward();
  std::vector<int64_t> shape(out.size.p, out.size.p + out.dims);
  return torch::from_blob(out.ptr<float>(), shape, torch::kFloat).clone();
}
#endif

}  // namespace nnslim::testing
