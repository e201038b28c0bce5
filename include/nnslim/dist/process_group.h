// Data-parallel processes on PyTorch's own distributed engine (c10d): the launch environment
// torchrun (or srun, or Kubeflow's PyTorchJob) gives each process, and the process group that
// joins them -- c10d's TCPStore for the rendezvous and ProcessGroupGloo (CPU, and CUDA tensors)
// or ProcessGroupNCCL (CUDA, where the LibTorch has it) for the collectives.
//
// One process without the launcher's variables is world size 1: no store, no group, nothing
// changes. The collectives here are the few the trainer needs, bucketed (tensors flattened into
// buffers of at most 25 MiB, as DDP's buckets) so that a model's hundreds of parameters cost a
// few calls, and every rank must make the same calls in the same order.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nnslim::dist {

// What the launcher says about this process.
struct LaunchEnv {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;        // the GPU of this process on its machine (Kubeflow: absent = 0)
  int64_t local_world_size = 1;  // processes on this machine (LOCAL_WORLD_SIZE; absent = 1)
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  // torchrun's agent already serves the store at MASTER_ADDR:MASTER_PORT (its variable
  // TORCHELASTIC_USE_AGENT_STORE=True): every rank, rank 0 included, is then a client.
  bool agent_store = false;
  int64_t restart_count = 0;  // TORCHELASTIC_RESTART_COUNT: each attempt gets its own keys
  std::string source;         // "torchrun", "env", "slurm": for messages
  bool distributed() const { return world_size > 1; }
};

using Getenv = std::function<std::optional<std::string>(const std::string&)>;

// Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (torchrun, PyTorchJob, any
// launcher that sets them) or, without them, Slurm's SLURM_PROCID / SLURM_NTASKS /
// SLURM_LOCALID with MASTER_ADDR and MASTER_PORT set by the job script. Throws RequestError
// naming the variable when one is malformed or they contradict each other (RANK without
// WORLD_SIZE, RANK >= WORLD_SIZE, a port out of range).
LaunchEnv launch_env(const Getenv& getenv);
LaunchEnv launch_env_from_environment();  // the process's own environment

// True when this build of nnslim has c10d (LibTorch with distributed support and Gloo's headers,
// Debian's libgloo-dev, at build time).
bool c10d_available();
// True when this LibTorch has NCCL (CUDA builds of PyTorch; never Debian's).
bool nccl_available();

class ProcessGroup {
 public:
  // Joins the group that `env` describes: the rendezvous through a TCPStore, then the backend
  // ("gloo" or "nccl"). Throws RequestError when the backend is not in this build, and an error
  // naming the address when the rendezvous times out.
  static std::shared_ptr<ProcessGroup> join(const LaunchEnv& env, const std::string& backend,
                                            std::chrono::seconds timeout);
  ~ProcessGroup();

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_size_; }
  const std::string& backend() const { return backend_; }

  // Overwrites every tensor with rank 0's (in place; the same shapes on every rank).
  void broadcast(const std::vector<torch::Tensor>& tensors);
  // Replaces every tensor with the sum over ranks (in place).
  void allreduce_sum(const std::vector<torch::Tensor>& tensors);
  // Smallest and largest value of x over the ranks.
  std::pair<double, double> min_max(double x);
  void barrier();

 private:
  struct Impl;
  ProcessGroup(std::unique_ptr<Impl> impl, int64_t rank, int64_t world, std::string backend);
  // Applies `collective` to flat buffers of the tensors (grouped by dtype and device, 25 MiB at
  // most each) and copies the results back.
  void bucketed(const std::vector<torch::Tensor>& tensors,
                const std::function<void(torch::Tensor&)>& collective);
  std::unique_ptr<Impl> impl_;
  int64_t rank_, world_size_;
  std::string backend_;
};

// "gloo" or "nccl" for --dist-backend "auto": NCCL on CUDA where this LibTorch has it.
std::string resolve_backend(const std::string& requested, bool cuda);

}  // namespace nnslim::dist
