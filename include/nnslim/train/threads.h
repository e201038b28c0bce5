// One thread count for every compute library nnslim calls.
#pragma once

namespace nnslim {

// Sets LibTorch's intra-op threads and, when the process uses OpenBLAS (Debian's BLAS/LAPACK
// for LibTorch: linear layers, SVDs), OpenBLAS's own pool to `threads` (0 = all cores); returns
// the count set. OpenBLAS otherwise keeps one thread per core whatever LibTorch was told:
// `--threads 1` next to another job then made every TRP SVD step 5x slower (measured).
int set_compute_threads(int threads);

}  // namespace nnslim
