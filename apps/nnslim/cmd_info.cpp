// nnslim info: per-layer shapes, params and MACs of a saved model or a zoo model.
#include "common.h"

#include "nnslim/graph/serialize.h"
#include "nnslim/models/zoo.h"

#include <iostream>

namespace nnslim::cli {

int cmd_info(const std::vector<std::string>& args) {
  std::string path, model, input = "1x32x32";
  int64_t classes = 10;
  bool json = false;
  ArgParser p("info", "nnslim info (MODEL | --model NAME [--input CxHxW] [--classes K]) [--json]",
              "Prints each layer's name, op, output shape, params, nonzero params, sparsity\n"
              "(exact zeros / params) and MACs, and the totals.\n"
              "MACs count the multiply-accumulates of Conv2d and Linear layers only; params count\n"
              "all trainable elements (BatchNorm running statistics excluded).");
  p.positional("MODEL", &path, "a *.nnslim model file", /*required=*/false);
  p.option("model", &model, "NAME", "a zoo model instead of a file (a file path works too)");
  p.option("input", &input, "CxHxW", "input shape for --model");
  p.option("classes", &classes, "K", "classes for --model");
  p.flag("json", &json,
         "print JSON (params, macs, nonzero counts and sparsity, in total and per layer)");
  if (!p.parse(args)) return 0;
  Graph g = file_or_zoo_model(path, model, input, classes);
  auto r = count_cost(g);
  if (json) {
    Json j = Json::object();
    j.set("model", g.meta.count("model") ? g.meta.at("model") : path);
    j.set("input_shape", Json::array_of(g.input_shape));
    j.set("params", r.params);
    j.set("macs", r.macs);
    j.set("nonzero_params", r.nonzero_params);
    j.set("nonzero_macs", r.nonzero_macs);
    // Sparsity = exact zeros / elements of the trainable parameters (0 when there are none).
    auto sparsity = [](int64_t params, int64_t nonzero) {
      return params > 0 ? double(params - nonzero) / double(params) : 0.0;
    };
    j.set("sparsity", sparsity(r.params, r.nonzero_params));
    Json layers = Json::array();
    for (const auto& n : r.nodes) {
      Json l = Json::object();
      l.set("name", n.name);
      l.set("op", op_name(n.op));
      l.set("output_shape", Json::array_of(n.out_shape));
      l.set("params", n.params);
      l.set("macs", n.macs);
      l.set("nonzero_params", n.nonzero_params);
      l.set("nonzero_macs", n.nonzero_macs);
      l.set("sparsity", sparsity(n.params, n.nonzero_params));
      layers.push(l);
    }
    j.set("layers", layers);
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << (path.empty() ? model : path) << ": input " << shape_str(g.input_shape) << "\n"
              << cost_table(r);
  }
  return 0;
}

}  // namespace nnslim::cli
