// set_compute_threads sets LibTorch's and, where the process has one, OpenBLAS's thread count.
#include "nnslim/train/threads.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <dlfcn.h>

#include <thread>

namespace nnslim {
namespace {

TEST(Threads, OneCountForLibTorchAndOpenBlas) {
  using GetThreads = int (*)();
  auto openblas_threads =
      reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  EXPECT_EQ(set_compute_threads(1), 1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  if (openblas_threads) {
    EXPECT_EQ(openblas_threads(), 1);
  }
  const int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(set_compute_threads(0), all);  // back to the test binary's setting
  EXPECT_EQ(torch::get_num_threads(), all);
  if (openblas_threads) {
    EXPECT_EQ(openblas_threads(), all);
  }
  if (!openblas_threads) GTEST_SKIP() << "no OpenBLAS in this process (LibTorch with MKL?)";
}

}  // namespace
}  // namespace nnslim
