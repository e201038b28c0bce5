#include "nnslim/train/memory.h"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace nnslim {

// glibc serves blocks above a threshold (128 KiB, rising dynamically to at most 32 MiB on 64-bit)
// with mmap and unmaps them on free, and returns freed heap tops to the kernel. Training and
// inference allocate and free the same multi-MiB buffers on every step, so each step paid page
// faults for them again. Measured (docs/RESULTS.md, "Training throughput"):
//  - the threshold at its 32 MiB maximum and no trimming: resnet20 training steps median 1.12x;
//  - buffers of 32 MiB and more could still only be mmapped (mobilenetv2 at batch 64-128 on
//    32x32 input: 64 x 144 x 32 x 32 floats = 36 MiB); no mmap at all: mobilenetv2 training
//    65 -> 96 img/s (48-54 -> 95-98 against glibc's defaults), dense batch-64 inference
//    ~440 -> ~220 ms (1 thread). resnet20 and vgg16, whose buffers stay below 32 MiB, did not
//    change.
// Peak memory is unchanged (the buffers are live at the same time either way); freed memory stays
// mapped for the next step instead of going back to the kernel. With mmap off, glibc still falls
// back to mmap if the heap cannot grow, so allocations do not fail because of this.
void keep_tensor_memory_in_heap() {
#if defined(__GLIBC__)
  if (std::getenv("NNSLIM_DEFAULT_MALLOC")) return;
  mallopt(M_MMAP_MAX, 0);  // never mmap single blocks: the heap serves them all (this also stops
                           // glibc's dynamic threshold, so no M_MMAP_THRESHOLD is needed)
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
#endif
}

}  // namespace nnslim
