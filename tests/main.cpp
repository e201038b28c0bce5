// Test entry point: use every core (Debian's LibTorch defaults to one thread).
#include "nnslim/train/threads.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>

int main(int argc, char** argv) {
  nnslim::set_compute_threads(0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
