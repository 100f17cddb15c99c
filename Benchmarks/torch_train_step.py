#!/usr/bin/env python3
"""PyTorch eager (CPU, fp32) timing of the same training step tpufi runs: ResNet-18 at the
`small` scale (28x28x1, widths 16-128), 8 replicas x 32 images, each replica's forward and
backward with its own batch-norm statistics, gradients averaged, Adam update.
   python torch_train_step.py [--threads 2] [--steps 5] [--scale small|tiny]"""
import argparse, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--scale", default="small")
args = ap.parse_args()
torch.set_num_threads(args.threads)
H, C_IN, WIDTH, BATCH = {"small": (28, 1, 16, 32), "tiny": (8, 1, 4, 4), "paper": (32, 3, 64, 128)}[args.scale]
REPLICAS, CLASSES = 8, 10


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.b1 = nn.BatchNorm2d(cout, eps=1e-3)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.b2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-3))

    def forward(self, x):
        h = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(h)) + (self.down(x) if self.down is not None else x))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(C_IN, WIDTH, 3, 1, 1, bias=False), nn.BatchNorm2d(WIDTH, eps=1e-3), nn.ReLU())
        blocks, cin = [], WIDTH
        for stage in range(4):
            w = WIDTH << stage
            for b in range(2):
                blocks.append(Block(cin, w, 2 if stage > 0 and b == 0 else 1))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, CLASSES)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


model = ResNet18()
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
