// The linear algebra of TRP (METHODS.md §1.2, §1.4, §1.5; §6.7): thin SVD, rank criteria,
// rank-r projection and the nuclear-norm sub-gradient.
//
// The matricisations of a conv weight (matricize / unmatricize / max_rank for the channel "NC"
// and spatial "VH" schemes) are declared in graph/factorize.h, which this header includes: the
// surgery in graph/ needs them and graph/ never includes methods/.
#pragma once

#include "nnslim/graph/factorize.h"

#include <cstdint>
#include <vector>

namespace nnslim {

// m = u diag(s) vh with k = min(rows, cols):
//   u [rows, k], s [k] (descending, >= 0), vh [k, cols]   (a leading batch dimension is kept).
struct Svd {
  torch::Tensor u, s, vh;
};

// Thin SVD (torch::linalg_svd, full_matrices = false) on m's device, in float64 when m is float64
// and in float32 otherwise (METHODS.md §1.5). Throws c10::Error if it fails (no convergence,
// non-finite input).
Svd thin_svd(const torch::Tensor& m);

// Singular values only, descending, in float64 on the CPU (rank selection); batched like m.
torch::Tensor singular_values(const torch::Tensor& m);

// EnergyThreshold(e), METHODS.md §1.4: the smallest k >= 1 with sum_{i<=k} s_i^2 >= e * sum s_i^2
// (k = len(s) if rounding leaves none). s: 1-D, descending. Requires 0 < e <= 1.
int64_t energy_rank(const torch::Tensor& s, double e);
// ValueThreshold(tau), METHODS.md §1.4: #{i : s_i >= tau} (may be 0). s: 1-D, descending.
int64_t value_rank(const torch::Tensor& s, double tau);
// Per matrix of a batch: s [B, k] (or [k], giving one rank).
std::vector<int64_t> energy_ranks(const torch::Tensor& s, double e);
// The same on plain vectors (rank searches that evaluate many thresholds).
int64_t energy_rank(const std::vector<double>& s, double e);
int64_t value_rank(const std::vector<double>& s, double tau);

// u_r diag(s_r) vh_r: the best rank-r approximation (Eckart-Young), in the SVD's dtype.
// Requires 0 <= r <= k (r = 0 gives zeros).
torch::Tensor low_rank(const Svd& svd, int64_t r);
// u_r vh_r: the sub-gradient of the nuclear norm ||m||_* (r = -1: all k singular vectors, the
// full sub-gradient U V^T of METHODS.md §1.5).
torch::Tensor nuclear_subgradient(const Svd& svd, int64_t r = -1);

// Batched forms with one rank per matrix (ranks.size() == B, or 1 for an unbatched SVD): the
// network-decoupling scheme truncates every filter's matrix at its own rank.
torch::Tensor low_rank(const Svd& svd, const std::vector<int64_t>& ranks);
torch::Tensor nuclear_subgradient(const Svd& svd, const std::vector<int64_t>& ranks);

// Projection of m onto matrices of rank <= r (result in m's dtype and device).
torch::Tensor project_rank(const torch::Tensor& m, int64_t r);

// The same for a conv weight W [n, c, kh, kw] in scheme s: unmatricize(project_rank(M(W), r)).
torch::Tensor project_conv_weight(const torch::Tensor& weight, Scheme s, int64_t r);

}  // namespace nnslim
