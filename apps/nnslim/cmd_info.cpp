// nnslim info: per-layer shapes, params and MACs of a saved model or a zoo model.
#include "common.h"

#include "nnslim/eval/evaluate.h"
#include "nnslim/graph/coupling.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/models/zoo.h"

#include <iostream>
#include <map>

namespace nnslim::cli {

namespace {

// The channel groups of the coupling analysis: which can be pruned, and why the others cannot.
Json channel_groups_json(const Coupling& c) {
  Json j = Json::object();
  int64_t prunable = 0, channels = 0;
  Json kept = Json::array();
  for (const auto& g : c.groups) {
    if (g.prunable) {
      ++prunable;
      channels += g.channels;
      continue;
    }
    Json k = Json::object();
    k.set("name", g.name);
    k.set("channels", g.channels);
    k.set("why", g.why_not);
    kept.push(k);
  }
  j.set("total", static_cast<int64_t>(c.groups.size()));
  j.set("prunable", prunable);
  j.set("prunable_channels", channels);
  j.set("kept_whole", kept);
  return j;
}

// "channel groups: 12, 9 prunable (1232 channels); kept whole:" and one line per reason, the
// node a reason names given as an example ("6 x a grouped convolution (e.g. 'layer4.0.conv2')").
std::string channel_groups_text(const Coupling& c) {
  int64_t prunable = 0, channels = 0;
  std::map<std::string, std::pair<int, std::string>> why;  // reason -> count, first example
  for (const auto& g : c.groups) {
    if (g.prunable) {
      ++prunable;
      channels += g.channels;
      continue;
    }
    std::string reason = g.why_not, example;
    auto open = reason.find(" ('");
    if (open != std::string::npos && reason.back() == ')') {
      example = reason.substr(open + 2, reason.size() - open - 3);
      reason = reason.substr(0, open);
    }
    auto& entry = why[reason];
    if (entry.first++ == 0) entry.second = example;
  }
  std::string s = "channel groups: " + std::to_string(c.groups.size()) + ", " +
                  std::to_string(prunable) + " prunable (" + std::to_string(channels) +
                  " channels)";
  if (!why.empty()) {
    s += "; kept whole:";
    for (const auto& [reason, entry] : why)
      s += "\n  " + std::to_string(entry.first) + " x " + reason +
           (entry.second.empty() ? "" : " (e.g. " + entry.second + ")");
  }
  return s + "\n";
}

}  // namespace

int cmd_info(const std::vector<std::string>& args) {
  std::string path, model, input = "1x32x32";
  int64_t classes = 10;
  bool json = false;
  ArgParser p("info", "nnslim info (MODEL | --model NAME [--input CxHxW] [--classes K]) [--json]",
              "Prints each layer's name, op, output shape, params, nonzero params, sparsity\n"
              "(exact zeros / params) and MACs, and the totals.\n"
              "MACs count the multiply-accumulates of Conv2d and Linear layers only; params count\n"
              "all trainable elements (BatchNorm running statistics excluded).\n"
              "Then the channel groups (channels tied by adds, concats, depthwise convs and\n"
              "gates, pruned together): how many can be pruned, and why the others are kept\n"
              "whole.");
  p.positional("MODEL", &path, "a *.nnslim model file", /*required=*/false);
  p.option("model", &model, "NAME", "a zoo model instead of a file (a file path works too)");
  p.option("input", &input, "CxHxW", "input shape for --model");
  p.option("classes", &classes, "K", "classes for --model");
  p.flag("json", &json,
         "print JSON (params, macs, nonzero counts and sparsity, in total and per layer)");
  if (!p.parse(args)) return 0;
  Graph g = file_or_zoo_model(path, model, input, classes);
  auto r = count_cost(g);
  Coupling coupling = analyze_coupling(g);
  if (json) {
    Json j = Json::object();
    j.set("model", g.meta.count("model") ? g.meta.at("model") : path);
    j.set("input_shape", Json::array_of(g.input_shape));
    const auto names = graph_class_names(g);
    if (!names.empty()) j.set("class_names", Json::array_of(names));
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
    j.set("channel_groups", channel_groups_json(coupling));
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << (path.empty() ? model : path) << ": input " << shape_str(g.input_shape) << "\n";
    const auto names = graph_class_names(g);
    if (!names.empty()) {
      std::cout << "classes (" << names.size() << "):";
      for (size_t i = 0; i < names.size(); ++i) std::cout << " " << i << "=" << names[i];
      std::cout << "\n";
    }
    std::cout << cost_table(r) << channel_groups_text(coupling);
  }
  return 0;
}

}  // namespace nnslim::cli
