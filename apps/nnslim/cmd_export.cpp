// nnslim export: a saved model as an ONNX file.
#include "common.h"

#include "nnslim/io/onnx.h"

#include <filesystem>
#include <iostream>

namespace nnslim::cli {

int cmd_export(const std::vector<std::string>& args) {
  std::string model_path, onnx_path;
  int64_t opset = 13;
  bool no_fold = false, force = false;
  ArgParser p("export", "nnslim export MODEL --onnx OUT.onnx [--opset 13] [--no-fold-bn]",
              "Writes a saved model (*.nnslim, dense, pruned, factorised or unified) as an ONNX\n"
              "model for deployment. The file computes the model's inference function for any\n"
              "batch size and passes ONNX's checker. BatchNorm is folded into the convolution\n"
              "before it unless --no-fold-bn. Metadata (classes, dataset normalisation) is kept\n"
              "in the model's metadata_props; inputs must be normalised the same way.");
  ModelFileArg model_arg;
  model_arg.add_to(p);
  p.option("onnx", &onnx_path, "OUT.onnx", "the ONNX file to write");
  p.option("opset", &opset, "N",
           "ONNX opset version (9..17); runtimes that predate Clip with\n"
           "bound inputs (e.g. OpenCV 4.6) need 10 for ReLU6 models");
  p.flag("no-fold-bn", &no_fold, "keep BatchNormalization nodes instead of folding them");
  p.flag("force", &force, "overwrite an existing --onnx file that is not an ONNX model");
  if (!p.parse(args)) return 0;
  model_path = model_arg.path();
  if (onnx_path.empty()) throw UsageError("--onnx OUT.onnx is required");
  if (opset < 9 || opset > 17) throw UsageError("--opset must be between 9 and 17");
  check_out_file(onnx_path, "onnx", {model_path}, OutKind::Onnx, force);
  Graph g = load_model_file(model_path);
  OnnxExportOptions opt;
  opt.opset = opset;
  opt.fold_batchnorm = !no_fold;
  export_onnx(g, onnx_path, opt);
  std::cout << "wrote " << onnx_path << " (" << human_count(std::filesystem::file_size(onnx_path))
            << "B, opset " << opset << (opt.fold_batchnorm ? ", BatchNorm folded" : "") << ")\n";
  return 0;
}

}  // namespace nnslim::cli
