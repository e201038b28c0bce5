// Does unstructured sparsity (gRDA, METHODS.md §5) buy inference speed on this CPU?
//
//   build-*/sparse_inference [batch] [seconds per measurement] [threads]
//
// Threads default to all cores; on a machine shared with other jobs pass 1 (a parallel region
// waits for its slowest thread, so a descheduled thread costs a whole time slice).
//
// For every distinct conv of resnet20 and vgg16 at the Fashion-MNIST input shape (1x32x32: the
// 28x28 images are zero-padded to 32x32 by the data loader), with
// random weights of which a fraction s in {0.9, 0.95, 0.98} is exactly zero (uniformly spread,
// as gRDA's element-wise sparsity), it times one forward of the conv:
//   dense     torch::conv2d (what the executor does today)
//   gemm      im2col + dense torch::mm (conv-as-GEMM, dense), one image at a time
//   coo       im2col + torch::mm(sparse COO weight, cols)        (LibTorch's sparse kernel)
//   csr       im2col + torch::mm(sparse CSR weight, cols)        (LibTorch >= 1.10, if it runs)
//   own-csr   our im2col + CSR kernel (graph/sparse_conv.h, SparseConvKernel::kIm2colCsr)
//   (the sparse GEMMs also go one image at a time, like gemm)
//   direct    our direct sparse convolution (SparseConvKernel::kDirect): every nonzero
//             w[n,c,dy,dx] adds w * (shifted input plane c) to output plane n; no im2col (Park
//             et al. 2017 style)
// and prints per-layer times (fastest run), the network totals (each conv weighted by how often
// it occurs) and dense/sparse ratios (> 1 means the sparse version is faster). Only the
// convolutions are timed (they are > 95% of the MACs of both networks). Weights are converted to
// their sparse format once, outside the timed region, as a deployed model would.
#include "nnslim/graph/kernels/sparse_conv.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/graph/shape.h"
#include "nnslim/models/zoo.h"
#include "nnslim/train/memory.h"
#include "nnslim/train/threads.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace nnslim;

namespace {

using Clock = std::chrono::steady_clock;

// Fastest of at least 3 runs and `seconds` of running, in milliseconds. The minimum, not the
// median: on a shared machine the median measures the neighbours; the minimum is the cost of
// the kernel itself (both dense and sparse are measured the same way).
template <typename F>
double time_ms(double seconds, F f) {
  f();  // warm-up
  std::vector<double> t;
  auto start = Clock::now();
  while (t.size() < 3 || std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (t.size() >= 2000) break;
  }
  return *std::min_element(t.begin(), t.end());
}

struct ConvSpec {
  int64_t cin, cout, k, stride, pad, h, w;
  int64_t hout() const { return (h + 2 * pad - k) / stride + 1; }
  int64_t wout() const { return (w + 2 * pad - k) / stride + 1; }
  bool operator<(const ConvSpec& o) const {
    return std::tie(cin, cout, k, stride, pad, h, w) <
           std::tie(o.cin, o.cout, o.k, o.stride, o.pad, o.h, o.w);
  }
};

// Distinct (ungrouped, square-kernel) convs of a zoo model and how often each occurs.
std::map<ConvSpec, int> model_convs(const std::string& name) {
  Graph g = build_model(name, {1, 32, 32}, 10);
  auto shapes = infer_shapes(g);
  std::map<ConvSpec, int> out;
  for (const auto& n : g.nodes) {
    if (n.op != Op::kConv2d || n.attrs.groups != 1) continue;
    const auto& in = shapes.at(n.inputs[0]);
    const auto& w = n.params.at("weight");
    ConvSpec s{in[0], w.size(0), w.size(2), n.attrs.stride[0], n.attrs.padding[0], in[1], in[2]};
    ++out[s];
  }
  return out;
}

struct Times {
  double dense = 0, gemm = 0, coo = 0, csr = 0, own = 0, direct = 0;
  bool csr_ok = true;
};

Times time_conv(const ConvSpec& s, double sparsity, int64_t batch, double seconds) {
  torch::NoGradGuard ng;
  auto x = torch::randn({batch, s.cin, s.h, s.w});
  auto w = torch::randn({s.cout, s.cin, s.k, s.k});
  w.masked_fill_(torch::rand(w.sizes()) < sparsity, 0);
  const int64_t Ho = s.hout(), Wo = s.wout(), L = Ho * Wo, K = s.cin * s.k * s.k;
  auto w2 = w.reshape({s.cout, K});
  auto ref = torch::conv2d(x, w, {}, s.stride, s.pad);
  // Conv-as-GEMM one image at a time (im2col of one image stays in cache): y[b] = W * cols(b),
  // W [cout, K], cols(b) [K, L].
  auto cols_of = [&](int64_t b) {
    return torch::im2col(x.narrow(0, b, 1), {s.k, s.k}, {1, 1}, {s.pad, s.pad},
                         {s.stride, s.stride})[0];
  };
  auto per_image = [&](auto mm) {
    auto y = torch::empty({batch, s.cout, Ho, Wo});
    for (int64_t b = 0; b < batch; ++b) y[b].view({s.cout, L}).copy_(mm(cols_of(b)));
    return y;
  };
  Times t;
  t.dense = time_ms(seconds, [&] { torch::conv2d(x, w, {}, s.stride, s.pad); });
  auto dense_mm = [&](const torch::Tensor& c) { return torch::mm(w2, c); };
  t.gemm = time_ms(seconds, [&] { per_image(dense_mm); });
  auto coo = w2.to_sparse();
  auto coo_mm = [&](const torch::Tensor& c) { return torch::mm(coo, c); };
  TORCH_CHECK(per_image(coo_mm).allclose(ref, 1e-3, 1e-3));
  t.coo = time_ms(seconds, [&] { per_image(coo_mm); });
  try {
    auto csr = w2.to_sparse_csr();
    auto csr_mm_torch = [&](const torch::Tensor& c) { return torch::mm(csr, c); };
    TORCH_CHECK(per_image(csr_mm_torch).allclose(ref, 1e-3, 1e-3));
    t.csr = time_ms(seconds, [&] { per_image(csr_mm_torch); });
  } catch (const c10::Error&) {
    t.csr_ok = false;
  }
  // Our kernels (graph/sparse_conv.h), as the executor runs them when the plan picks them.
  auto sw = to_sparse_conv_weight(w);
  auto own_run = [&] {
    return sparse_conv2d(x, sw, {}, {s.stride}, {s.pad}, {1}, SparseConvKernel::kIm2colCsr);
  };
  TORCH_CHECK(own_run().allclose(ref, 1e-3, 1e-3));
  t.own = time_ms(seconds, own_run);
  auto direct_run = [&] {
    return sparse_conv2d(x, sw, {}, {s.stride}, {s.pad}, {1}, SparseConvKernel::kDirect);
  };
  TORCH_CHECK(direct_run().allclose(ref, 1e-3, 1e-3));
  t.direct = time_ms(seconds, direct_run);
  return t;
}

// File sizes of a model whose conv/linear weights are magnitude-pruned to `sparsity` (per tensor),
// as *.nnslim format 2 (sparse encodings) and format 1 (dense).
void file_sizes(const std::string& name) {
  for (double sp : {0.0, 0.9, 0.95, 0.98}) {
    torch::manual_seed(0);
    Graph g = build_model(name, {1, 32, 32}, 10);
    torch::NoGradGuard ng;
    int64_t zeros = 0, total = 0;
    for (auto& n : g.nodes) {
      for (auto& [k, t] : n.params) {
        total += t.numel();
        if (k == "weight" && t.dim() >= 2 && sp > 0) {
          auto kth = static_cast<int64_t>(sp * t.numel());
          auto thr = std::get<0>(t.abs().flatten().kthvalue(kth));
          t.masked_fill_(t.abs() <= thr, 0);
        }
        zeros += t.numel() - t.count_nonzero().item<int64_t>();
      }
    }
    const double v2 = graph_to_bytes(g).size() + 28, v1 = graph_to_bytes(g, 1).size() + 28;
    std::printf(
        "%-9s weights %3.0f%% sparse (all params %5.1f%%): dense %9.0f B, sparse %9.0f B "
        "= %5.1f%% of dense\n",
        name.c_str(), 100 * sp, 100.0 * zeros / total, v1, v2, 100 * v2 / v1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int64_t batch = argc > 1 ? std::atoll(argv[1]) : 1;
  double seconds = argc > 2 ? std::atof(argv[2]) : 0.2;
  int threads = argc > 3 ? std::atoi(argv[3])
                         : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  nnslim::set_compute_threads(threads);
  nnslim::keep_tensor_memory_in_heap();  // allocate as the nnslim binary does
  std::printf("sparse vs dense conv inference: batch %lld, %d threads, LibTorch %s\n",
              (long long)batch, threads, TORCH_VERSION);
  std::printf("\n*.nnslim file sizes (format 2 sparse encodings vs format 1 dense):\n");
  file_sizes("resnet20");
  file_sizes("vgg16");
  std::printf(
      "\ntimes in ms (fastest run); ratio = dense conv2d time / sparse time (> 1: sparse "
      "wins)\n");
  for (const char* model : {"resnet20", "vgg16"}) {
    auto convs = model_convs(model);
    std::printf("\n== %s (1x32x32): %zu distinct convs\n", model, convs.size());
    std::printf("%-22s %4s %6s %5s %8s %8s %8s %8s %8s %8s  %6s %6s\n", "conv cin>cout k s @HxW",
                "#", "sparse", "", "dense", "gemm", "coo", "csr", "own-csr", "direct", "own",
                "direct");
    for (double sp : {0.9, 0.95, 0.98}) {
      Times total;
      bool csr_ok = true;
      for (const auto& [s, count] : convs) {
        Times t = time_conv(s, sp, batch, seconds);
        char name[64];
        std::snprintf(name, sizeof name, "%lld>%lld k%lld s%lld @%lldx%lld", (long long)s.cin,
                      (long long)s.cout, (long long)s.k, (long long)s.stride, (long long)s.h,
                      (long long)s.w);
        char csr[16];
        if (t.csr_ok)
          std::snprintf(csr, sizeof csr, "%8.3f", t.csr);
        else
          std::snprintf(csr, sizeof csr, "%8s", "n/a");
        std::printf("%-22s %4d %5.0f%% %5s %8.3f %8.3f %8.3f %s %8.3f %8.3f  %5.2fx %5.2fx\n", name,
                    count, 100 * sp, "", t.dense, t.gemm, t.coo, csr, t.own, t.direct,
                    t.dense / t.own, t.dense / t.direct);
        total.dense += count * t.dense;
        total.gemm += count * t.gemm;
        total.coo += count * t.coo;
        total.csr += count * t.csr;
        total.own += count * t.own;
        total.direct += count * t.direct;
        csr_ok &= t.csr_ok;
      }
      char csr[16];
      if (csr_ok)
        std::snprintf(csr, sizeof csr, "%8.3f", total.csr);
      else
        std::snprintf(csr, sizeof csr, "%8s", "n/a");
      std::printf("%-22s %4s %5.0f%% %5s %8.3f %8.3f %8.3f %s %8.3f %8.3f  %5.2fx %5.2fx\n",
                  "TOTAL (all convs)", "", 100 * sp, "", total.dense, total.gemm, total.coo, csr,
                  total.own, total.direct, total.dense / total.own, total.dense / total.direct);
      std::printf(
          "  best sparse / dense conv2d: coo %.2fx, csr %s, own-csr %.2fx, direct %.2fx\n",
          total.dense / total.coo,
          csr_ok ? (std::to_string(total.dense / total.csr).substr(0, 4) + "x").c_str() : "n/a",
          total.dense / total.own, total.dense / total.direct);
    }
  }
  return 0;
}
