#!/usr/bin/env python3
"""Independent reference for one data-parallel training step of tpufi's `effnet` (the
reference study's EfficientNet-B0, in its block order) at the tiny scale, in PyTorch float64.

tpufi's semantics, spelled out here rather than shared with the Swift code:

- NHWC activations, HWIO kernels (depthwise kernels [k, k, C, 1]) and dense [in, out] are
  tpufi's storage; PyTorch computes in NCHW after permuting. Parameter names are tpufi's.
- The network (layer list, MBConv blocks with squeeze-and-excite, head; effnet_net.py next to
  this script, shared with the timing benchmark Benchmarks/torch_train_step.py), then a dense
  layer with bias; softmax cross-entropy averaged over the replica's batch.
- TensorFlow SAME padding (resnet18_net.same_pad). Batch norm per replica with the batch's
  biased variance, epsilon 1e-3; moving averages 0.9 * moving + 0.1 * batch of the replica
  means of the batch statistics.
- R replicas, gradients averaged over replicas; Keras Adam from a fresh state, one update, at
  the reference's initial learning rate 0.002.

Every block's output reaches the loss only through a 1x1 conv followed by batch norm (the
next block's expansion or the head), directly or through residual additions, so a constant
per-channel shift of it changes nothing: the gradient of every `_bn3/beta` is analytically
zero. The fixture stores its terms (per channel, the sum of |dL/d(_bn3 output)|) under
`bias_terms/`; the Swift test checks those gradients against them instead of comparing
rounding noise.

Every parameter and the initial moving statistics are random (not the initializer's zeros
and ones), so that each matters.

Run from the repository root in a throwaway virtual environment (see torch_resnet18_step.py):

    VENV/bin/python scripts/reference/torch_effnet_step.py

writes Tests/SimTests/Fixtures/effnet_tiny_step.safetensors, which
`swift test --filter EfficientNetTests` checks.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from effnet_net import BN_EPS, BN_MOMENTUM, CLASSES, features, layers
from resnet18_net import same_pad
from torch_resnet18_step import moving_outputs, save, update_outputs

torch.set_default_dtype(torch.float64)

LR = 0.002
# tpufi's `tiny` preset: input, stem, head, stages (expand, kernel, stride, out, repeats).
TINY = dict(size=16, channels=1, batch=4, replicas=2, stem=8, head=64, stages=[
    (1, 3, 1, 8, 1), (6, 3, 2, 8, 1), (6, 5, 2, 16, 1), (6, 3, 2, 16, 1), (6, 5, 1, 24, 2), (6, 5, 2, 32, 1), (6, 3, 1, 40, 1)])
SEED, EPOCH, STEP = 1000, 0, 0


def replica_step(p, images, labels, cfg):
    stats, projected = {}, {}

    def bn(name, y):
        mean = y.mean(dim=(0, 2, 3))
        var = ((y - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))
        stats[name] = (mean.detach().numpy().copy(), var.detach().numpy().copy())
        xhat = (y - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + BN_EPS)
        return p[name + "/gamma"][None, :, None, None] * xhat + p[name + "/beta"][None, :, None, None]

    def conv(name, x, k, stride=1, bias=False):
        y = F.conv2d(same_pad(x, k, stride), p[name + "/kernel"].permute(3, 2, 0, 1), stride=stride)
        return y + p[name + "/bias"][None, :, None, None] if bias else y

    def depthwise(name, x, k, stride):
        w = p[name + "/kernel"].permute(2, 3, 0, 1)  # [k, k, C, 1] -> [C, 1, k, k]
        return F.conv2d(same_pad(x, k, stride), w, stride=stride, groups=x.shape[1])

    def norm(name, y):
        out = bn(name, y)
        if name.endswith("_bn3"):  # a block's projection: its beta's gradient is analytically zero
            out.retain_grad()
            projected[name + "/beta"] = out
        return out

    x = features(torch.from_numpy(images.astype(np.float64)).permute(0, 3, 1, 2), cfg, conv, depthwise, norm,
                 lambda v: v * torch.sigmoid(v))
    logits = x @ p["dense/kernel"] + p["dense/bias"]
    loss = F.cross_entropy(logits, torch.from_numpy(labels.astype(np.int64)))
    loss.backward()
    terms = {k: y.grad.abs().sum(dim=(0, 2, 3)).numpy().copy() for k, y in projected.items()}
    return loss.item(), {k: v.grad.numpy().copy() for k, v in p.items()}, stats, terms


def random_inputs(cfg, rng):
    params, moving = {}, {}

    def conv(name, k, ci, co, bias=False, norm=None, depthwise=False):
        fan_in = k * k * (1 if depthwise else ci)
        params[name + "/kernel"] = (rng.standard_normal((k, k, ci, 1 if depthwise else co)) * math.sqrt(2 / fan_in)).astype(np.float32)
        if bias:
            params[name + "/bias"] = rng.uniform(-0.1, 0.1, co).astype(np.float32)
        if norm:
            params[norm + "/gamma"] = rng.uniform(0.5, 1.5, co).astype(np.float32)
            params[norm + "/beta"] = rng.uniform(-0.2, 0.2, co).astype(np.float32)
            moving[norm + "/mean"] = rng.uniform(-0.5, 0.5, co).astype(np.float32)
            moving[norm + "/variance"] = rng.uniform(0.5, 2.0, co).astype(np.float32)

    for name, ci, co, k, _, bias, dw, norm in layers(cfg):
        conv(name, k, ci, co, bias=bias, norm=norm, depthwise=dw)
    params["dense/kernel"] = (rng.standard_normal((cfg["head"], CLASSES)) * math.sqrt(1 / cfg["head"])).astype(np.float32)
    params["dense/bias"] = rng.uniform(-0.1, 0.1, CLASSES).astype(np.float32)
    R, B, S, C = cfg["replicas"], cfg["batch"], cfg["size"], cfg["channels"]
    images = rng.standard_normal((R, B, S, S, C)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (R, B)).astype(np.int32)
    return params, moving, images, labels


def main():
    cfg = TINY
    rng = np.random.default_rng(20261204)
    params, moving, images, labels = random_inputs(cfg, rng)
    R = cfg["replicas"]
    grads = {k: np.zeros(v.shape) for k, v in params.items()}
    losses, stats, terms = [], [], {}
    for r in range(R):
        p = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in params.items()}
        loss, g, s, t = replica_step(p, images[r], labels[r], cfg)
        for k in g:
            grads[k] += g[k] / R
        for k, v in t.items():
            terms[k] = terms.get(k, 0) + v / R
        losses.append(loss)
        stats.append(s)
    out = update_outputs(params, grads, LR)
    for name, t in terms.items():
        out["bias_terms/" + name] = t.astype(np.float32)
    out.update(moving_outputs(stats, moving, BN_MOMENTUM))
    out["images"] = images
    out["labels"] = labels
    out["origin"] = np.array([[SEED, EPOCH, STEP, r] for r in range(R)], dtype=np.int32)
    out["loss"] = np.array([np.mean(losses)], dtype=np.float32)
    out["learning_rate"] = np.array([LR], dtype=np.float32)
    metadata = {"generator": "scripts/reference/torch_effnet_step.py", "torch": torch.__version__, "workload": "effnet",
                "scale": "tiny", "optimizer": "adam"}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "SimTests", "Fixtures", "effnet_tiny_step.safetensors")
    save(out, path, metadata)
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes): effnet tiny: loss {np.mean(losses):.6f}")


if __name__ == "__main__":
    main()
