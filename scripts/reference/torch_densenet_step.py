#!/usr/bin/env python3
"""Independent reference for one data-parallel training step of tpufi's `densenet` workload
(the reference study's DenseNet-121 variant) at the tiny scale, in PyTorch float64:

- NHWC activations, HWIO kernels and dense [in, out] are tpufi's storage; PyTorch computes in
  NCHW/OIHW after permuting. Parameter names are tpufi's (`densenet_conv/kernel`,
  `densenet_conv/bias`, `densenet_bn/gamma`, ...,
  `densenet_dense_block_{b}_bottleneck_{i}_{bn1,conv1,bn2,conv2}/...`,
  `densenet_transition_{t}_{bn,conv,conv_p}/...`, `dense/kernel`, `dense/bias`).
- The network (densenet_net.py next to this script): stem conv + bias -> BN -> ReLU ->
  conv_p; pre-activation bottlenecks (BN -> ReLU -> 1x1 conv -> BN -> ReLU -> 3x3 conv ->
  dropout) whose outputs are concatenated along the channels; transitions BN -> ReLU -> 1x1
  conv -> 3x3 stride-2 conv_p; global average pool, dense with bias, softmax cross-entropy
  averaged over the replica's batch.
- Batch norm (this script's own) per replica with the batch's biased variance, epsilon 1e-3;
  moving averages `0.9 * moving + 0.1 * batch` with the replica means of the statistics.
- Dropout 0.5 with tpufi's data-seeded masks, reproduced exactly by the port of tpufi's
  counter-based generator in torch_resnet18_step.py (imported from there, with its key rule
  int32(1000 * x[0]), int32(1000 * x[1]) on the fp32 value, its margin search over seeds and
  its deterministic safetensors writer); x is the bottleneck's `_conv2` output (with bias).
- R replicas, gradients averaged over replicas; loss = mean of the replicas' losses. Keras
  Adam's first update from a fresh state (lr 1e-3).

Every parameter, batch-norm parameter and the initial moving statistics are random. Biases
whose gradient is analytically zero (a per-channel constant that every consumer removes by
batch norm: the stem conv's, every `_conv1`'s, and the `conv_p`s whose output feeds only
batch norms) are found numerically in float64 (|g| below 1e-9 of sum |dL/dy|) and written as
`bias_terms/<name>` instead of being compared.

Run from the repository root, in a throwaway virtual environment VENV outside the
repository (the CPU build of torch is enough; numpy from PyPI):

    VENV/bin/python scripts/reference/torch_densenet_step.py

writes Tests/SimTests/Fixtures/densenet_tiny_step.safetensors (tiny scale: 16x16x1 inputs,
initial 8, growth 4, blocks 2/2/2/2, 2 replicas x 4 images), which
`swift test --filter DenseNetReferenceStepTests` checks.
"""
import argparse
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from densenet_net import BN_EPS, BN_MOMENTUM, CLASSES, DROPOUT, conv2d, features, layers
from torch_resnet18_step import (moving_outputs, update_outputs, EPOCH, FIRST_SEED, KEY_MARGIN, PURPOSE_DROPOUT, STEP,
                                 dropout_key, rng_key, rng_uniforms, save, self_check_rng)

torch.set_default_dtype(torch.float64)

TINY = dict(size=16, channels=1, initial=8, growth=4, blocks=[2, 2, 2, 2], compression=0.5, batch=4, replicas=2)
LR = 1e-3
# A bias is analytically zero when |g| is below this fraction of sum |dL/dy| in float64.
ZERO = 1e-9


def replica_step(p, images, labels, cfg, seed, rate, backward=True):
    """Forward and backward of one replica (float64): loss, gradients, batch statistics, the
    dropout layers' keys, per conv the channel sums of |dL/dy|, and the logits."""
    convs, _, blocks, _ = layers(cfg)
    spec = {name: (k, s) for name, _, _, k, s in convs}
    rate32 = float(np.float32(rate))  # tpufi compares the fp32 draw with the fp32 rate
    stats, outputs, drops = {}, {}, []

    def conv(name, x):
        k, stride = spec[name]
        y = conv2d(x, p[name + "/kernel"], p[name + "/bias"], k, stride)
        if backward:
            y.retain_grad()
            outputs[name] = y
        return y

    def norm(name, x):
        mean = x.mean(dim=(0, 2, 3))
        var = ((x - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))
        stats[name] = (mean.detach().numpy().copy(), var.detach().numpy().copy())
        xhat = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + BN_EPS)
        return p[name + "/gamma"][None, :, None, None] * xhat + p[name + "/beta"][None, :, None, None]

    def dropout(x):
        if rate == 0:
            return x
        n, c, h, w = x.shape
        x0, x1 = x[0, 0, 0, 0].item(), x[0, 1, 0, 0].item()  # NHWC elements 0 and 1
        (a, ma), (b, mb) = dropout_key(x0), dropout_key(x1)
        drops.append(dict(values=(x0, x1), keys=(a, b), margin=min(ma, mb)))
        u = rng_uniforms(rng_key(seed, PURPOSE_DROPOUT, a, b, -1), x.numel())
        mask = np.where(u >= rate32, 1.0 / (1.0 - rate), 0.0).reshape(n, h, w, c).transpose(0, 3, 1, 2)
        return x * torch.from_numpy(np.ascontiguousarray(mask))

    pooled = features(torch.from_numpy(images.astype(np.float64)).permute(0, 3, 1, 2), blocks, conv, norm, dropout)
    logits = pooled @ p["dense/kernel"] + p["dense/bias"]
    loss = F.cross_entropy(logits, torch.from_numpy(labels.astype(np.int64)))
    if not backward:
        return loss.item(), {}, stats, drops, {}, logits.detach()
    loss.backward()
    grads = {k: v.grad.numpy().copy() for k, v in p.items()}
    terms = {name: y.grad.abs().sum(dim=(0, 2, 3)).numpy().copy() for name, y in outputs.items()}
    return loss.item(), grads, stats, drops, terms, logits.detach()


def random_inputs(cfg, rng):
    """Random parameters (float32 values), initial moving statistics, images and labels."""
    convs, norms, _, feats = layers(cfg)
    params, moving = {}, {}
    for name, ci, co, k, _ in convs:
        params[name + "/kernel"] = (rng.standard_normal((k, k, ci, co)) * math.sqrt(2 / (k * k * ci))).astype(np.float32)
        params[name + "/bias"] = rng.uniform(-0.1, 0.1, co).astype(np.float32)
    for name, c in norms:
        params[name + "/gamma"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        params[name + "/beta"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        moving[name + "/mean"] = rng.uniform(-0.5, 0.5, c).astype(np.float32)
        moving[name + "/variance"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
    params["dense/kernel"] = (rng.standard_normal((feats, CLASSES)) * math.sqrt(1 / feats)).astype(np.float32)
    params["dense/bias"] = rng.uniform(-0.1, 0.1, CLASSES).astype(np.float32)
    R, B, S, C = cfg["replicas"], cfg["batch"], cfg["size"], cfg["channels"]
    images = rng.standard_normal((R, B, S, S, C)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (R, B)).astype(np.int32)
    return params, moving, images, labels


def step(cfg, params, images, labels, seed, rate, backward=True):
    """All replicas at one seed; gradients, |dL/dy| sums and statistics averaged in replica order."""
    R = cfg["replicas"]
    grads = {k: np.zeros(v.shape) for k, v in params.items()}
    losses, stats, drops, terms, logits = [], [], [], {}, []
    for r in range(R):
        p = {k: torch.tensor(v.astype(np.float64), requires_grad=backward) for k, v in params.items()}
        with torch.set_grad_enabled(backward):
            loss, g, s, d, t, lg = replica_step(p, images[r], labels[r], cfg, seed, rate, backward)
        for k in g:
            grads[k] += g[k] / R
        for k, v in t.items():
            terms[k] = terms.get(k, 0) + v / R
        losses.append(loss)
        stats.append(s)
        drops.append(d)
        logits.append(lg)
    return float(np.mean(losses)), grads, stats, drops, terms, torch.cat(logits)


def build(cfg, data_seed, rate=DROPOUT):
    rng = np.random.default_rng(data_seed)
    params, moving, images, labels = random_inputs(cfg, rng)
    R = cfg["replicas"]
    for seed in range(FIRST_SEED, FIRST_SEED + 1000):
        drops = step(cfg, params, images, labels, seed, rate, backward=False)[3]
        if min((d["margin"] for rd in drops for d in rd), default=math.inf) >= KEY_MARGIN:
            break
    else:
        raise SystemExit("no seed in 1000 gives every dropout key a margin of KEY_MARGIN")
    loss, grads, stats, drops, terms, logits = step(cfg, params, images, labels, seed, rate)
    margin = min((d["margin"] for rd in drops for d in rd), default=math.inf)
    assert margin >= KEY_MARGIN

    out, zero = update_outputs(params, grads, LR), []
    for conv, t in terms.items():
        g = grads[conv + "/bias"]
        if np.max(np.abs(g) / np.maximum(t, 1e-300)) < ZERO:
            out[f"bias_terms/{conv}/bias"] = t.astype(np.float32)
            zero.append(conv)
    out.update(moving_outputs(stats, moving, BN_MOMENTUM))
    out["images"] = images
    out["labels"] = labels
    out["origin"] = np.array([[seed, EPOCH, STEP, r] for r in range(R)], dtype=np.int32)
    out["loss"] = np.array([loss], dtype=np.float32)
    out["learning_rate"] = np.array([LR], dtype=np.float32)
    out["dropout/inputs"] = np.array([[d["values"] for d in rd] for rd in drops], dtype=np.float32)
    out["dropout/keys"] = np.array([[d["keys"] for d in rd] for rd in drops], dtype=np.int32)
    metadata = {"generator": "scripts/reference/torch_densenet_step.py", "torch": torch.__version__, "workload": "densenet",
                "scale": "tiny", "optimizer": "adam", "dropout_key_margin": f"{margin:.4f}",
                "zero_gradient_biases": ",".join(zero)}
    summary = (f"densenet tiny: loss {loss:.6f}, seed {seed}, min dropout key margin {margin:.4f}, "
               f"logit std {logits.std().item():.3f}, distinct keys {len({d['keys'] for rd in drops for d in rd})}, "
               f"analytically zero bias gradients: {', '.join(zero)}")
    return out, metadata, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="output file (default: the tiny fixture in Tests/SimTests/Fixtures)")
    parser.add_argument("--data-seed", type=int, default=20261204)
    args = parser.parse_args()
    self_check_rng()
    here = os.path.dirname(os.path.abspath(__file__))
    path = args.out or os.path.join(here, "..", "..", "Tests", "SimTests", "Fixtures", "densenet_tiny_step.safetensors")
    out, metadata, summary = build(TINY, args.data_seed)
    save(out, path, metadata)
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes): {summary}")


if __name__ == "__main__":
    main()
