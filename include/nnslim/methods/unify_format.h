// The unified-layer format that methods/unify.h produces. It is a graph format, so it lives in
// graph/: the data (graph/unified_layer.h), its byte codec (graph/unified_codec.h), the compact
// file (graph/unified_file.h) and the inference kernel (graph/kernels/unified_conv.h). This
// header gathers them for the unify method.
#pragma once

#include "nnslim/graph/kernels/unified_conv.h"
#include "nnslim/graph/unified_codec.h"
#include "nnslim/graph/unified_file.h"
#include "nnslim/graph/unified_layer.h"
