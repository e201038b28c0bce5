#include "nnslim/train/threads.h"

#include <torch/torch.h>

#include <dlfcn.h>

#include <algorithm>
#include <thread>

namespace nnslim {

int set_compute_threads(int threads) {
  int n =
      threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  // Looked up at run time: LibTorch builds with MKL (e.g. PyTorch's wheels) have no OpenBLAS,
  // and torch::set_num_threads already covers MKL.
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
  return n;
}

}  // namespace nnslim
