#include "nnslim/methods/lowrank.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>

namespace nnslim {

Svd thin_svd(const torch::Tensor& m) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(m.dim() >= 2, "thin_svd: expects a matrix, got ", m.sizes());
  // METHODS.md §1.5: float32 on the parameter's device (float64 stays float64 for tests).
  auto x = m.detach();
  if (x.scalar_type() != torch::kDouble) x = x.to(torch::kFloat);
  auto r = torch::linalg_svd(x, /*full_matrices=*/false);
  Svd out{std::get<0>(r), std::get<1>(r), std::get<2>(r)};
  // LAPACK may return NaNs instead of failing on non-finite input: treat that as a failure.
  TORCH_CHECK(out.s.isfinite().all().item<bool>(), "thin_svd: non-finite singular values");
  return out;
}

torch::Tensor singular_values(const torch::Tensor& m) {
  torch::NoGradGuard no_grad;
  return torch::linalg_svdvals(m.detach().to(torch::kCPU, torch::kDouble));
}

namespace {
std::vector<double> to_vector(const torch::Tensor& s) {
  TORCH_CHECK(s.dim() == 1, "rank criteria expect 1-D singular values, got ", s.sizes());
  auto v = s.detach().to(torch::kCPU, torch::kDouble).contiguous();
  return std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
}
}  // namespace

int64_t energy_rank(const std::vector<double>& s, double e) {
  TORCH_CHECK(e > 0 && e <= 1, "energy_rank: energy must be in (0, 1], got ", e);
  TORCH_CHECK(!s.empty(), "energy_rank: no singular values");
  double total = 0;
  for (double x : s) total += x * x;
  // The prefix sums are accumulated in the same order as the total, so k = R always qualifies.
  double acc = 0;
  for (size_t k = 0; k < s.size(); ++k) {
    acc += s[k] * s[k];
    if (acc >= e * total) return static_cast<int64_t>(k) + 1;
  }
  return static_cast<int64_t>(s.size());
}

int64_t value_rank(const std::vector<double>& s, double tau) {
  int64_t k = 0;
  while (k < static_cast<int64_t>(s.size()) && s[k] >= tau) ++k;  // first s < tau (descending)
  return k;
}

int64_t energy_rank(const torch::Tensor& s, double e) { return energy_rank(to_vector(s), e); }

std::vector<int64_t> energy_ranks(const torch::Tensor& s, double e) {
  if (s.dim() == 1) return {energy_rank(s, e)};
  TORCH_CHECK(s.dim() == 2, "energy_ranks: expects [B, k] singular values, got ", s.sizes());
  auto v = s.detach().to(torch::kCPU, torch::kDouble).contiguous();
  std::vector<int64_t> out;
  const int64_t k = v.size(1);
  for (int64_t b = 0; b < v.size(0); ++b) {
    const double* p = v.data_ptr<double>() + b * k;
    out.push_back(energy_rank(std::vector<double>(p, p + k), e));
  }
  return out;
}

int64_t value_rank(const torch::Tensor& s, double tau) { return value_rank(to_vector(s), tau); }

torch::Tensor low_rank(const Svd& svd, int64_t r) {
  const int64_t k = svd.s.size(-1);
  TORCH_CHECK(r >= 0 && r <= k, "low_rank: rank must be in [0, ", k, "], got ", r);
  auto u = svd.u.narrow(-1, 0, r);
  auto s = svd.s.narrow(-1, 0, r);
  auto vh = svd.vh.narrow(-2, 0, r);
  return torch::matmul(u * s.unsqueeze(-2), vh);
}

torch::Tensor nuclear_subgradient(const Svd& svd, int64_t r) {
  const int64_t k = svd.s.size(-1);
  if (r < 0) r = k;
  TORCH_CHECK(r <= k, "nuclear_subgradient: rank must be at most ", k, ", got ", r);
  return torch::matmul(svd.u.narrow(-1, 0, r), svd.vh.narrow(-2, 0, r));
}

namespace {
// 1 for the singular values kept (index < rank of its matrix), 0 otherwise; shaped like svd.s.
torch::Tensor rank_mask(const Svd& svd, const std::vector<int64_t>& ranks) {
  const int64_t k = svd.s.size(-1);
  const int64_t batch = svd.s.dim() == 1 ? 1 : svd.s.size(0);
  TORCH_CHECK(svd.s.dim() <= 2 && static_cast<int64_t>(ranks.size()) == batch,
              "rank_mask: expects one rank per matrix (", batch, "), got ", ranks.size());
  std::vector<int64_t> r(ranks);
  for (auto x : r) TORCH_CHECK(x >= 0 && x <= k, "rank must be in [0, ", k, "], got ", x);
  auto idx = torch::arange(k, torch::TensorOptions().dtype(torch::kLong));
  auto lim = torch::tensor(r, torch::kLong).unsqueeze(1);
  auto mask = (idx.unsqueeze(0) < lim).to(svd.s.options());
  return svd.s.dim() == 1 ? mask.squeeze(0) : mask;
}
}  // namespace

torch::Tensor low_rank(const Svd& svd, const std::vector<int64_t>& ranks) {
  if (svd.s.dim() == 1) return low_rank(svd, ranks.at(0));
  auto s = svd.s * rank_mask(svd, ranks);
  return torch::matmul(svd.u * s.unsqueeze(-2), svd.vh);
}

torch::Tensor nuclear_subgradient(const Svd& svd, const std::vector<int64_t>& ranks) {
  if (svd.s.dim() == 1) return nuclear_subgradient(svd, ranks.at(0));
  return torch::matmul(svd.u * rank_mask(svd, ranks).unsqueeze(-2), svd.vh);
}

torch::Tensor project_rank(const torch::Tensor& m, int64_t r) {
  torch::NoGradGuard no_grad;
  return low_rank(thin_svd(m), r).to(m.scalar_type());
}

torch::Tensor project_conv_weight(const torch::Tensor& weight, Scheme s, int64_t r) {
  return unmatricize(project_rank(matricize(weight, s), r), s, weight.sizes());
}

}  // namespace nnslim
