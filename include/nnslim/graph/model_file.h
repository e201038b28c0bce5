// Any nnslim model file, whichever kind: what the CLI's verbs load when they are given a model.
#pragma once

#include "nnslim/core/error.h"
#include "nnslim/graph/graph.h"

#include <stdexcept>
#include <string>

namespace nnslim {

// A file that is not a model at all but something a user may well have meant to give (a run
// directory, a training checkpoint): the message says what it is and what to give instead. The
// CLI reports it, as every RequestError, as a usage error (exit 2).
class NotAModelFileError : public RequestError {
 public:
  using RequestError::RequestError;
};

// Loads a model file by its magic bytes: an ordinary *.nnslim (graph/serialize.h) or the
// compact unified form (model.unified.nnslim, graph/unified_file.h). A directory or a training
// checkpoint throws NotAModelFileError; an empty file a std::runtime_error; anything else that
// is not a valid model file a c10::Error naming the path.
Graph load_model_file(const std::string& path);

// The file's size and a 64-bit FNV-1a hash of its bytes, as "SIZE:HEX" (what a resumed run
// compares, so a different input model under the same path is caught). Throws if unreadable.
std::string file_fingerprint(const std::string& path);

}  // namespace nnslim
