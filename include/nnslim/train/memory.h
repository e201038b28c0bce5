// How the process's allocator treats the large, short-lived buffers of training and inference.
#pragma once

namespace nnslim {

// Serves every tensor buffer from glibc's heap and keeps freed memory mapped at its high-water
// mark, so each training step or forward pass reuses the previous one's pages instead of mapping
// fresh ones (and paying their page faults and zeroing) again. No-op off glibc, and when the
// environment sets NNSLIM_DEFAULT_MALLOC (for A/B measurements). Call once, early in main().
void keep_tensor_memory_in_heap();

}  // namespace nnslim
