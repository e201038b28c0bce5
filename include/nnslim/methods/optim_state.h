// Access to a LibTorch optimizer's per-parameter state that builds on LibTorch 1.13 and 2.x.
#pragma once

#include <torch/types.h>

#include <sstream>
#include <string>
#include <type_traits>

namespace nnslim {

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

}  // namespace nnslim
