// Surgery that makes compression structural: functions that edit a graph and return a new
// valid graph (re-validated by shape inference).
#pragma once

#include "nnslim/graph/coupling.h"

namespace nnslim {

// Keeps channels `keep` (sorted, unique, non-empty) of group `group_id` of `coupling` (which
// must have been computed on `graph`), slicing every parameter and buffer the group indexes,
// adjusting depthwise groups, and rewriting channel shuffles' permutations and channel slices'
// ranges for the kept channels. Returns the new graph; the input graph is not modified.
Graph prune_channels(const Graph& graph, const Coupling& coupling, int group_id,
                     const std::vector<int64_t>& keep);

// Several groups at once (one clone, one validation): keep[group id] = channels to keep.
Graph prune_groups(const Graph& graph, const Coupling& coupling,
                   const std::map<int, std::vector<int64_t>>& keep);

// Sets every out-side entry of the given channels of a group to zero (producer filters and
// biases, BN gamma and beta, depthwise filters): afterwards those channels output exact zeros,
// which is what makes their removal exact.
void zero_channels(Graph& graph, const Coupling& coupling, int group_id,
                   const std::vector<int64_t>& channels);

// Rounds a channel count to a hardware-friendly multiple: the nearest multiple of `multiple`
// at or above `count`, capped at `total`; multiple <= 1 leaves it unchanged. Never returns 0.
int64_t round_channels(int64_t count, int64_t multiple, int64_t total);

}  // namespace nnslim
