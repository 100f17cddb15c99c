#!/usr/bin/env python3
"""PyTorch eager (CPU, fp32) timing of the same training step tpufi runs for a workload at a
scale preset: 8 replicas x tpufi's images (or sequences) per replica, each replica's forward
and backward with its own batch-norm statistics, gradients averaged, Adam update.
   python torch_train_step.py [--workload resnet18|effnet|densenet|nfnet|transformer]
                              [--threads 2] [--steps 5] [--scale small|tiny|paper]

The networks are the ones the float64 correctness fixtures build (scripts/reference/: layer
lists, SAME padding and topology in resnet18_net.py, effnet_net.py, densenet_net.py,
nfnet_net.py and transformer_net.py), with the sizes of tpufi's presets (PRESETS below, from
Sources/Sim/Models/). What is PyTorch's own here: nn.Conv2d, nn.BatchNorm2d (momentum 0.1 =
Keras's 0.9, epsilon 1e-3), F.dropout with PyTorch's RNG, F.silu for swish, nn.Linear,
torch.optim.Adam, and PyTorch's default initial values (they do not change the work). A
convolution whose SAME padding is symmetric pads inside the convolution; only the odd
row/column at the bottom/right of a stride-2 convolution on an even input takes an F.pad.

- resnet18: 7x7 stride-2 stem, a bias on every conv (before its batch norm), dropout 0.15
  after both ReLUs of every basic block.
- effnet: EfficientNet-B0's stages (MBConv with squeeze-and-excite; depthwise convolutions as
  grouped nn.Conv2d), no dropout.
- densenet: DenseNet-121's blocks 6/12/24/16 with bias on every conv, strided 3x3 convs in
  place of the pools, dropout 0.5 on every bottleneck's output.
- nfnet: NF-ResNet bottleneck blocks, every conv weight-standardised per step (as tpufi does)
  with a gain and a bias, scaled ReLU, SkipInit gains; no batch norm, no dropout.
- transformer: encoder-decoder, 2 + 2 pre-layer-norm blocks at `small`, dropout 0.1 at the
  network's seven places, label-smoothed loss, Adam with beta2 0.997, epsilon 1e-9; random
  tokens without padding.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "reference"))
import densenet_net  # noqa: E402
import effnet_net  # noqa: E402
import nfnet_net  # noqa: E402
import resnet18_net  # noqa: E402
import transformer_net  # noqa: E402
from resnet18_net import same_padding  # noqa: E402

REPLICAS = 8
B0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4),
             (6, 3, 1, 320, 1)]
# tpufi's presets (Sources/Sim/Models/*.swift): input size and channels, images (sequences)
# per replica, and each network's widths.
PRESETS = {
    "resnet18": {
        "tiny": dict(size=16, channels=1, batch=4, width=4),
        "small": dict(size=28, channels=1, batch=32, width=16),
        "paper": dict(size=32, channels=3, batch=128, width=64),
    },
    "effnet": {
        "tiny": dict(size=16, channels=1, batch=4, stem=8, head=64, stages=[
            (1, 3, 1, 8, 1), (6, 3, 2, 8, 1), (6, 5, 2, 16, 1), (6, 3, 2, 16, 1), (6, 5, 1, 24, 2), (6, 5, 2, 32, 1),
            (6, 3, 1, 40, 1)]),
        "small": dict(size=28, channels=1, batch=32, stem=32, head=1280, stages=B0_STAGES),
        "paper": dict(size=32, channels=3, batch=128, stem=32, head=1280, stages=B0_STAGES),
    },
    "densenet": {
        "tiny": dict(size=16, channels=1, batch=4, initial=8, growth=4, blocks=[2, 2, 2, 2], compression=0.5),
        "small": dict(size=28, channels=1, batch=32, initial=24, growth=12, blocks=[6, 12, 24, 16], compression=0.5),
        "paper": dict(size=32, channels=3, batch=128, initial=64, growth=32, blocks=[6, 12, 24, 16], compression=0.5),
    },
    "nfnet": {
        "tiny": dict(size=16, channels=1, batch=4, stem=4, widths=(16, 32, 64, 128)),
        "small": dict(size=28, channels=1, batch=32, stem=16, widths=(64, 128, 256, 512)),
        "paper": dict(size=32, channels=3, batch=128, stem=64, widths=(256, 512, 1024, 2048)),
    },
    "transformer": {
        "tiny": dict(batch=2, source=8, target=8, vocabulary=128, hidden=16, heads=2, filter=32, encoder=2, decoder=2),
        "small": dict(batch=16, source=32, target=32, vocabulary=128, hidden=64, heads=4, filter=256, encoder=2, decoder=2),
        "paper": dict(batch=16, source=64, target=64, vocabulary=128, hidden=512, heads=8, filter=2048, encoder=6, decoder=6),
    },
}
LEARNING_RATES = {"resnet18": 1e-3, "effnet": 0.002, "densenet": 1e-3, "nfnet": 0.01, "transformer": 1e-3}
TRANSFORMER_DROPOUT, LABEL_SMOOTHING = 0.1, 0.1


def same_conv(x, weight, bias, stride, groups=1):
    """A convolution with TensorFlow's SAME padding: inside the convolution where symmetric."""
    k = weight.shape[2]
    (top, bottom), (left, right) = (same_padding(n, k, stride) for n in x.shape[2:])
    if top == bottom and left == right:
        return F.conv2d(x, weight, bias, stride, (top, left), groups=groups)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride, groups=groups)


def batch_norm(channels):
    return nn.BatchNorm2d(channels, eps=resnet18_net.BN_EPS, momentum=1 - resnet18_net.BN_MOMENTUM)


class ResNet18(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        convs, self.blocks, n_features = resnet18_net.layers(cfg)
        self.convs = nn.ModuleDict({name: nn.Conv2d(ci, co, k, s, bias=True) for name, ci, co, k, s in convs})
        self.bns = nn.ModuleDict({name: batch_norm(co) for name, _, co, _, _ in convs})
        self.dense = nn.Linear(n_features, resnet18_net.CLASSES)

    def forward(self, x):
        def conv(name, x):
            c = self.convs[name]
            return self.bns[name](same_conv(x, c.weight, c.bias, c.stride[0]))

        def dropout(x):
            return F.dropout(x, resnet18_net.DROPOUT, self.training)

        return self.dense(resnet18_net.features(x, self.blocks, conv, dropout))


class EfficientNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        convs = effnet_net.layers(cfg)
        self.convs = nn.ModuleDict({name: nn.Conv2d(ci, co, k, s, groups=ci if dw else 1, bias=bias)
                                    for name, ci, co, k, s, bias, dw, _ in convs})
        self.bns = nn.ModuleDict({norm: batch_norm(co) for _, _, co, _, _, _, _, norm in convs if norm})
        self.dense = nn.Linear(cfg["head"], effnet_net.CLASSES)

    def forward(self, x):
        def conv(name, x, k, stride=1, bias=False):
            c = self.convs[name]
            return same_conv(x, c.weight, c.bias, c.stride[0], c.groups)

        def depthwise(name, x, k, stride):
            return conv(name, x, k, stride)

        return self.dense(effnet_net.features(x, self.cfg, conv, depthwise, lambda name, y: self.bns[name](y), F.silu))


class DenseNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        convs, norms, self.blocks, n_features = densenet_net.layers(cfg)
        self.convs = nn.ModuleDict({name: nn.Conv2d(ci, co, k, s, bias=True) for name, ci, co, k, s in convs})
        self.bns = nn.ModuleDict({name: batch_norm(c) for name, c in norms})
        self.dense = nn.Linear(n_features, densenet_net.CLASSES)

    def forward(self, x):
        def conv(name, x):
            c = self.convs[name]
            return same_conv(x, c.weight, c.bias, c.stride[0])

        def dropout(x):
            return F.dropout(x, densenet_net.DROPOUT, self.training)

        return self.dense(densenet_net.features(x, self.blocks, conv, lambda name, y: self.bns[name](y), dropout))


class NFResNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        convs, self.blocks, n_features = nfnet_net.layers(cfg)
        self.spec = {name: (k, s) for name, _, _, k, s in convs}
        # HWIO kernels as tpufi and nfnet_net.standardize store them.
        self.kernels = nn.ParameterDict({name: nn.Parameter(torch.randn(k, k, ci, co) * (k * k * ci) ** -0.5)
                                         for name, ci, co, k, _ in convs})
        self.gains = nn.ParameterDict({name: nn.Parameter(torch.ones(co)) for name, _, co, _, _ in convs})
        self.biases = nn.ParameterDict({name: nn.Parameter(torch.zeros(co)) for name, _, co, _, _ in convs})
        self.skip_gains = nn.ParameterDict({b[0]: nn.Parameter(torch.zeros(1)) for b in self.blocks})
        self.dense = nn.Linear(n_features, nfnet_net.CLASSES)

    def forward(self, x):
        def conv(name, x):
            w = nfnet_net.standardize(self.kernels[name], self.gains[name]).permute(3, 2, 0, 1)
            return same_conv(x, w, self.biases[name], self.spec[name][1])

        return self.dense(nfnet_net.features(x, self.blocks, conv, lambda block: self.skip_gains[block][0]))


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.names = [name for name, _ in transformer_net.parameter_names(cfg)]
        self.params = nn.ParameterList([nn.Parameter(torch.randn(shape) * 0.05 if len(shape) > 1 else torch.ones(shape))
                                        for _, shape in transformer_net.parameter_names(cfg)])

    def forward(self, src, tgt):
        p = dict(zip(self.names, self.params))
        return transformer_net.logits(p, src, tgt, self.cfg, lambda x: F.dropout(x, TRANSFORMER_DROPOUT, self.training))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="resnet18", choices=sorted(PRESETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--scale", default="small", choices=["tiny", "small", "paper"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = PRESETS[args.workload][args.scale]
    B = cfg["batch"]
    if args.workload == "transformer":
        model = Transformer(cfg).train()
        opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATES[args.workload], betas=(0.9, 0.997), eps=1e-9)
        V = cfg["vocabulary"]
        x = torch.randint(1, V, (REPLICAS, B, cfg["source"]))
        y = torch.randint(1, V, (REPLICAS, B, cfg["target"]))

        def loss(r):
            return transformer_net.smoothed_loss(model(x[r], y[r]), y[r].reshape(-1), LABEL_SMOOTHING)
    else:
        net = {"resnet18": ResNet18, "effnet": EfficientNet, "densenet": DenseNet, "nfnet": NFResNet}[args.workload]
        model = net(cfg).train()
        opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATES[args.workload], eps=1e-7)
        x = torch.randn(REPLICAS, B, cfg["channels"], cfg["size"], cfg["size"])
        y = torch.randint(0, resnet18_net.CLASSES, (REPLICAS, B))

        def loss(r):
            return F.cross_entropy(model(x[r]), y[r])

    def step():
        opt.zero_grad()
        for r in range(REPLICAS):   # per-replica batch norm, gradients summed then averaged
            (loss(r) / REPLICAS).backward()
        opt.step()

    step()
    times, cpu = [], []
    for _ in range(args.steps):
        t, c = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    times.sort()
    cpu.sort()
    # CPU time per step (all threads) is the steadier figure on a host shared with other work
    # (one thread: with more, idle OpenMP threads spin and count too).
    print(f"torch {torch.__version__} {args.workload} threads={args.threads} scale={args.scale}: "
          f"step median {times[len(times) // 2]:.4f} s min {times[0]:.4f} s cpu median {cpu[len(cpu) // 2]:.4f} s")


if __name__ == "__main__":
    main()
