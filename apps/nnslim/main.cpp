// nnslim: train, compress, evaluate and benchmark neural networks.
// main maps library exceptions to "error: ..." with exit 1 and usage errors to exit 2.
#include "common.h"
#include "nnslim/train/memory.h"

#include <c10/util/Exception.h>
#include <torch/version.h>

#include <unistd.h>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace nnslim::cli {
int cmd_train(const std::vector<std::string>& args);
int cmd_eval(const std::vector<std::string>& args);
int cmd_info(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);
int cmd_compress(const std::vector<std::string>& args);
int cmd_export(const std::vector<std::string>& args);
int cmd_import(const std::vector<std::string>& args);
int cmd_report(const std::vector<std::string>& args);
}  // namespace nnslim::cli

namespace {

struct Verb {
  const char* name;
  nnslim::cli::VerbFn fn;
  const char* summary;
};

const Verb kVerbs[] = {
    {"train", nnslim::cli::cmd_train, "train a zoo model on a dataset"},
    {"eval", nnslim::cli::cmd_eval, "top-1/top-5 accuracy of a saved model"},
    {"info", nnslim::cli::cmd_info, "per-layer shapes, params and MACs"},
    {"compress", nnslim::cli::cmd_compress, "compress a saved model with one of the methods"},
    {"bench", nnslim::cli::cmd_bench, "measured inference latency or training throughput"},
    {"export", nnslim::cli::cmd_export, "write a model as ONNX for deployment"},
    {"import", nnslim::cli::cmd_import, "read an ONNX CNN as an nnslim model"},
    {"report", nnslim::cli::cmd_report, "compare runs: table and HTML page with plots"},
};

void usage(std::ostream& os) {
  os << "usage: nnslim <verb> [options]   (nnslim <verb> --help for details; nnslim --version)\n\n"
        "nnslim trains neural networks while compressing them, and turns the result into a\n"
        "network that is really smaller and faster.\n\nverbs:\n";
  for (const auto& v : kVerbs)
    os << "  " << v.name << std::string(10 - std::strlen(v.name), ' ') << v.summary << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  // LibTorch's OpenMP threads spin while waiting. On a machine whose cores are busy with other
  // work that spinning makes small layers 10-15x slower (measured: resnet20 batch-1 inference
  // 16 ms passive vs 240 ms spinning, 2 threads, other processes on both cores). libgomp reads
  // the policy when it loads, so set it and re-execute once, unless the user chose a policy.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::execv("/proc/self/exe", argv);  // on failure, carry on with the default policy
  }
  nnslim::keep_tensor_memory_in_heap();
  if (argc < 2) {
    usage(std::cerr);
    return 2;
  }
  std::string verb = argv[1];
  if (verb == "--version" || verb == "version") {
    std::cout << "nnslim " << NNSLIM_VERSION << " (LibTorch " << TORCH_VERSION << ")\n";
    return 0;
  }
  if (verb == "help" && argc >= 3) {  // "nnslim help train" = "nnslim train --help"
    verb = argv[2];
    argv[2] = const_cast<char*>("--help");
  } else if (verb == "--help" || verb == "-h" || verb == "help") {
    usage(std::cout);
    return 0;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& v : kVerbs) {
    if (verb != v.name) continue;
    try {
      return v.fn(args);
    } catch (const nnslim::RequestError& e) {  // the CLI's UsageError is one too
      std::cerr << "nnslim " << verb << ": " << e.what() << "\n";
      return 2;
    } catch (const c10::Error& e) {
      std::cerr << "error: " << e.what_without_backtrace() << "\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "nnslim: unknown verb '" << verb << "'\n\n";
  usage(std::cerr);
  return 2;
}
