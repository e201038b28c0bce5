#include "nnslim/train/checkpoint.h"

#include "nnslim/graph/serialize.h"

#include <c10/util/Exception.h>

namespace nnslim {

namespace {
constexpr char kCkptMagic[8] = {'N', 'N', 'S', 'L', 'I', 'M', 'C', '\0'};

void write_map(Writer& w, const std::map<std::string, std::string>& m) {
  w.u64(m.size());
  for (const auto& kv : m) {
    w.str(kv.first);
    w.str(kv.second);
  }
}
std::map<std::string, std::string> read_map(Reader& r) {
  std::map<std::string, std::string> m;
  uint64_t n = r.u64();
  TORCH_CHECK(n < 100000, "checkpoint: implausible map size (corrupt file?)");
  for (uint64_t i = 0; i < n; ++i) {
    auto k = r.str();
    m[k] = r.str();
  }
  return m;
}
}  // namespace

std::string resume_position(const Checkpoint& c) {
  if (c.in_epoch.batches_done == 0) return "after epoch " + std::to_string(c.epochs_done);
  return "in epoch " + std::to_string(c.epochs_done + 1) + " after batch " +
         std::to_string(c.in_epoch.batches_done) + " of " +
         std::to_string(c.in_epoch.batches_per_epoch);
}

std::string checkpoint_path(const std::string& run_dir) {
  return run_dir + "/checkpoint.nnslim-ckpt";
}

void save_checkpoint(const Checkpoint& c, const std::string& path) {
  Writer w;
  w.str(graph_to_bytes(c.graph));
  w.i64(c.epochs_done);
  w.str(c.optimizer_state);
  write_map(w, c.method_states);
  w.u64(c.metrics_lines.size());
  for (const auto& l : c.metrics_lines) w.str(l);
  write_map(w, c.options);
  const EpochProgress& e = c.in_epoch;
  w.i64(e.batches_done);
  w.i64(e.batches_per_epoch);
  w.f64(e.loss_sum);
  w.i64(e.correct);
  w.i64(e.seen);
  w.f64(e.train_seconds);
  w.u64(e.extra.size());
  for (const auto& kv : e.extra) {
    w.str(kv.first);
    w.f64(kv.second);
  }
  write_framed_file(path, kCkptMagic, kCheckpointVersion, w.bytes());
}

Checkpoint load_checkpoint(const std::string& path) {
  uint32_t version = 0;
  std::string payload =
      read_framed_file(path, kCkptMagic, kCheckpointVersion, "nnslim checkpoint", &version);
  Reader r(payload, path);
  Checkpoint c;
  // The *.nnslim format of the embedded graph: checkpoint version 1 -> format 1 (dense tensors),
  // version 2 -> format 2 (sparse encodings). Extend this when either version is bumped.
  c.graph = graph_from_bytes(r.str(), path, version == 1 ? 1u : 2u);
  c.epochs_done = r.i64();
  TORCH_CHECK(c.epochs_done >= 0, path, ": negative epoch count (corrupt file?)");
  c.optimizer_state = r.str();
  c.method_states = read_map(r);
  uint64_t n = r.u64();
  TORCH_CHECK(n < 1000000, path, ": implausible metrics count (corrupt file?)");
  for (uint64_t i = 0; i < n; ++i) c.metrics_lines.push_back(r.str());
  c.options = read_map(r);
  if (version >= 3) {
    EpochProgress& e = c.in_epoch;
    e.batches_done = r.i64();
    e.batches_per_epoch = r.i64();
    e.loss_sum = r.f64();
    e.correct = r.i64();
    e.seen = r.i64();
    e.train_seconds = r.f64();
    TORCH_CHECK(e.batches_done >= 0 && e.batches_done <= e.batches_per_epoch && e.correct >= 0 &&
                    e.correct <= e.seen,
                path, ": implausible position within the epoch (corrupt file?)");
    uint64_t m = r.u64();
    TORCH_CHECK(m < 100000, path, ": implausible log count (corrupt file?)");
    for (uint64_t i = 0; i < m; ++i) {
      auto k = r.str();
      e.extra[k] = r.f64();
    }
  }
  TORCH_CHECK(r.done(), path, ": trailing bytes (corrupt file?)");
  return c;
}

}  // namespace nnslim
