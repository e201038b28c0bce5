#include "nnslim/dist/process_group.h"

#include "nnslim/core/error.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <sstream>

// c10d needs LibTorch built with distributed support (its CMake config then defines
// USE_C10D_GLOO) and Gloo's headers (Debian: libgloo-dev), which its headers include.
#if defined(USE_C10D_GLOO) && __has_include(<gloo/algorithm.h>)
#define NNSLIM_HAVE_C10D 1
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

namespace nnslim::dist {
namespace {

int64_t parse_int(const std::string& name, const std::string& text) {
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used == text.size() && v >= 0) return v;
  } catch (const std::exception&) {
  }
  throw RequestError("environment variable " + name + "='" + text +
                     "' is not a non-negative integer");
}

constexpr int64_t kBucketBytes = 25 << 20;  // DDP's default bucket cap

}  // namespace

LaunchEnv launch_env(const Getenv& getenv) {
  LaunchEnv env;
  auto get = [&](const char* name) { return getenv(name); };
  auto integer = [&](const char* name, int64_t fallback) {
    auto v = get(name);
    return v ? parse_int(name, *v) : fallback;
  };
  const char *rank_var = "RANK", *world_var = "WORLD_SIZE", *local_var = "LOCAL_RANK";
  if (get("RANK") || get("WORLD_SIZE")) {
    env.source = get("TORCHELASTIC_RUN_ID") ? "torchrun" : "env";
  } else if (get("SLURM_PROCID") && get("SLURM_NTASKS")) {
    env.source = "slurm";
    rank_var = "SLURM_PROCID", world_var = "SLURM_NTASKS", local_var = "SLURM_LOCALID";
  } else {
    return env;  // one process
  }
  if (!get(rank_var) || !get(world_var))
    throw RequestError(std::string("environment: ") + (get(rank_var) ? world_var : rank_var) +
                       " is missing while " + (get(rank_var) ? rank_var : world_var) +
                       " is set; a launcher (torchrun, srun) sets both");
  env.rank = integer(rank_var, 0);
  env.world_size = integer(world_var, 1);
  env.local_rank = integer(local_var, 0);
  env.local_world_size = std::max<int64_t>(
      1, integer(env.source == "slurm" ? "SLURM_NTASKS_PER_NODE" : "LOCAL_WORLD_SIZE", 1));
  if (env.world_size < 1) throw RequestError(std::string(world_var) + " must be at least 1");
  if (env.rank >= env.world_size)
    throw RequestError(std::string("environment: ") + rank_var + "=" + std::to_string(env.rank) +
                       " is not below " + world_var + "=" + std::to_string(env.world_size));
  if (auto a = get("MASTER_ADDR")) env.master_addr = *a;
  env.master_port = integer("MASTER_PORT", 29500);
  if (env.master_port < 1 || env.master_port > 65535)
    throw RequestError("MASTER_PORT=" + std::to_string(env.master_port) + " is not a TCP port");
  if (env.world_size > 1 && env.source == "slurm" && !get("MASTER_ADDR"))
    throw RequestError(
        "under srun, set MASTER_ADDR (the first host of $SLURM_JOB_NODELIST, e.g. "
        "`export MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1)`) and "
        "MASTER_PORT in the job script");
  auto agent = get("TORCHELASTIC_USE_AGENT_STORE");
  env.agent_store = agent && *agent == "True";
  env.restart_count = integer("TORCHELASTIC_RESTART_COUNT", 0);
  return env;
}

LaunchEnv launch_env_from_environment() {
  return launch_env([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

bool c10d_available() {
#ifdef NNSLIM_HAVE_C10D
  return true;
#else
  return false;
#endif
}

bool nccl_available() {
#if defined(NNSLIM_HAVE_C10D) && defined(USE_C10D_NCCL)
  return true;
#else
  return false;
#endif
}

std::string resolve_backend(const std::string& requested, bool cuda) {
  if (requested == "auto") return cuda && nccl_available() ? "nccl" : "gloo";
  if (requested != "gloo" && requested != "nccl")
    throw RequestError("--dist-backend: '" + requested + "' is not one of auto, gloo, nccl");
  if (requested == "nccl" && !nccl_available())
    throw RequestError(
        "--dist-backend nccl: this LibTorch has no NCCL (Debian's is CPU-only); use gloo");
  if (requested == "nccl" && !cuda)
    throw RequestError("--dist-backend nccl needs --device cuda; on the CPU use gloo");
  return requested;
}

#ifdef NNSLIM_HAVE_C10D
struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  // ProcessGroupGloo / ProcessGroupNCCL: their base class is ProcessGroup in LibTorch 1.13 and
  // Backend in 2.x; the collectives used here have the same signatures in both.
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#if defined(USE_C10D_NCCL)
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  template <typename F>
  void run(F&& f) {
#if defined(USE_C10D_NCCL)
    if (nccl) return f(*nccl);
#endif
    f(*gloo);
  }
};
#else
struct ProcessGroup::Impl {};
#endif

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl, int64_t rank, int64_t world,
                           std::string backend)
    : impl_(std::move(impl)), rank_(rank), world_size_(world), backend_(std::move(backend)) {}

ProcessGroup::~ProcessGroup() = default;

std::shared_ptr<ProcessGroup> ProcessGroup::join(const LaunchEnv& env, const std::string& backend,
                                                 std::chrono::seconds timeout) {
#ifndef NNSLIM_HAVE_C10D
  (void)timeout;
  throw RequestError("launched as rank " + std::to_string(env.rank) + " of " +
                     std::to_string(env.world_size) + " (" + env.source +
                     "), but this nnslim was built without c10d: install libgloo-dev (Debian) "
                     "and rebuild, or run one process");
#else
  auto impl = std::make_unique<Impl>();
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = !env.agent_store && env.rank == 0;  // torchrun's agent may serve it already
  so.numWorkers = static_cast<size_t>(env.world_size);
  so.waitWorkers = false;
  so.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  c10::intrusive_ptr<c10d::Store> tcp;
  try {
    tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    std::ostringstream msg;
    msg << "rank " << env.rank << " of " << env.world_size << ": cannot "
        << (so.isServer ? "serve" : "reach") << " the rendezvous store at " << env.master_addr
        << ":" << env.master_port << " (MASTER_ADDR:MASTER_PORT): " << e.what();
    throw std::runtime_error(msg.str());
  }
  // Keys of this attempt only: a restarted torchrun job meets a store with the last one's keys.
  impl->store = c10::make_intrusive<c10d::PrefixStore>(
      "nnslim/attempt_" + std::to_string(env.restart_count), tcp);
  const int rank = static_cast<int>(env.rank), world = static_cast<int>(env.world_size);
  if (backend == "nccl") {
#if defined(USE_C10D_NCCL)
    impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, rank, world);
#endif
  } else {
    auto opts = c10d::ProcessGroupGloo::Options::create(
        std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
    // The C++ side does not read GLOO_SOCKET_IFNAME as Python does: honour it here; a loopback
    // master means one machine, so loopback; otherwise the interface of this host's name.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    const bool loopback = env.master_addr == "127.0.0.1" || env.master_addr == "localhost";
    opts->devices.push_back(ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                            : loopback
                                ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                : c10d::ProcessGroupGloo::createDefaultDevice());
    impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, rank, world, opts);
  }
  return std::shared_ptr<ProcessGroup>(
      new ProcessGroup(std::move(impl), env.rank, env.world_size, backend));
#endif
}

void ProcessGroup::bucketed(const std::vector<torch::Tensor>& tensors,
                            const std::function<void(torch::Tensor&)>& collective) {
  // Buckets of one dtype and device, in the given order (the same on every rank).
  std::vector<std::vector<torch::Tensor>> buckets;
  std::map<std::pair<int, std::string>, size_t> open;  // (dtype, device) -> bucket index
  std::vector<int64_t> bytes;
  for (const auto& t : tensors) {
    if (!t.defined() || t.numel() == 0) continue;
    auto key = std::make_pair(static_cast<int>(t.scalar_type()), t.device().str());
    auto it = open.find(key);
    const int64_t size = t.numel() * static_cast<int64_t>(t.element_size());
    if (it == open.end() || bytes[it->second] + size > kBucketBytes) {
      buckets.emplace_back();
      bytes.push_back(0);
      it = open.insert_or_assign(key, buckets.size() - 1).first;
    }
    buckets[it->second].push_back(t);
    bytes[it->second] += size;
  }
  torch::NoGradGuard no_grad;
  for (auto& bucket : buckets) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& t : bucket) flat_parts.push_back(t.reshape({-1}));
    auto flat = torch::cat(flat_parts);
    collective(flat);
    int64_t offset = 0;
    for (auto& t : bucket) {
      t.copy_(flat.slice(0, offset, offset + t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

void ProcessGroup::broadcast(const std::vector<torch::Tensor>& tensors) {
#ifdef NNSLIM_HAVE_C10D
  bucketed(tensors, [&](torch::Tensor& flat) {
    std::vector<at::Tensor> v{flat};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    impl_->run([&](auto& pg) { pg.broadcast(v, o)->wait(); });
  });
#else
  (void)tensors;
#endif
}

void ProcessGroup::allreduce_sum(const std::vector<torch::Tensor>& tensors) {
#ifdef NNSLIM_HAVE_C10D
  bucketed(tensors, [&](torch::Tensor& flat) {
    std::vector<at::Tensor> v{flat};
    impl_->run([&](auto& pg) { pg.allreduce(v, c10d::AllreduceOptions())->wait(); });
  });
#else
  (void)tensors;
#endif
}

std::pair<double, double> ProcessGroup::min_max(double x) {
  // max(x) and max(-x) in one sum-free call: an allgather would need per-rank buffers.
  auto t = torch::tensor({x, -x}, torch::kDouble);
#ifdef NNSLIM_HAVE_C10D
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  impl_->run([&](auto& pg) { pg.allreduce(v, o)->wait(); });
#endif
  return {-t[1].item<double>(), t[0].item<double>()};
}

void ProcessGroup::barrier() {
#ifdef NNSLIM_HAVE_C10D
  impl_->run([&](auto& pg) { pg.barrier()->wait(); });
#endif
}

}  // namespace nnslim::dist
