#!/usr/bin/python3
"""Which of torchvision's classification models nnslim imports, counts, prunes and exports.

Run with Debian's python3-torch, python3-torchvision, python3-onnx and python3-opencv:
    /usr/bin/python3 scripts/torchvision_coverage.py [--nnslim build/nnslim] [--work DIR]
        [--models resnet18,mobilenet_v3_small,...] [--json results/coverage.json] [--keep]

For each model (random weights, as `torchvision.models.NAME(weights=None)`):
  1. export with the plain call users make:
     torch.onnx.export(model.eval(), torch.randn(1, 3, 224, 224), "m.onnx", opset_version=13)
  2. `nnslim import m.onnx`; its output on the same input against PyTorch's (max abs diff);
  3. params and MACs as `nnslim info --json` counts them, next to an independent count made
     here with forward hooks on PyTorch's modules (conv: out elements x in/groups x kh x kw,
     linear: in x out -- the convention nnslim documents);
  4. `nnslim compress --method magnitude --target-macs 0.5 --dataset synthetic --epochs 0`:
     the MACs fraction reached;
  5. `nnslim export` of the imported and of the pruned model, run in OpenCV's DNN module; the
     imported one against PyTorch's output.
Prints a markdown table (docs/RESULTS.md) and writes the rows as JSON.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torchvision

DEFAULT_MODELS = [
    "alexnet", "vgg11_bn", "vgg16_bn", "resnet18", "resnet50", "wide_resnet50_2",
    "resnext50_32x4d", "squeezenet1_0", "densenet121", "googlenet", "inception_v3",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
    "mnasnet0_5", "shufflenet_v2_x1_0", "regnet_x_400mf", "regnet_y_400mf", "convnext_tiny",
]


def independent_count(model, x):
    """Params (all trainable elements) and MACs of conv and linear layers, by forward hooks."""
    macs = [0]

    def conv_hook(m, inputs, out):
        kh, kw = m.kernel_size
        macs[0] += out.numel() // out.shape[0] * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, inputs, out):
        macs[0] += out.numel() // out.shape[-1] * m.in_features * m.out_features // out.shape[0]

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return params, macs[0]


def run(cmd, log):
    t = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write("$ " + " ".join(cmd) + f"  ({time.time() - t:.1f} s, rc {p.returncode})\n")
    log.write(p.stdout[-3000:] + "\n")
    log.flush()
    return p.returncode, p.stdout


def opencv_output(path, x):
    import cv2
    net = cv2.dnn.readNetFromONNX(path)
    net.setInput(x)
    return net.forward()


def check(name, args, log):
    row = {"model": name}
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref = model(x).numpy()
    row["torch_params"], row["torch_macs"] = independent_count(model, x)
    onnx_path = os.path.join(work, "m.onnx")
    torch.onnx.export(model, x, onnx_path, opset_version=13)
    del model

    rc, out = run([args.nnslim, "import", onnx_path, "--out", os.path.join(work, "m.nnslim"),
                   "--force"], log)
    row["imports"] = rc == 0
    if rc != 0:
        row["import_error"] = out.strip().splitlines()[-1][:200] if out.strip() else "?"
        return row
    rc, out = run([args.nnslim, "info", os.path.join(work, "m.nnslim"), "--json"], log)
    info = json.loads(out)
    row["params"], row["macs"] = info["params"], info["macs"]
    groups = info["channel_groups"]
    row["groups"], row["prunable_groups"] = groups["total"], groups["prunable"]

    # The imported model, exported again by nnslim, in OpenCV, against PyTorch's output.
    back = os.path.join(work, "back.onnx")
    rc, _ = run([args.nnslim, "export", os.path.join(work, "m.nnslim"), "--onnx", back,
                 "--force"], log)
    row["exports"] = rc == 0
    if rc == 0:
        try:
            y = opencv_output(back, x.numpy())
        except Exception as e:  # OpenCV 4.6 reads Clip (ReLU6) only in its opset-10 form
            row["opencv_error"] = " ".join(str(e).split())[-200:]
            back10 = os.path.join(work, "back10.onnx")
            rc, _ = run([args.nnslim, "export", os.path.join(work, "m.nnslim"), "--onnx",
                         back10, "--opset", "10", "--force"], log)
            y = None
            if rc == 0:
                try:
                    y = opencv_output(back10, x.numpy())
                    row["opencv_opset"] = 10
                except Exception:  # not the opset either: OpenCV lacks an op (its first error)
                    pass
        if y is not None:
            row["opencv_max_abs_diff"] = float(np.abs(y - ref).max())
            row["output_scale"] = float(np.abs(ref).max())

    out_dir = os.path.join(work, "pruned")
    rc, out = run([args.nnslim, "compress", "--model", os.path.join(work, "m.nnslim"),
                   "--method", "magnitude", "--target-macs", "0.5", "--dataset", "synthetic",
                   "--epochs", "0", "--limit-train", "16", "--limit-test", "8", "--no-latency",
                   "--quiet", "--force", "--out", out_dir], log)
    row["prunes"] = rc == 0
    if rc == 0:
        s = json.load(open(os.path.join(out_dir, "summary.json")))
        row["pruned_macs"] = s["after"]["macs"]
        row["macs_fraction"] = s["after"]["macs"] / s["before"]["macs"]
        pruned_onnx = os.path.join(work, "pruned.onnx")
        rc, _ = run([args.nnslim, "export", os.path.join(out_dir, "model.nnslim"), "--onnx",
                     pruned_onnx, "--force"] + (["--opset", "10"] if row.get("opencv_opset")
                                                 else []), log)
        if rc == 0:
            try:
                y = opencv_output(pruned_onnx, x.numpy())
                row["pruned_opencv_runs"] = bool(np.isfinite(y).all())
            except Exception as e:
                row["pruned_opencv_runs"] = False
                row["pruned_opencv_error"] = str(e).strip().splitlines()[-1][:200]
    else:
        row["prune_error"] = out.strip().splitlines()[-1][:200] if out.strip() else "?"
    return row


def fmt_count(n):
    return f"{n / 1e9:.2f}G" if n >= 1e9 else f"{n / 1e6:.2f}M"


def table(rows):
    lines = ["| model | imports | params (nnslim / hooks) | MACs (nnslim / hooks) | prunable groups "
             "| MACs after 0.5 | OpenCV vs PyTorch (max diff / max output) | OpenCV: pruned |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r.get("imports"):
            lines.append(f"| {r['model']} | no: {r.get('import_error', '?')} | - / "
                         f"{fmt_count(r['torch_params'])} | - / {fmt_count(r['torch_macs'])} "
                         "| - | - | - | - |")
            continue
        cv = (f"{r['opencv_max_abs_diff'] / max(r['output_scale'], 1e-30):.1e}"
              + (" (opset 10)" if r.get("opencv_opset") else "")
              if "opencv_max_abs_diff" in r else "no: " + r.get("opencv_error", "export failed"))
        after = (f"{fmt_count(r['pruned_macs'])} ({r['macs_fraction']:.3f})" if r.get("prunes")
                 else "no: " + r.get("prune_error", "?"))
        pcv = ("yes" if r.get("pruned_opencv_runs") else
               "no: " + r.get("pruned_opencv_error", "-") if r.get("prunes") else "-")
        lines.append(f"| {r['model']} | yes | {fmt_count(r['params'])} / "
                     f"{fmt_count(r['torch_params'])} | {fmt_count(r['macs'])} / "
                     f"{fmt_count(r['torch_macs'])} | {r['prunable_groups']} of {r['groups']} "
                     f"| {after} | {cv} | {pcv} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nnslim", default="build/nnslim")
    ap.add_argument("--work", default="/tmp/nnslim-coverage")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--json", default="")
    ap.add_argument("--keep", action="store_true",
                    help="keep each model's files in --work (default: removed after its row)")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rows = []
    with open(os.path.join(args.work, "log.txt"), "w") as log:
        for name in args.models.split(","):
            t = time.time()
            try:
                row = check(name, args, log)
            except Exception as e:  # a model this torchvision lacks, an exporter failure
                row = {"model": name, "imports": False, "import_error": f"({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:150]})", "torch_params": 0, "torch_macs": 0}
            row["seconds"] = round(time.time() - t, 1)
            if not args.keep:  # the large models' files take gigabytes each
                shutil.rmtree(os.path.join(args.work, name), ignore_errors=True)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json + ".tmp", "w") as f:
                    json.dump(rows, f, indent=1)
                os.replace(args.json + ".tmp", args.json)
    print(table(rows))


if __name__ == "__main__":
    sys.exit(main())
