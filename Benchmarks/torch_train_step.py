#!/usr/bin/env python3
"""PyTorch eager (CPU, fp32) timing of the same training step tpufi runs: the reference
network's ResNet-18 (the `resnet18` workload) at the `small` scale (28x28x1, widths 16-128),
8 replicas x 32 images, each replica's forward and backward with its own batch-norm
statistics, gradients averaged, Adam update.
   python torch_train_step.py [--threads 2] [--steps 5] [--scale small|tiny|paper]

The layer list, SAME padding and topology come from scripts/reference/resnet18_net.py, the
module the float64 correctness fixture (scripts/reference/torch_resnet18_step.py) builds its
network from: 7x7 stride-2 stem, a bias on every conv (before its batch norm), batch norm
momentum 0.9 (PyTorch's 0.1) and epsilon 1e-3, dropout 0.15 after both ReLUs of every basic
block. Batch norm, dropout and Adam are PyTorch's own (nn.BatchNorm2d, F.dropout with
PyTorch's RNG, torch.optim.Adam); initial values are PyTorch's defaults (they do not change
the work)."""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "reference"))
from resnet18_net import BN_EPS, BN_MOMENTUM, CLASSES, DROPOUT, features, layers, same_padding  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--scale", default="small", choices=["tiny", "small", "paper"])
args = ap.parse_args()
torch.set_num_threads(args.threads)
# tpufi's presets: input H = W, channels, base width, images per replica
H, C_IN, WIDTH, BATCH = {"tiny": (16, 1, 4, 4), "small": (28, 1, 16, 32), "paper": (32, 3, 64, 128)}[args.scale]
REPLICAS = 8


class ResNet18(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        convs, self.blocks, n_features = layers(cfg)
        self.convs = nn.ModuleDict({name: nn.Conv2d(ci, co, k, s, bias=True) for name, ci, co, k, s in convs})
        self.bns = nn.ModuleDict({name: nn.BatchNorm2d(co, eps=BN_EPS, momentum=1 - BN_MOMENTUM) for name, _, co, _, _ in convs})
        self.dense = nn.Linear(n_features, CLASSES)

    def conv(self, name, x):
        c = self.convs[name]
        (top, bottom), (left, right) = (same_padding(n, c.kernel_size[0], c.stride[0]) for n in x.shape[2:])
        if top == bottom and left == right:  # SAME is symmetric here: let the conv pad
            y = F.conv2d(x, c.weight, c.bias, c.stride, (top, left))
        else:                                # the odd row/column at the bottom/right
            y = F.conv2d(F.pad(x, (left, right, top, bottom)), c.weight, c.bias, c.stride)
        return self.bns[name](y)

    def dropout(self, x):
        return F.dropout(x, DROPOUT, self.training)

    def forward(self, x):
        return self.dense(features(x, self.blocks, self.conv, self.dropout))


torch.manual_seed(0)
model = ResNet18(dict(channels=C_IN, width=WIDTH)).train()
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
x = torch.randn(REPLICAS, BATCH, C_IN, H, H)
y = torch.randint(0, CLASSES, (REPLICAS, BATCH))


def step():
    opt.zero_grad()
    for r in range(REPLICAS):   # per-replica batch norm, gradients summed then averaged
        (F.cross_entropy(model(x[r]), y[r]) / REPLICAS).backward()
    opt.step()


step()
times = []
for _ in range(args.steps):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
times.sort()
print(f"torch {torch.__version__} threads={args.threads} scale={args.scale}: step median {times[len(times) // 2]:.4f} s min {times[0]:.4f} s")
