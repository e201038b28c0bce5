// The library's one error type of its own. Everything else a user can cause is a c10::Error
// (TORCH_CHECK) naming the problem; a RequestError says more: the caller asked for something that
// cannot be done as asked (an option value out of range, a --resume that does not match its run,
// a directory given where a model file belongs), and nothing was done. The CLI reports it as a
// usage error (exit 2), everything else as an error (exit 1).
#pragma once

#include <stdexcept>

namespace nnslim {

struct RequestError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

}  // namespace nnslim
