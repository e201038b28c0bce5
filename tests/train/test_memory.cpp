// keep_tensor_memory_in_heap serves large tensor buffers from the heap instead of fresh mmaps.
#include "nnslim/train/memory.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

// Bytes glibc currently holds in single-block mmaps (the allocations that page-fault afresh each
// time they are made); -1 where that cannot be read.
static long long mmapped_bytes() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  return static_cast<long long>(mallinfo2().hblkhd);
#else
  return -1;
#endif
}

TEST(Memory, LargeTensorsComeFromTheHeap) {
  if (mmapped_bytes() < 0) GTEST_SKIP() << "needs glibc >= 2.33 (mallinfo2)";
  if (std::getenv("NNSLIM_DEFAULT_MALLOC")) GTEST_SKIP() << "NNSLIM_DEFAULT_MALLOC is set";
  // 48 MiB: above glibc's largest mmap threshold (32 MiB), so the default allocator can only
  // mmap it -- like mobilenetv2's batch-64 activations.
  const int64_t n = 12 << 20;
  long long before = mmapped_bytes();
  bool default_mmaps = false;
  {
    auto t = torch::ones({n});
    default_mmaps = mmapped_bytes() - before >= n * 4;
  }
  if (!default_mmaps) GTEST_SKIP() << "this process's allocator does not mmap large blocks anyway";
  nnslim::keep_tensor_memory_in_heap();
  before = mmapped_bytes();
  auto t = torch::ones({n});
  EXPECT_EQ(mmapped_bytes(), before)
      << "a 48 MiB tensor was mmapped after keep_tensor_memory_in_heap()";
  EXPECT_EQ(t.sum().item<double>(), static_cast<double>(n));
}
