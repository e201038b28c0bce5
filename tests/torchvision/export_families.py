#!/usr/bin/python3
"""Exports a small member of every torchvision CNN family with PyTorch's own exporter.

Run by ctest (the fixture `torchvision_exports`) with Debian's python3-torch and
python3-torchvision, which scripts/install-deps.sh installs:
    /usr/bin/python3 tests/torchvision/export_families.py OUTDIR [--only resnet_basic,...]

Each family is built from torchvision's own classes (its blocks, its forward code), made small
through the constructor arguments torchvision offers (depths, widths, group widths, growth rate,
the conv block class of GoogLeNet and Inception v3), ResNet's stages a quarter as wide (one
overridden method), and a narrower classifier where torchvision fixes it (VGG's and AlexNet's
4096-wide heads, the final Linear of the thinned models), with random weights
and randomised BatchNorm statistics so that BN is not an identity. Every family is exported at
opsets 11 to 17, with and without constant folding -- the variants users produce -- as
<family>_op<N>[_unfolded].onnx, next to <family>.input.bin and <family>.output.bin (float32,
little endian: a fixed input of batch 2 and PyTorch's output for it). manifest.tsv lists one export per
line: name, family, opset, folded (0/1), input size, classes. tests/io/test_torchvision_families.cpp
reads it.

The exports are cached: when OUTDIR/stamp holds this script's hash and torch's version, nothing
is redone.
"""
import argparse
import functools
import hashlib
import importlib
import os
import sys

import torch
import torch.nn as nn
import torchvision


def _module(name):
    # torchvision.models.alexnet (and .googlenet) name the builder functions, not the modules.
    return importlib.import_module("torchvision.models." + name)


(alexnet, convnext, densenet, efficientnet, googlenet, inception, mnasnet, mobilenetv2,
 mobilenetv3, regnet, resnet, shufflenetv2, squeezenet, vgg) = map(_module, (
     "alexnet", "convnext", "densenet", "efficientnet", "googlenet", "inception", "mnasnet",
     "mobilenetv2", "mobilenetv3", "regnet", "resnet", "shufflenetv2", "squeezenet", "vgg"))

CLASSES = 10
OPSETS = range(11, 18)


def small_vgg():
    cfg = [8, "M", 16, "M", 32, 32, "M", 32, 32, "M", 64, 64, "M"]
    m = vgg.VGG(vgg.make_layers(cfg, batch_norm=True), num_classes=CLASSES)
    # VGG's head is fixed at 512*7*7 -> 4096 -> 4096; the same layers, narrower.
    m.classifier = nn.Sequential(nn.Linear(64 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(64, CLASSES))
    return m


def small_alexnet():
    m = alexnet.AlexNet(num_classes=CLASSES)
    # Its features, a quarter as wide (the same layers; AlexNet has no width argument).
    m.features = nn.Sequential(*[
        nn.Conv2d(c.in_channels if c.in_channels == 3 else c.in_channels // 4,
                  c.out_channels // 4, c.kernel_size, c.stride, c.padding)
        if isinstance(c, nn.Conv2d) else c for c in m.features])
    m.classifier = nn.Sequential(nn.Dropout(), nn.Linear(64 * 6 * 6, 64), nn.ReLU(True),
                                 nn.Dropout(), nn.Linear(64, 64), nn.ReLU(True),
                                 nn.Linear(64, CLASSES))
    return m


def thin(conv_class, divisor=4):
    """torchvision's conv block class with every width (but the RGB input's) divided: GoogLeNet
    and Inception v3 take their conv block as an argument, their widths are fixed otherwise."""

    class Thin(conv_class):
        def __init__(self, in_channels, out_channels, **kwargs):
            super().__init__(in_channels if in_channels == 3 else in_channels // divisor,
                             out_channels // divisor, **kwargs)

    return Thin


def small_googlenet():
    g = googlenet
    conv = thin(g.BasicConv2d)
    m = g.GoogLeNet(num_classes=CLASSES, aux_logits=False, init_weights=True,
                    blocks=[conv, functools.partial(g.Inception, conv_block=conv),
                            g.InceptionAux])
    m.fc = nn.Linear(1024 // 4, CLASSES)
    return m


def small_inception_v3():
    i = inception
    conv = thin(i.BasicConv2d)
    blocks = [functools.partial(b, conv_block=conv) for b in
              (i.InceptionA, i.InceptionB, i.InceptionC, i.InceptionD, i.InceptionE)]
    m = i.Inception3(num_classes=CLASSES, aux_logits=False, init_weights=True,
                     inception_blocks=[conv] + blocks + [i.InceptionAux])
    m.fc = nn.Linear(2048 // 4, CLASSES)
    return m


class ThinResNet(resnet.ResNet):
    """torchvision's ResNet with its four stages a quarter as wide (its stem stays 64)."""

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        return super()._make_layer(block, planes // 4, blocks, stride, dilate)


def small_resnet(block, **kwargs):
    m = ThinResNet(block, [1, 1, 1, 1], num_classes=CLASSES, **kwargs)
    m.fc = nn.Linear(512 // 4 * block.expansion, CLASSES)
    return m


def small_efficientnet():
    setting, last = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25,
                                                    depth_mult=0.25)
    return efficientnet.EfficientNet(setting, 0.2, num_classes=CLASSES, last_channel=last)


def small_efficientnet_v2():
    F, M = efficientnet.FusedMBConvConfig, efficientnet.MBConvConfig
    setting = [F(1, 3, 1, 8, 8, 1), F(4, 3, 2, 8, 16, 1), M(4, 3, 2, 16, 24, 1),
               M(6, 3, 1, 24, 32, 1)]
    return efficientnet.EfficientNet(setting, 0.2, num_classes=CLASSES, last_channel=64)


def small_regnet(se):
    params = regnet.BlockParams.from_init_params(depth=5, w_0=16, w_a=8.0, w_m=2.0,
                                                 group_width=8, se_ratio=0.25 if se else None)
    return regnet.RegNet(params, num_classes=CLASSES)


def small_convnext():
    C = convnext.CNBlockConfig
    return convnext.ConvNeXt([C(16, 32, 1), C(32, 64, 1), C(64, 96, 2), C(96, None, 1)],
                             stochastic_depth_prob=0.0, num_classes=CLASSES)


# name -> (constructor, input size). Input sizes are the smallest the family's pooling allows
# (AlexNet's and VGG's adaptive pools need 224 to pool exactly; Inception v3 needs >= 75).
FAMILIES = {
    "alexnet": (small_alexnet, 224),
    "vgg_bn": (small_vgg, 224),
    "resnet_basic": (lambda: small_resnet(resnet.BasicBlock), 64),
    "resnet_bottleneck": (lambda: small_resnet(resnet.Bottleneck), 64),
    "wide_resnet": (lambda: small_resnet(resnet.Bottleneck, width_per_group=128), 64),
    "resnext": (lambda: small_resnet(resnet.Bottleneck, groups=4, width_per_group=16), 64),
    "squeezenet1_0": (lambda: squeezenet.SqueezeNet("1_0", num_classes=CLASSES), 64),
    "squeezenet1_1": (lambda: squeezenet.SqueezeNet("1_1", num_classes=CLASSES), 64),
    "densenet": (lambda: densenet.DenseNet(growth_rate=8, block_config=(2, 2, 2, 2),
                                           num_init_features=16, num_classes=CLASSES), 64),
    "googlenet": (small_googlenet, 64),
    "inception_v3": (small_inception_v3, 80),
    "mobilenet_v2": (lambda: mobilenetv2.MobileNetV2(num_classes=CLASSES, width_mult=0.25), 64),
    "mobilenet_v3_small": (lambda: mobilenetv3.mobilenet_v3_small(num_classes=CLASSES,
                                                                  width_mult=0.25), 64),
    "mobilenet_v3_large": (lambda: mobilenetv3.mobilenet_v3_large(num_classes=CLASSES,
                                                                  width_mult=0.25), 64),
    "efficientnet": (small_efficientnet, 64),
    "efficientnet_v2": (small_efficientnet_v2, 64),
    "mnasnet": (lambda: mnasnet.MNASNet(0.25, num_classes=CLASSES), 64),
    "shufflenet_v2": (lambda: shufflenetv2.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128],
                                                        num_classes=CLASSES), 64),
    "regnet_x": (lambda: small_regnet(False), 64),
    "regnet_y": (lambda: small_regnet(True), 64),
    "convnext": (small_convnext, 64),
}


def randomize_bn(model, gen):
    """BatchNorm with non-trivial statistics and affine terms, so folding errors would show."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def export_family(name, out_dir, manifest):
    build, size = FAMILIES[name]
    torch.manual_seed(0)
    model = build().eval()
    randomize_bn(model, torch.Generator().manual_seed(1))
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, CLASSES), (name, y.shape)
    x.numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".input.bin"))
    y.numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".output.bin"))
    for opset in OPSETS:
        for folded in (True, False):
            stem = f"{name}_op{opset}" + ("" if folded else "_unfolded")
            path = os.path.join(out_dir, stem + ".onnx")
            # The plain call users make (batch 1 at export), only the opset and folding vary.
            torch.onnx.export(model, x[:1], path + ".tmp", opset_version=opset,
                              do_constant_folding=folded)
            os.replace(path + ".tmp", path)
            manifest.append(f"{stem}\t{name}\t{opset}\t{int(folded)}\t{size}\t{CLASSES}")


def stamp_text():
    with open(os.path.abspath(__file__), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return f"{digest} torch {torch.__version__} torchvision {torchvision.__version__}\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--only", default="", help="comma-separated families (default: all)")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        sys.exit(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
    os.makedirs(args.out_dir, exist_ok=True)
    stamp_path = os.path.join(args.out_dir, "stamp")
    stamp = stamp_text() + ",".join(names) + "\n"
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        print(f"torchvision exports in {args.out_dir} are up to date")
        return 0
    torch.set_num_threads(1)
    manifest = []
    for name in names:
        export_family(name, args.out_dir, manifest)
        print(f"exported {name} at opsets {OPSETS.start}-{OPSETS.stop - 1}, folded and not",
              flush=True)
    with open(os.path.join(args.out_dir, "manifest.tsv.tmp"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    os.replace(os.path.join(args.out_dir, "manifest.tsv.tmp"),
               os.path.join(args.out_dir, "manifest.tsv"))
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
