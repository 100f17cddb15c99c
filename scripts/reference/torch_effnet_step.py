#!/usr/bin/env python3
"""Independent reference for one data-parallel training step of tpufi's `effnet` (the
reference study's EfficientNet-B0, in its block order) at the tiny scale, in PyTorch float64.

tpufi's semantics, spelled out here rather than shared with the Swift code:

- NHWC activations, HWIO kernels (depthwise kernels [k, k, C, 1]) and dense [in, out] are
  tpufi's storage; PyTorch computes in NCHW after permuting. Parameter names are tpufi's.
- Stem `conv1`: 3x3 stride 2, no bias, batch norm `bn1`, swish.
- MBConv `block{i}_mbconv_{j}`: `_conv1` 1x1 expansion (no bias, also for expansion 1),
  `_bn1`, swish; depthwise kxk (stride of the block, no bias), `_bn2`; squeeze-and-excite:
  mean over H and W, `_se_reduce_conv` 1x1 with bias to max(1, int(expanded / 4)), swish,
  `_se_expand_conv` 1x1 with bias, sigmoid, multiply the `_bn2` output; swish; `_conv2` 1x1
  (no bias), `_bn3`; plus the block input when the stride is 1 and the channels do not change.
- Head `conv2` 1x1 (no bias), `bn2`, swish, mean over H and W, dense with bias; softmax
  cross-entropy averaged over the replica's batch. No dropout (the reference's rate is 0).
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

from resnet18_net import same_pad
from torch_resnet18_step import moving_outputs, save, update_outputs

torch.set_default_dtype(torch.float64)

BN_EPS, BN_MOMENTUM, CLASSES, LR = 1e-3, 0.9, 10, 0.002
# tpufi's `tiny` preset: input, stem, head, stages (expand, kernel, stride, out, repeats).
TINY = dict(size=16, channels=1, batch=4, replicas=2, stem=8, head=64, stages=[
    (1, 3, 1, 8, 1), (6, 3, 2, 8, 1), (6, 5, 2, 16, 1), (6, 3, 2, 16, 1), (6, 5, 1, 24, 2), (6, 5, 2, 32, 1), (6, 3, 1, 40, 1)])
SEED, EPOCH, STEP = 1000, 0, 0


def blocks(cfg):
    """(name, in, expanded, reduced, out, kernel, stride, residual) per block."""
    out, cin = [], cfg["stem"]
    for i, (e, k, s, co, r) in enumerate(cfg["stages"]):
        for j in range(r):
            stride = s if j == 0 else 1
            exp = cin * e
            out.append((f"block{i + 1}_mbconv_{j}", cin, exp, max(1, exp // 4), co, k, stride, stride == 1 and cin == co))
            cin = co
    return out


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

    def swish(x):
        return x * torch.sigmoid(x)

    x = torch.from_numpy(images.astype(np.float64)).permute(0, 3, 1, 2)
    x = swish(bn("bn1", conv("conv1", x, 3, 2)))
    for name, cin, exp, red, co, k, s, residual in blocks(cfg):
        h = swish(bn(name + "_bn1", conv(name + "_conv1", x, 1)))
        w = p[name + "_depthwise/kernel"].permute(2, 3, 0, 1)  # [k, k, C, 1] -> [C, 1, k, k]
        h = bn(name + "_bn2", F.conv2d(same_pad(h, k, s), w, stride=s, groups=exp))
        g = h.mean(dim=(2, 3), keepdim=True)
        g = torch.sigmoid(conv(name + "_se_expand_conv", swish(conv(name + "_se_reduce_conv", g, 1, bias=True)), 1, bias=True))
        h = bn(name + "_bn3", conv(name + "_conv2", swish(h * g), 1))
        h.retain_grad()
        projected[name + "_bn3/beta"] = h
        x = h + x if residual else h
    x = swish(bn("bn2", conv("conv2", x, 1)))
    logits = x.mean(dim=(2, 3)) @ p["dense/kernel"] + p["dense/bias"]
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

    conv("conv1", 3, cfg["channels"], cfg["stem"], norm="bn1")
    for name, cin, exp, red, co, k, s, _ in blocks(cfg):
        conv(name + "_conv1", 1, cin, exp, norm=name + "_bn1")
        conv(name + "_depthwise", k, exp, exp, norm=name + "_bn2", depthwise=True)
        conv(name + "_se_reduce_conv", 1, exp, red, bias=True)
        conv(name + "_se_expand_conv", 1, red, exp, bias=True)
        conv(name + "_conv2", 1, exp, co, norm=name + "_bn3")
    last = cfg["stages"][-1][3]
    conv("conv2", 1, last, cfg["head"], norm="bn2")
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
