// nnslim import: an ONNX CNN as an nnslim model that trains and compresses like a zoo model.
#include "common.h"

#include "nnslim/graph/cost.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/io/onnx.h"

#include <filesystem>
#include <iostream>

namespace nnslim::cli {

int cmd_import(const std::vector<std::string>& args) {
  std::string onnx_path, out, input;
  bool force = false;
  ArgParser p("import", "nnslim import MODEL.onnx --out MODEL.nnslim [--input CxHxW]",
              "Converts an ONNX CNN (e.g. exported from PyTorch with torch.onnx.export) into an\n"
              "nnslim model. Supported: Conv, BatchNormalization, Relu, Clip(0,6), Add, Sum,\n"
              "Concat, MaxPool, AveragePool (ceil_mode too), GlobalAveragePool, ReduceMean\n"
              "over H and W, Sigmoid, HardSigmoid, HardSwish, Mul (equal shapes or an\n"
              "[N,C,1,1] gate; x*Sigmoid(x) becomes SiLU), Flatten, Gemm, Reshape to\n"
              "[N, -1], Identity, Dropout, Constant; ShuffleNet's channel shuffle\n"
              "(Reshape/Transpose/Reshape) and Split/Slice of channels; ConvNeXt's LayerNorm\n"
              "(LayerNormalization or its pieces) and GELU on NHWC, MatMul (a 1x1 conv) and its\n"
              "layer scale. Nodes whose inputs are all constant (Identity, Cast, Shape, Gather,\n"
              "Unsqueeze, Squeeze, Concat, Reshape, Slice, Add, Sub, Mul, Div, Transpose) are\n"
              "evaluated at import. Anything else is reported node by node\n"
              "(docs/cli.md lists what is supported).\n"
              "Files written by 'nnslim export' keep their metadata (classes, normalisation);\n"
              "others are normalised with the dataset's statistics when trained or compressed.");
  p.positional("MODEL.onnx", &onnx_path, "the ONNX file to read");
  p.option("out", &out, "MODEL.nnslim", "the nnslim model to write");
  p.option("input", &input, "CxHxW", "input shape, when the ONNX input has no static shape");
  p.flag("force", &force, "overwrite an existing --out file");
  if (!p.parse(args)) return 0;
  if (out.empty()) throw UsageError("--out MODEL.nnslim is required");
  if (std::filesystem::exists(out)) {
    if (std::filesystem::equivalent(out, onnx_path))
      throw UsageError("--out must not be the input file");
    if (!force) throw UsageError("--out " + out + " exists; pass --force to overwrite it");
  }
  OnnxImportOptions opt;
  if (!input.empty()) opt.input_shape = parse_shape(input, "input");
  OnnxImportReport report;
  Graph g = import_onnx(onnx_path, opt, &report);
  save_graph(g, out);
  auto cost = count_cost(g);
  std::cout << "wrote " << out << ": " << g.nodes.size() << " nodes, input " << g.input_shape[0]
            << "x" << g.input_shape[1] << "x" << g.input_shape[2] << ", "
            << human_count(static_cast<double>(cost.params)) << " params, "
            << human_count(static_cast<double>(cost.macs)) << " MACs\n";
  auto counts = [](const std::map<std::string, int64_t>& m) {
    std::string s;
    for (const auto& [op, n] : m) s += (s.empty() ? "" : ", ") + op + " x" + std::to_string(n);
    return s;
  };
  std::cout << "mapped: " << counts(report.mapped) << "\n";
  if (!report.fused.empty()) std::cout << "fused: " << counts(report.fused) << "\n";
  if (!report.folded.empty())
    std::cout << "folded at import (constant inputs): " << counts(report.folded) << "\n";
  return 0;
}

}  // namespace nnslim::cli
