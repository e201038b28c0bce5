#include "nnslim/train/trainer.h"

#include "nnslim/core/json.h"
#include "nnslim/data/loader.h"
#include "nnslim/dist/process_group.h"
#include "nnslim/graph/execute.h"
#include "nnslim/optim/grda.h"
#include "nnslim/optim/momentum.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <sstream>

namespace nnslim {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string format_duration(double s) {
  char buf[32];
  int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600),
                  (long long)(t / 60 % 60), (long long)(t % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

// On a terminal: one live line, redrawn at most 5 times a second. Elsewhere (a log file): a plain
// line every `log_seconds` (a minute), so a long epoch in a background run still shows its
// progress and ETA, while short epochs print nothing but their summary line.
class ProgressBar {
 public:
  ProgressBar(std::ostream* out, bool live, double log_seconds, int64_t epoch, int64_t epochs,
              int64_t total)
      : out_(out),
        live_(live),
        interval_(live ? 0.2 : log_seconds),
        epoch_(epoch),
        epochs_(epochs),
        total_(total),
        last_(live ? Clock::time_point{} : Clock::now()) {}
  void update(int64_t done, double loss, double acc, double ips) {
    if (!out_) return;
    auto now = Clock::now();
    if (!live_ && done >= total_) return;  // the epoch's summary line follows
    if (done < total_ && std::chrono::duration<double>(now - last_).count() < interval_) return;
    last_ = now;
    const int width = 24;
    int filled = static_cast<int>(width * done / std::max<int64_t>(1, total_));
    std::string bar(filled, '=');
    if (filled < width) bar += '>' + std::string(width - filled - 1, ' ');
    double eta = ips > 0 ? (total_ - done) * (images_per_batch_ / ips) : 0;
    char buf[256];
    std::snprintf(
        buf, sizeof buf,
        "%sepoch %3lld/%lld [%s] %5lld/%lld  loss %.4f  acc %6.2f%%  %6.0f img/s  ETA %s%s",
        live_ ? "\r" : "", (long long)epoch_, (long long)epochs_, bar.c_str(), (long long)done,
        (long long)total_, loss, acc, ips, format_duration(eta).c_str(), live_ ? " " : "\n");
    *out_ << buf << std::flush;
  }
  void set_batch(int64_t b) { images_per_batch_ = static_cast<double>(b); }
  void clear() {
    if (out_ && live_) *out_ << "\r" << std::string(110, ' ') << "\r" << std::flush;
  }

 private:
  std::ostream* out_;
  bool live_;
  double interval_;
  int64_t epoch_, epochs_, total_;
  double images_per_batch_ = 1;
  Clock::time_point last_{};
};

std::string save_optimizer(torch::optim::Optimizer& o) {
  torch::serialize::OutputArchive a;
  o.save(a);
  std::ostringstream os;
  a.save_to(os);
  return os.str();
}

// The LibTorch that wrote a checkpoint's optimizer state. Its archive keys parameters by
// address: LibTorch <= 2.1 writes them as hex pointer strings, and 2.2+ parses keys as decimal
// numbers, so 2.2+ cannot read a <= 2.1 optimizer state (it would hand every parameter another
// one's state). Checkpoints from before this key was written came from Debian's 1.13.
constexpr const char* kLibTorchKey = "libtorch";
std::string this_libtorch() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}
bool hex_keyed(int major, int minor) { return major < 2 || (major == 2 && minor < 2); }

void check_optimizer_state_readable(const std::map<std::string, std::string>& options) {
  auto it = options.find(kLibTorchKey);
  const std::string writer = it == options.end() ? "1.13 (no version recorded)" : it->second;
  int major = 1, minor = 13;
  if (it != options.end()) std::sscanf(it->second.c_str(), "%d.%d", &major, &minor);
  TORCH_CHECK(
      !(hex_keyed(major, minor) && !hex_keyed(TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR)),
      "--resume: this checkpoint's optimizer state was written by LibTorch ", writer,
      ", which this LibTorch (", this_libtorch(),
      ") cannot read back correctly; resume with the LibTorch that wrote it, or start a new "
      "run from its model (nnslim train --init DIR/model.nnslim)");
}

void load_optimizer(torch::optim::Optimizer& o, const std::string& bytes, torch::Device device) {
  torch::serialize::InputArchive a;
  std::istringstream is(bytes);
  a.load_from(is, device);
  o.load(a);
}

// A restored optimizer state must fit the weights it belongs to: a momentum buffer or gRDA
// accumulator of another shape would broadcast into (or, through an out= op, resize) the weight
// on the next step. Checked once after loading; the error names the parameter.
void check_optimizer_state(torch::optim::Optimizer& o, const Graph& graph) {
  std::map<const void*, std::string> names;
  for (const auto& [name, t] : graph.named_parameters()) names[t.unsafeGetTensorImpl()] = name;
  auto& state = o.state();
  for (const auto& group : o.param_groups())
    for (const auto& p : group.params()) {
      auto it = state.find(nnslim::optim::optimizer_state_key<std::decay_t<decltype(state)>>(p));
      if (it == state.end()) continue;
      auto nit = names.find(p.unsafeGetTensorImpl());
      const std::string name = nit == names.end() ? "(unnamed)" : nit->second;
      auto check = [&](const torch::Tensor& t, const char* what) {
        if (!t.defined()) return;
        TORCH_CHECK(t.sizes() == p.sizes() && t.scalar_type() == p.scalar_type(),
                    "--resume: the checkpoint's optimizer state for parameter '", name, "' has a ",
                    what, " of shape ", t.sizes(), " (", t.scalar_type(), "), the parameter is ",
                    p.sizes(), " (", p.scalar_type(), "); corrupt or foreign checkpoint?");
      };
      const auto* base = it->second.get();
      if (const auto* sgd = dynamic_cast<const torch::optim::SGDParamState*>(base))
        check(sgd->momentum_buffer(), "momentum buffer");
      else if (const auto* g = dynamic_cast<const nnslim::optim::GrdaOptimizerParamState*>(base))
        check(g->accumulator(), "gRDA accumulator");
    }
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  write_file_atomic(path, all);
}

// The seed of the global generator for one batch. Dropout (the only randomness inside the graph)
// and any method that draws random numbers get a stream fixed by (seed, epoch, batch), so a run
// resumed at any batch draws what an uninterrupted one would.
uint64_t batch_seed(uint64_t seed, int64_t epoch, int64_t batch) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(epoch) << 32) ^
               static_cast<uint64_t>(batch);
  x ^= x >> 30;  // splitmix64's finaliser: nearby triples get unrelated seeds
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string checkpoint_label(int64_t epochs_done, const EpochProgress& p) {
  if (p.batches_done == 0) return "epoch " + std::to_string(epochs_done);
  return "epoch " + std::to_string(epochs_done + 1) + ", batch " + std::to_string(p.batches_done);
}

// Every buffer (BatchNorm's running statistics), in node order.
std::vector<torch::Tensor> graph_buffers(const Graph& graph) {
  std::vector<torch::Tensor> out;
  for (const auto& n : graph.nodes)
    for (const auto& kv : n.buffers) out.push_back(kv.second);
  return out;
}

// Evaluation of this rank's share (examples rank, rank + W, ...), reduced over the ranks: the
// result of evaluating the whole set in one process, up to float summation order.
EvalResult evaluate_sharded(const Graph& graph, const Dataset& data, int64_t batch_size,
                            torch::Device device, dist::ProcessGroup& group) {
  // Examples decoded from files (an image folder): every rank evaluates them all, identically.
  if (data.source) return evaluate(graph, data, batch_size, device);
  Dataset share = data;
  const int64_t n = data.size(), r = group.rank(), w = group.world_size();
  share.images = data.images.slice(0, std::min(r, n), n, w).contiguous();
  share.labels = data.labels.slice(0, std::min(r, n), n, w).contiguous();
  EvalResult e = share.size() > 0 ? evaluate(graph, share, batch_size, device) : EvalResult{};
  auto sums = torch::tensor({e.loss * e.examples, e.top1 * e.examples, e.top5 * e.examples,
                             static_cast<double>(e.examples)},
                            torch::kDouble);
  group.allreduce_sum({sums});
  EvalResult total;
  total.examples = static_cast<int64_t>(sums[3].item<double>() + 0.5);
  if (total.examples > 0) {
    total.loss = sums[0].item<double>() / total.examples;
    total.top1 = sums[1].item<double>() / total.examples;
    total.top5 = sums[2].item<double>() / total.examples;
  }
  return total;
}

// A fingerprint of every parameter and buffer; equal on all ranks while they stay in step.
double weights_fingerprint(const Graph& graph) {
  torch::NoGradGuard no_grad;
  double f = 0;
  int64_t k = 0;
  for (const auto& t : graph.parameters()) {
    auto d = t.detach().to(torch::kCPU, torch::kDouble);
    f += (++k) * d.sum().item<double>() + d.square().sum().item<double>();
  }
  for (const auto& t : graph_buffers(graph)) {
    auto d = t.detach().to(torch::kCPU, torch::kDouble);
    f += (++k) * d.sum().item<double>();
  }
  return f;
}

}  // namespace

torch::Device parse_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    TORCH_CHECK(torch::cuda::is_available(),
                "--device cuda: no CUDA device is available to this LibTorch (use --device cpu)");
    if (name == "cuda") return torch::kCUDA;
    torch::Device d(name);  // "cuda:N": a data-parallel process's own GPU (LOCAL_RANK)
    TORCH_CHECK(d.index() < static_cast<int>(torch::cuda::device_count()), "--device ", name,
                ": this machine has ", torch::cuda::device_count(), " CUDA devices");
    return d;
  }
  TORCH_CHECK(false, "unknown device '", name, "' (use cpu, cuda or auto)");
}

void TrainOptions::validate() const {
  TORCH_CHECK(epochs >= 0, "epochs must be >= 0, got ", epochs);
  TORCH_CHECK(batch_size >= 1, "batch size must be >= 1, got ", batch_size);
  TORCH_CHECK(eval_batch_size >= 1, "eval batch size must be >= 1, got ", eval_batch_size);
  TORCH_CHECK(momentum >= 0 && momentum < 1, "momentum must be in [0, 1), got ", momentum);
  TORCH_CHECK(!nesterov || momentum > 0, "nesterov needs momentum > 0");
  TORCH_CHECK(weight_decay >= 0, "weight decay must be >= 0, got ", weight_decay);
  TORCH_CHECK(crop_padding >= 0, "crop padding must be >= 0, got ", crop_padding);
  schedule.validate();
  (void)parse_device(device);
}

std::string EpochRecord::to_json() const {
  Json j = Json::object();
  j.set("epoch", epoch);
  j.set("lr", lr);
  j.set("train_loss", train_loss);
  j.set("train_top1", train_top1);
  if (eval.examples > 0) {
    j.set("test_loss", eval.loss);
    j.set("test_top1", eval.top1);
    j.set("test_top5", eval.top5);
  }
  j.set("seconds", seconds);
  j.set("images_per_second", images_per_second);
  for (const auto& kv : extra) j.set(kv.first, kv.second);
  return j.dump();
}

Trainer::Trainer(Graph& graph, TrainOptions options, std::vector<std::shared_ptr<Method>> methods)
    : graph_(graph), opt_(std::move(options)), methods_(std::move(methods)) {
  opt_.validate();
}

TrainResult Trainer::fit(const Dataset& train_data, const Dataset* eval, const Checkpoint* resume) {
  TORCH_CHECK(train_data.size() > 0, "the training set is empty");
  TORCH_CHECK(train_data.image_shape() == graph_.input_shape, "dataset images are ",
              train_data.image_shape(), " but the model expects ", graph_.input_shape);
  auto t_start = Clock::now();
  torch::Device device = parse_device(opt_.device);
  int64_t start_epoch = 0;
  EpochProgress resumed_in_epoch;
  std::vector<std::string> metrics_lines;
  std::string saved_at;  // the last checkpoint on disk, for the divergence message
  if (resume) {
    graph_ = resume->graph.clone();
    start_epoch = resume->epochs_done;
    resumed_in_epoch = resume->in_epoch;
    metrics_lines = resume->metrics_lines;
    saved_at = checkpoint_label(start_epoch, resumed_in_epoch);
  }
  graph_.to(device);
  dist::ProcessGroup* group = opt_.group.get();
  const bool rank0 = !group || group->rank() == 0;
  const std::string out_dir = rank0 ? opt_.out_dir : "";  // only rank 0 writes
  std::ostream* progress = rank0 ? opt_.progress : nullptr;
  if (group) {  // every rank starts from rank 0's weights, as DDP's constructor does
    auto tensors = graph_.parameters();
    for (const auto& b : graph_buffers(graph_)) tensors.push_back(b);
    group->broadcast(tensors);
  }

  // Batches are normalised as the model was first trained (its metadata), so fine-tuning on a
  // subset of the data does not shift the input statistics.
  Dataset train = with_graph_normalisation(graph_, train_data);
  stamp_dataset(graph_, train);

  auto params = graph_.parameters();
  auto dtype = params.empty() ? torch::kFloat : params[0].scalar_type();
  LoaderOptions lo;
  lo.batch_size = opt_.batch_size;
  lo.shuffle = true;
  lo.augment = opt_.augment;
  lo.crop_padding = opt_.crop_padding;
  lo.hflip = opt_.hflip;
  lo.seed = opt_.seed;
  if (group) {
    lo.rank = group->rank();
    lo.world_size = group->world_size();
  }
  const BatchMaker batches(train, lo);
  const int64_t steps = batches.batches_per_epoch();

  // The steps are known before a method makes its optimizer (HSPG's switch step depends on them).
  OptimizerSettings settings;
  settings.lr = opt_.schedule.base_lr;
  settings.momentum = opt_.momentum;
  settings.nesterov = opt_.nesterov;
  settings.weight_decay = opt_.weight_decay;
  settings.epochs = opt_.epochs;
  settings.steps_per_epoch = steps;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  for (auto& m : methods_)
    if (!optimizer) optimizer = m->make_optimizer(graph_, settings);
  if (!optimizer)
    optimizer =
        std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(opt_.schedule.base_lr)
                                                        .momentum(opt_.momentum)
                                                        .nesterov(opt_.nesterov)
                                                        .weight_decay(opt_.weight_decay));
  if (resume && !resume->optimizer_state.empty()) {
    check_optimizer_state_readable(resume->options);
    load_optimizer(*optimizer, resume->optimizer_state, device);
    check_optimizer_state(*optimizer, graph_);
  }

  TORCH_CHECK(resumed_in_epoch.batches_done == 0 || resumed_in_epoch.batches_per_epoch == steps,
              "--resume: the checkpoint stopped inside an epoch of ",
              resumed_in_epoch.batches_per_epoch, " batches, but this run has ", steps,
              " batches per epoch; resume with the same data and --batch-size");

  Context ctx{graph_, *optimizer};
  ctx.steps_per_epoch = steps;
  ctx.train = &train;
  ctx.epochs = opt_.epochs;
  for (auto& m : methods_) m->begin(ctx);
  if (resume)
    for (auto& m : methods_) {
      auto it = resume->method_states.find(m->name());
      if (it == resume->method_states.end()) continue;
      Reader r(it->second, "checkpoint state of method " + m->name());
      m->load(r);
    }

  TrainResult result;
  int64_t images_total = 0;
  double train_seconds_total = 0;
  auto save = [&](int64_t epochs_done, const EpochProgress& in_epoch) {
    saved_at = checkpoint_label(epochs_done, in_epoch);
    if (out_dir.empty()) return;  // a rank other than 0
    Checkpoint ck;
    ck.graph = graph_;
    ck.epochs_done = epochs_done;
    ck.in_epoch = in_epoch;
    ck.optimizer_state = save_optimizer(*optimizer);
    for (auto& m : methods_) {
      Writer w;
      m->save(w);
      ck.method_states[m->name()] = w.bytes();
    }
    ck.metrics_lines = metrics_lines;
    ck.options = checkpoint_options;
    ck.options[kLibTorchKey] = this_libtorch();
    save_checkpoint(ck, checkpoint_path(out_dir));
  };

  // Stops the run, naming where and what, with the last good checkpoint left in place.
  auto diverged = [&](const std::string& what, int64_t epoch, int64_t batch, double lr) {
    std::ostringstream msg;
    msg << "training diverged: " << what << " at epoch " << epoch + 1 << ", batch " << batch + 1
        << " (lr " << lr << ")";
    if (!opt_.out_dir.empty() && !saved_at.empty())
      msg << "; the last good checkpoint (" << saved_at << ") is kept in " << opt_.out_dir;
    msg << ". Try a lower --lr.";
    return DivergedError(msg.str());
  };
  // A step can leave NaN/Inf weights behind a finite loss: never checkpoint or return them.
  auto check_weights = [&](int64_t epoch, int64_t last_batch, double lr) {
    for (const auto& t : graph_.parameters())
      if (!torch::isfinite(t).all().item<bool>())
        throw diverged("a weight became NaN or Inf", epoch, last_batch, lr);
  };

  for (int64_t epoch = start_epoch; epoch < opt_.epochs; ++epoch) {
    // The epoch's running totals: empty, or where a checkpoint inside this epoch left them.
    EpochProgress p = epoch == start_epoch ? resumed_in_epoch : EpochProgress{};
    p.batches_per_epoch = steps;
    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.lr = opt_.schedule.at(epoch, 0, opt_.epochs);
    rec.extra = p.extra;
    if (group) rec.extra["world_size"] = static_cast<double>(group->world_size());
    ctx.log = &rec.extra;
    ctx.epoch = epoch;
    ProgressBar bar(progress, opt_.progress_bar, opt_.progress_log_seconds, epoch + 1, opt_.epochs,
                    steps);
    bar.set_batch(opt_.batch_size);
    EpochLoader loader(train, lo, epoch, p.batches_done);
    auto t0 = Clock::now(), last_saved = t0;
    const double seconds_before = p.train_seconds;
    const int64_t seen_before = p.seen;
    int64_t batch = p.batches_done;
    while (auto b = loader.next()) {
      torch::manual_seed(batch_seed(opt_.seed, epoch, batch));
      ctx.batch = batch;
      ctx.step = epoch * steps + batch;
      ctx.lr = opt_.schedule.at(epoch, static_cast<double>(batch) / steps, opt_.epochs);
      for (auto& g : optimizer->param_groups()) g.options().set_lr(ctx.lr);
      for (auto& m : methods_) m->before_step(ctx);

      auto x = b->x.to(device, dtype, /*non_blocking=*/true);
      auto y = b->y.to(device, /*non_blocking=*/true);
      if (group) group->broadcast(graph_buffers(graph_));  // BN statistics: rank 0's (DDP)
      auto logits = forward(graph_, x, Mode::kTrain);
      auto loss = torch::cross_entropy_loss(logits, y);
      int64_t n = y.size(0);
      // This rank's share of the global batch's mean loss: the ranks' gradients sum to the
      // gradient of the whole batch (the penalty, the same everywhere, is averaged instead).
      const double share =
          group ? static_cast<double>(n * group->world_size()) / batches.global_batch_size(batch)
                : 1.0;
      torch::Tensor total = group ? loss * share : loss;
      for (auto& m : methods_) {
        auto p = m->penalty(ctx);
        if (p.defined()) total = total + p;
      }
      double loss_value = loss.item<double>(), total_value = total.item<double>();
      int64_t correct = count_topk_correct(logits.detach(), y, 1);
      optimizer->zero_grad();
      if (group) {
        total.backward();
        // Sum of the ranks' gradients / W, and the batch's loss and accuracy over all ranks; a
        // NaN on any rank reaches every rank, so they stop together.
        std::vector<torch::Tensor> grads;
        for (const auto& t : params)
          if (t.grad().defined()) grads.push_back(t.grad());
        auto stats = torch::tensor(
            {loss_value * n, static_cast<double>(correct), static_cast<double>(n), total_value},
            torch::kDouble);
        grads.push_back(stats);
        group->allreduce_sum(grads);
        for (size_t i = 0; i + 1 < grads.size(); ++i) grads[i].div_(group->world_size());
        n = static_cast<int64_t>(stats[2].item<double>() + 0.5);
        loss_value = stats[0].item<double>() / n;
        correct = static_cast<int64_t>(stats[1].item<double>() + 0.5);
        total_value = stats[3].item<double>();
      }
      if (!std::isfinite(loss_value) || !std::isfinite(total_value)) {
        bar.clear();
        std::ostringstream what;
        what << "loss is " << loss_value;
        throw diverged(what.str(), epoch, batch, ctx.lr);
      }
      if (!group) total.backward();
      for (auto& m : methods_) m->after_backward(ctx);
      optimizer->step();
      for (auto& m : methods_) m->after_step(ctx);

      p.loss_sum += loss_value * n;
      p.correct += correct;
      p.seen += n;
      ++batch;
      bar.update(batch, p.loss_sum / p.seen, 100.0 * p.correct / p.seen,
                 (p.seen - seen_before) / seconds_since(t0));
      // In-epoch checkpoints by time: rank 0's clock decides for all (the decision must be the
      // same everywhere, as save() may one day gather state).
      bool due = !opt_.out_dir.empty() && opt_.checkpoint_seconds > 0 && batch < steps &&
                 seconds_since(last_saved) >= opt_.checkpoint_seconds;
      if (group && !opt_.out_dir.empty() && opt_.checkpoint_seconds > 0) {
        auto flag = torch::tensor({due ? 1.0 : 0.0}, torch::kDouble);
        group->broadcast({flag});
        due = flag.item<double>() > 0;
      }
      if (due) {
        check_weights(epoch, batch - 1, ctx.lr);
        p.batches_done = batch;
        p.train_seconds = seconds_before + seconds_since(t0);
        p.extra = rec.extra;
        save(epoch, p);
        last_saved = Clock::now();
      }
    }
    double train_seconds = seconds_since(t0);
    bar.clear();
    check_weights(epoch, batch - 1, ctx.lr);
    for (auto& m : methods_) m->end_epoch(ctx);
    rec.train_loss = p.loss_sum / p.seen;
    rec.train_top1 = 100.0 * p.correct / p.seen;
    rec.images_per_second = p.seen / (seconds_before + train_seconds);
    images_total += p.seen - seen_before;
    train_seconds_total += train_seconds;
    if (group) {  // ranks that drifted apart would silently train different models
      group->broadcast(graph_buffers(graph_));  // the last step's BN statistics: rank 0's
      auto [lo_f, hi_f] = group->min_max(weights_fingerprint(graph_));
      TORCH_CHECK(lo_f == hi_f, "data-parallel ranks diverged after epoch ", epoch + 1,
                  ": their weights differ (fingerprints ", lo_f, " vs ", hi_f,
                  "); this is a bug in nnslim, please report it with the command");
    }
    if (eval)
      rec.eval = group ? evaluate_sharded(graph_, *eval, opt_.eval_batch_size, device, *group)
                       : evaluate(graph_, *eval, opt_.eval_batch_size, device);
    rec.seconds = seconds_before + seconds_since(t0);

    if (progress) {
      char buf[256];
      int k = std::snprintf(buf, sizeof buf, "epoch %3lld/%lld  lr %.4g  loss %.4f  train %6.2f%%",
                            (long long)rec.epoch, (long long)opt_.epochs, rec.lr, rec.train_loss,
                            rec.train_top1);
      if (eval)
        k += std::snprintf(buf + k, sizeof buf - k, "  test %6.2f%% (top-5 %6.2f%%)", rec.eval.top1,
                           rec.eval.top5);
      k += std::snprintf(buf + k, sizeof buf - k, "  %.1fs  %.0f img/s", rec.seconds,
                         rec.images_per_second);
      // The rest of the run, at this invocation's mean epoch time (training + evaluation).
      const int64_t left = opt_.epochs - epoch - 1, ran = epoch - start_epoch + 1;
      if (left > 0)
        std::snprintf(buf + k, sizeof buf - k, "  run ETA %s",
                      format_duration(seconds_since(t_start) / ran * left).c_str());
      *progress << buf << std::endl;
    }
    metrics_lines.push_back(rec.to_json());
    result.history.push_back(rec);
    if (!out_dir.empty()) {
      write_lines(out_dir + "/metrics.jsonl", metrics_lines);
      save(epoch + 1, EpochProgress{});
    }
  }
  ctx.log = nullptr;
  result.wall_seconds = seconds_since(t_start);
  result.train_images_per_second = train_seconds_total > 0 ? images_total / train_seconds_total : 0;
  return result;
}

}  // namespace nnslim
