// A run's output directory: refusing to mix runs and recording what a run is (run.json), so
// that a --resume continues the same run.
#pragma once

#include "nnslim/core/json.h"
#include "nnslim/data/dataset.h"
#include "nnslim/graph/graph.h"
#include "nnslim/graph/model_file.h"  // load_model_file, file_fingerprint

#include <iosfwd>
#include <string>

namespace nnslim {

// RequestError for an existing non-empty directory (unless force) or a file in the way. Call it
// before slow work: fail early.
void check_out_dir(const std::string& dir, bool force);
// Creates it and its parents. Call it once the inputs are known good, so that a refused model
// or dataset leaves no empty directory behind.
void create_out_dir(const std::string& dir);

// A run's identity is a JSON object (method, its options, the settings that shape the result,
// the input model's fingerprint ...). A new run writes it to OUT/run.json; a resumed one must
// match it key by key (RequestError naming each differing option), since another method, other
// options or another input model would mix two runs' checkpoints. A --resume into an empty
// directory starts a new run and says so on `notes`.
void check_or_record_run(const std::string& out, const Json& identity, bool resume,
                         std::ostream* notes);

// Why the model file at `path` cannot be loaded ("" = it loads): how a finished run or stage
// whose model was damaged since is told apart from an intact one.
std::string model_file_problem(const std::string& path);

// RequestError when `graph` (loaded from `path`) cannot take `data`'s images or labels.
void check_model_fits_data(const Graph& graph, const Dataset& data, const std::string& path);

// Reads a JSON file; errors name the file.
Json read_json_file(const std::string& path);

}  // namespace nnslim
