// The model zoo: every model is built as a Graph, for any input CxHxW and class count.
// Initialisation follows torchvision (seed torch before calling for reproducible weights).
#pragma once

#include "nnslim/graph/graph.h"

#include <string>
#include <vector>

namespace nnslim {

// Known names: lenet5, vgg16, resnet20, resnet32, resnet56, resnet110, resnet18, resnet50,
// mobilenetv2. Unknown names throw, listing the known ones. input_shape = [C, H, W].
Graph build_model(const std::string& name, const std::vector<int64_t>& input_shape,
                  int64_t classes);

std::vector<std::string> model_names();

}  // namespace nnslim
