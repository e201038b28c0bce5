// What nnslim's optimizers share with LibTorch's SGD: the per-parameter state key, the
// heavy-ball momentum arithmetic (so that a regulariser switched off is SGD bit for bit) and a
// step counter kept next to the torch::optim archive. Builds on LibTorch 1.13 and 2.x.
#pragma once

#include <torch/optim/sgd.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include <c10/util/Exception.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>

namespace nnslim::optim {

// The key of a parameter in Optimizer::state(): LibTorch 1.13 uses the TensorImpl address as a
// string (c10::guts::to_string, i.e. operator<<), LibTorch 2.x the address itself.
template <typename Map>
typename Map::key_type optimizer_state_key(const torch::Tensor& p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

// d <- heavy-ball(d), exactly the arithmetic of torch::optim::SGD::step (dampening 0), keeping
// the buffer in LibTorch's own SGDParamState (its archive key is "momentum_buffer", as SGD's).
template <typename StateMap>
torch::Tensor heavy_ball(StateMap& state, const torch::Tensor& p, torch::Tensor d_p,
                         double momentum, bool nesterov) {
  if (momentum == 0) return d_p;
  auto key = optimizer_state_key<StateMap>(p);
  auto it = state.find(key);
  torch::Tensor buf;
  if (it == state.end()) {
    buf = torch::clone(d_p).detach();
    auto s = std::make_unique<torch::optim::SGDParamState>();
    s->momentum_buffer(buf);
    state[key] = std::move(s);
  } else {
    buf = static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer();
    buf.mul_(momentum).add_(d_p, 1 - 0.0);
  }
  return nesterov ? d_p.add(buf, momentum) : buf;
}

// The checks every SGD-like optimizer makes of its rate, momentum and weight decay; the errors
// name the optimizer ("hspg: momentum must be in [0, 1), got 1").
inline void check_sgd_settings(const char* optimizer, double lr, double momentum, bool nesterov,
                               double weight_decay) {
  TORCH_CHECK(lr >= 0 && std::isfinite(lr), optimizer, ": lr must be >= 0, got ", lr);
  TORCH_CHECK(momentum >= 0 && momentum < 1, optimizer, ": momentum must be in [0, 1), got ",
              momentum);
  TORCH_CHECK(!nesterov || momentum > 0, optimizer, ": nesterov needs momentum > 0");
  TORCH_CHECK(weight_decay >= 0, optimizer, ": weight decay must be >= 0, got ", weight_decay);
}

// The optimizer's step counter, saved beside the torch::optim archive (0 when absent).
inline void write_step_count(torch::serialize::OutputArchive& archive, int64_t steps) {
  archive.write("nnslim_steps", torch::tensor(steps, torch::kLong));
}
inline int64_t read_step_count(torch::serialize::InputArchive& archive) {
  torch::Tensor t;
  return archive.try_read("nnslim_steps", t) ? t.item<int64_t>() : 0;
}

}  // namespace nnslim::optim
