// The interface every compression method implements (DESIGN.md §3). The Trainer calls the hooks
// in this order for each step:
//   before_step -> forward -> loss + penalty -> backward -> after_backward -> optimizer.step
//   -> after_step
// and end_epoch after each epoch. A method with no overrides changes nothing (a tested property).
#pragma once

#include "nnslim/core/json.h"
#include "nnslim/data/dataset.h"
#include "nnslim/graph/graph.h"
#include "nnslim/graph/serialize.h"

#include <torch/optim/optimizer.h>

#include <iosfwd>
#include <map>
#include <memory>
#include <string>

namespace nnslim {

// What a method that is an optimizer needs to know of the run when it makes its optimizer; the
// Trainer fills it from its options and the data before the first step.
struct OptimizerSettings {
  double lr = 0.1;  // the base rate (the schedule sets the rate of each step)
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 5e-4;
  int64_t epochs = 0;
  int64_t steps_per_epoch = 0;
};

// What a method may see and change during training; owned by the Trainer.
struct Context {
  Graph& graph;
  torch::optim::Optimizer& optimizer;
  int64_t step = 0;   // global step, counted from 0 over the whole run
  int64_t batch = 0;  // batch index within the epoch
  int64_t epoch = 0;  // 0-based
  int64_t steps_per_epoch = 0;
  int64_t epochs = 0;
  double lr = 0;
  std::map<std::string, double>* log = nullptr;  // values a method wants in this epoch's metrics
  const Dataset* train = nullptr;                // the training data (data-driven criteria)
};

// What finalize() sees: the trained graph and the run's data. No optimizer: training is over.
struct FinalizeContext {
  Graph& graph;
  const Dataset* train = nullptr;  // training data, normalised as the graph expects it
  // Images no phase trains on (--val-split), normalised likewise; null or empty = none.
  const Dataset* val = nullptr;
  int64_t epochs = 0;                // epochs the method trained for
  std::ostream* progress = nullptr;  // where a long finalize() reports what it is doing (or none)
  // A directory where finalize() may keep expensive intermediate results ("" = none), and
  // whether this run resumes an interrupted one: only then may finalize() read them back
  // (AdaPruner's candidate scores: a resumed run does not score them again).
  std::string finalize_dir{};
  bool resuming = false;
};

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  // Throws (c10::Error, naming the problem) if the method cannot run on this graph -- an
  // --exclude name it lacks, nothing the method can compress -- so that a run fails before
  // its training rather than after it.
  virtual void check_applicable(const Graph&) const {}
  // Methods that are optimizers (gRDA, HSPG) return one here; nullptr means "use plain SGD".
  // The Trainer calls it once per fit, before begin(), with the run's steps already known; the
  // optimizer lives until fit() returns, so a method may keep a pointer to it for its hooks.
  virtual std::unique_ptr<torch::optim::Optimizer> make_optimizer(Graph&,
                                                                  const OptimizerSettings&) {
    return nullptr;
  }
  virtual void begin(Context&) {}                         // pick layers/groups, init state
  virtual void before_step(Context&) {}                   // e.g. periodic projections (TRP)
  virtual torch::Tensor penalty(Context&) { return {}; }  // added to the loss (undefined = none)
  virtual void after_backward(Context&) {}                // edit gradients (sub-gradients, masks)
  virtual void after_step(Context&) {}                    // projections, proximal steps
  virtual void end_epoch(Context&) {}
  // Surgery: make the compression structural. May replace ctx.graph with a new, valid graph.
  virtual void finalize(FinalizeContext&) {}
  // Hooks to keep active while fine-tuning the finalized graph (e.g. masks that must stay
  // applied); nullptr = plain fine-tuning.
  virtual std::shared_ptr<Method> finetune_method() { return nullptr; }
  // The fine-tuning learning rate after finalize(), given the one the user asked for: a method
  // whose result starts from fresh weights (AdaPruner's `scratch` candidate) needs a higher one.
  virtual double finetune_lr(double requested) const { return requested; }
  // Method-specific results for summary.json (per-layer ranks, sparsity, ...).
  virtual void describe(Json& out) const {}
  virtual void save(Writer&) const {}  // resumable state
  virtual void load(Reader&) {}
};

}  // namespace nnslim
