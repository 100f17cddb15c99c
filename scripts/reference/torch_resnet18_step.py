#!/usr/bin/env python3
"""Independent reference for one data-parallel training step of tpufi's ResNet-18 family
(the reference study's network), in PyTorch float64, with tpufi's semantics spelled out here
rather than shared with the Swift code:

- NHWC activations, HWIO kernels and dense [in, out] are tpufi's storage; PyTorch computes in
  NCHW/OIHW after permuting. Parameter names are tpufi's (`conv1/kernel`, `conv1/bias`,
  `conv1_bn/gamma`, ..., `basicblock_{1..4}_basic_{0,1}_{conv1,conv2,downsample}/...`,
  `dense/kernel`, `dense/bias`).
- Stem: 7x7 stride-2 conv + bias -> batch norm -> ReLU (no max-pool). Basic block: 3x3 conv
  + bias -> BN -> ReLU -> dropout -> 3x3 conv + bias -> BN, plus the shortcut (a 1x1 stride-2
  `downsample` conv + bias + BN on the first block of stages 2-4) -> ReLU -> dropout. Global
  average pool, dense with bias, softmax cross-entropy averaged over the replica's batch.
  The layer list, SAME padding and this topology are in resnet18_net.py next to this script
  (shared with the timing benchmark Benchmarks/torch_train_step.py); the batch norm, the
  dropout masks, the loss and the optimizers below are this script's own.
- TensorFlow SAME padding: output ceil(in / stride), total padding
  max((out - 1) * stride + filter - in, 0), the odd row/column at the bottom/right.
- Batch norm per replica with the batch's biased variance, epsilon 1e-3; moving averages
  `0.9 * moving + 0.1 * batch` with the replica means of the batch statistics.
- Dropout (rate 0.15; none for resnet18_sgd): inverted, an element kept where its uniform
  draw u >= rate, then scaled by 1 / (1 - rate). Masks are reproduced exactly: the draws are
  a Python port of tpufi's counter-based generator (SplitMix64 finaliser; u = (value >> 40) *
  2^-24, in NHWC order), keyed by the data-seeded rule: (seed, purpose 4 = dropout,
  int32(1000 * x[0]), int32(1000 * x[1]), -1), x the dropout layer's input for that replica
  (NHWC, so x[0], x[1] are channels 0 and 1 of pixel (0, 0) of the first image). The key is
  formed as the fp32 model forms it: the float64 value rounded to fp32, multiplied by 1000 in
  fp32, truncated toward zero. The fp32 model's x differs from the float64 one, so a value of
  1000 * x close to a nonzero integer could key another stream: the script tries seeds until
  every key is at least KEY_MARGIN away from such an integer and records the keys, the values
  and the margin in the fixture (the Swift test checks that it forms the same keys).
- R replicas, gradients averaged over replicas; loss = mean of the replicas' mean losses.
- Optimizers from a fresh state (one update): Keras Adam (lr 1e-3, beta1 0.9, beta2 0.999,
  epsilon 1e-7: lr_t = lr * sqrt(1 - beta2) / (1 - beta1), p -= lr_t * m / (sqrt(v) + eps));
  plain SGD (lr 0.1, no momentum): p -= lr * g.

Every parameter, batch-norm parameter and the initial moving statistics are random (not the
initializer's zeros and ones), so that each matters.

Workloads: resnet18 (BN, dropout 0.15, Adam), resnet18_sgd (BN, no dropout, SGD),
resnet18_nobn (no BN, dropout 0.15, Adam).

Run from the repository root, in a throwaway virtual environment VENV outside the
repository (the CPU build of torch is enough; numpy from PyPI):

    python3 -m venv VENV
    VENV/bin/pip install torch numpy
    VENV/bin/python scripts/reference/torch_resnet18_step.py

writes Tests/SimTests/Fixtures/<workload>_tiny_step.safetensors for the three workloads (tiny
scale: 16x16x1 inputs, widths 4..32, 2 replicas x 4 images), which
`swift test --filter ReferenceStepTests` checks.

The small-scale check (28x28x1 inputs, widths 16..128, 2 replicas x 32 images, resnet18,
random data) is not kept in the repository (its fixture is about 9 MB); FILE is a path
outside the repository:

    VENV/bin/python scripts/reference/torch_resnet18_step.py --scale small --out FILE
    swift build --build-tests
    TPUFI_SMALL_REFERENCE=FILE swift test --skip-build \
        --filter ReferenceStepTests/smallScaleStepMatchesPyTorch

The Swift test prints the worst relative L2 error of any gradient and fails above 0.2 %.
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

from resnet18_net import BN_EPS, BN_MOMENTUM, CLASSES, DROPOUT, features, layers, same_pad

torch.set_default_dtype(torch.float64)

SCALES = {  # input H = W, channels, base width, images per replica, replicas
    "tiny": dict(size=16, channels=1, width=4, batch=4, replicas=2),
    "small": dict(size=28, channels=1, width=16, batch=32, replicas=2),
}
WORKLOADS = {
    "resnet18": dict(batch_norm=True, dropout=DROPOUT, optimizer="adam", lr=1e-3),
    "resnet18_sgd": dict(batch_norm=True, dropout=0.0, optimizer="sgd", lr=0.1),
    "resnet18_nobn": dict(batch_norm=False, dropout=DROPOUT, optimizer="adam", lr=1e-3),
}
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-7
# Smallest distance allowed between 1000 * x (float64) and a nonzero integer, for a dropout
# key: the fp32 model's x may differ from the float64 one by up to KEY_MARGIN / 1000 before
# it could key another stream.
KEY_MARGIN = 0.05
# The batch origin (seed, epoch, step) given to the Swift side; the seed is the first tried.
FIRST_SEED, EPOCH, STEP = 1000, 0, 0

# ---------------------------------------------------------------- tpufi's CounterRNG, ported
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
PURPOSE_DROPOUT = 4


def mix(z):
    """SplitMix64's finaliser on a Python int (mod 2^64)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def mix_np(z):
    """The same on a uint64 array (numpy's uint64 arithmetic wraps mod 2^64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def rng_key(seed, purpose, a=0, b=0, c=0):
    """CounterRNG(seed:purpose:_:_:_:).key; a, b, c are Int64s taken as their bit patterns."""
    k = mix((seed & M64) ^ 0x243F6A8885A308D3)
    for part in (purpose, a & M64, b & M64, c & M64):
        k = mix(k ^ mix((part + GOLDEN) & M64))
    return k


def rng_values(key, count):
    """Values 0..<count of the stream: mix(key + (i + 1) * golden)."""
    i = np.arange(1, count + 1, dtype=np.uint64)
    return mix_np(np.uint64(key) + i * np.uint64(GOLDEN))


def rng_uniforms(key, count):
    """nextUniform(): (value >> 40) * 2^-24, exact in fp32 and float64."""
    return (rng_values(key, count) >> np.uint64(40)).astype(np.float64) * 2.0**-24


def self_check_rng():
    """The values CounterRNGTests pins."""
    assert rng_values(rng_key(0, 1), 1)[0] == 6_978_651_139_587_455_410
    assert rng_values(rng_key(123, 2, 1, 2, 3), 100)[99] == 4_285_943_707_546_980_557


def truncating_int32(v):
    """Dropout.truncatingInt32: toward zero; NaN and out-of-range give Int32.min."""
    if not (-(2.0**31) <= v < 2.0**31):
        return -(2**31)
    return int(math.trunc(float(v)))


def dropout_key(x):
    """int32(1000 * x) as the fp32 model forms it, and the float64 margin of 1000 * x to the
    nearest nonzero integer (truncation is continuous at 0, so |1000 x| < 1 is safe)."""
    key = truncating_int32(np.float32(1000) * np.float32(x))
    v = 1000.0 * x
    candidates = {math.floor(v), math.ceil(v), math.floor(v) - 1, math.ceil(v) + 1} - {0}
    return key, min(abs(v - n) for n in candidates)


# ---------------------------------------------------------------------------- the network
# The layer list, SAME padding and the topology are in resnet18_net.py (shared with the
# PyTorch timing benchmark); batch norm and dropout are spelled out here.
def replica_step(p, images, labels, cfg, wl, seed, backward=True):
    """Forward and backward of one replica (float64). Returns loss, gradients, batch
    statistics, the dropout layers' keys and the per-channel sums of |dL/dy| for every conv
    output feeding a batch norm (the terms of that conv bias's analytically zero gradient).
    Without `backward`, only the loss, the statistics and the keys."""
    convs, blocks, _ = layers(cfg)
    spec = {name: (k, s) for name, _, _, k, s in convs}
    bn, rate = wl["batch_norm"], wl["dropout"]
    rate32 = float(np.float32(rate))  # tpufi compares the fp32 draw with the fp32 rate
    stats, pre_bn, drops = {}, {}, []

    def conv(name, x):
        k, stride = spec[name]
        w = p[name + "/kernel"]
        y = F.conv2d(same_pad(x, k, stride), w.permute(3, 2, 0, 1), stride=stride) + p[name + "/bias"][None, :, None, None]
        if not bn:
            return y
        if backward:
            y.retain_grad()
            pre_bn[name] = y
        mean = y.mean(dim=(0, 2, 3))
        var = ((y - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))
        stats[name + "_bn"] = (mean.detach().numpy().copy(), var.detach().numpy().copy())
        xhat = (y - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + BN_EPS)
        return p[name + "_bn/gamma"][None, :, None, None] * xhat + p[name + "_bn/beta"][None, :, None, None]

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

    pooled = features(torch.from_numpy(images.astype(np.float64)).permute(0, 3, 1, 2), blocks, conv, dropout)
    logits = pooled @ p["dense/kernel"] + p["dense/bias"]
    loss = F.cross_entropy(logits, torch.from_numpy(labels.astype(np.int64)))
    if not backward:
        return loss.item(), {}, stats, drops, {}, logits.detach()
    loss.backward()
    grads = {k: v.grad.numpy().copy() for k, v in p.items()}
    terms = {name: y.grad.abs().sum(dim=(0, 2, 3)).numpy().copy() for name, y in pre_bn.items()}
    return loss.item(), grads, stats, drops, terms, logits.detach()


def random_inputs(cfg, wl, rng):
    """Random parameters (float32 values), initial moving statistics, images and labels."""
    convs, _, features = layers(cfg)
    params, moving = {}, {}
    for name, ci, co, k, _ in convs:
        params[name + "/kernel"] = (rng.standard_normal((k, k, ci, co)) * math.sqrt(2 / (k * k * ci))).astype(np.float32)
        params[name + "/bias"] = rng.uniform(-0.1, 0.1, co).astype(np.float32)
        if wl["batch_norm"]:
            params[name + "_bn/gamma"] = rng.uniform(0.5, 1.5, co).astype(np.float32)
            params[name + "_bn/beta"] = rng.uniform(-0.2, 0.2, co).astype(np.float32)
            moving[name + "_bn/mean"] = rng.uniform(-0.5, 0.5, co).astype(np.float32)
            moving[name + "_bn/variance"] = rng.uniform(0.5, 2.0, co).astype(np.float32)
    params["dense/kernel"] = (rng.standard_normal((features, CLASSES)) * math.sqrt(1 / features)).astype(np.float32)
    params["dense/bias"] = rng.uniform(-0.1, 0.1, CLASSES).astype(np.float32)
    R, B, S, C = cfg["replicas"], cfg["batch"], cfg["size"], cfg["channels"]
    images = rng.standard_normal((R, B, S, S, C)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (R, B)).astype(np.int32)
    return params, moving, images, labels


def step(cfg, wl, params, images, labels, seed, backward=True):
    """All replicas at one seed; gradients and statistics averaged in replica order."""
    R = cfg["replicas"]
    grads = {k: np.zeros(v.shape) for k, v in params.items()}
    losses, stats, drops, terms, logits = [], [], [], {}, []
    for r in range(R):
        p = {k: torch.tensor(v.astype(np.float64), requires_grad=backward) for k, v in params.items()}
        with torch.set_grad_enabled(backward):
            loss, g, s, d, t, lg = replica_step(p, images[r], labels[r], cfg, wl, seed, backward)
        for k in g:
            grads[k] += g[k] / R
        for k, v in t.items():
            terms[k] = terms.get(k, 0) + v / R
        losses.append(loss)
        stats.append(s)
        drops.append(d)
        logits.append(lg)
    return float(np.mean(losses)), grads, stats, drops, terms, torch.cat(logits)


def build(workload, scale, data_seed):
    cfg, wl = SCALES[scale], WORKLOADS[workload]
    rng = np.random.default_rng(data_seed)
    params, moving, images, labels = random_inputs(cfg, wl, rng)
    R = cfg["replicas"]
    # The keys depend on the seed (earlier masks change later inputs): search with the
    # forward pass alone, then run the step.
    for seed in range(FIRST_SEED, FIRST_SEED + 1000):
        drops = step(cfg, wl, params, images, labels, seed, backward=False)[3]
        if min((d["margin"] for rd in drops for d in rd), default=math.inf) >= KEY_MARGIN:
            break
    else:
        raise SystemExit("no seed in 1000 gives every dropout key a margin of KEY_MARGIN")
    loss, grads, stats, drops, terms, logits = step(cfg, wl, params, images, labels, seed)
    margin = min((d["margin"] for rd in drops for d in rd), default=math.inf)
    assert margin >= KEY_MARGIN

    lr = wl["lr"]
    out = update_outputs(params, grads, lr, wl["optimizer"])
    for conv, t in terms.items():
        out[f"bias_terms/{conv}/bias"] = t.astype(np.float32)
    out.update(moving_outputs(stats, moving))
    out["images"] = images
    out["labels"] = labels
    out["origin"] = np.array([[seed, EPOCH, STEP, r] for r in range(R)], dtype=np.int32)
    out["loss"] = np.array([loss], dtype=np.float32)
    out["learning_rate"] = np.array([lr], dtype=np.float32)
    if wl["dropout"] > 0:
        out["dropout/inputs"] = np.array([[d["values"] for d in rd] for rd in drops], dtype=np.float32)
        out["dropout/keys"] = np.array([[d["keys"] for d in rd] for rd in drops], dtype=np.int32)
    metadata = {"generator": "scripts/reference/torch_resnet18_step.py", "torch": torch.__version__, "workload": workload,
                "scale": scale, "optimizer": wl["optimizer"], "dropout_key_margin": f"{margin:.4f}"}
    summary = (f"{workload} {scale}: loss {loss:.6f}, seed {seed}, min dropout key margin {margin:.4f}, "
               f"logit std {logits.std().item():.3f}, distinct keys {len({d['keys'] for rd in drops for d in rd})}")
    return out, metadata, summary


def update_outputs(params, grads, lr, optimizer="adam", b2=ADAM_B2, eps=ADAM_EPS):
    """The fixture entries of every parameter: its value (`param/`), its gradient (`grad/`)
    and its update from a fresh optimizer state (`delta/`; params + delta is the next value):
    Keras Adam's first step (beta1 0.9, `b2`, `eps`), or plain SGD."""
    out = {}
    for k, v in params.items():
        g = grads[k]
        if optimizer == "adam":
            m, v2 = (1 - ADAM_B1) * g, (1 - b2) * g * g
            delta = -lr * math.sqrt(1 - b2) / (1 - ADAM_B1) * m / (np.sqrt(v2) + eps)
        else:
            delta = -lr * g
        out["param/" + k] = v
        out["grad/" + k] = g.astype(np.float32)
        out["delta/" + k] = delta.astype(np.float32)
    return out


def moving_outputs(stats, moving, momentum=BN_MOMENTUM):
    """The fixture entries of every batch norm's moving statistics: before the step
    (`moving_in/`) and after it (`moving/`), `momentum * moving + (1 - momentum) * batch` with
    the replicas' mean batch statistics (`stats`: per replica, name -> (mean, variance))."""
    out = {}
    for name in stats[0]:
        for i, stat in enumerate(("mean", "variance")):
            batch = sum(s[name][i] for s in stats) / len(stats)
            before = moving[f"{name}/{stat}"]
            out[f"moving_in/{name}/{stat}"] = before
            out[f"moving/{name}/{stat}"] = (momentum * before.astype(np.float64) + (1 - momentum) * batch).astype(np.float32)
    return out


def save(tensors, path, metadata):
    """safetensors, written here with names and metadata sorted so that the same inputs give
    the same bytes (the safetensors package orders its header by a hash map)."""
    header, blobs, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = {np.float32: "F32", np.int32: "I32"}[a.dtype.type]
        b = a.astype("<f4" if dtype == "F32" else "<i4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    parser.add_argument("--out", help="output file (--scale small: required; tiny writes the three fixtures)")
    parser.add_argument("--data-seed", type=int, default=20261204)
    args = parser.parse_args()
    self_check_rng()
    if args.scale == "tiny":
        fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "SimTests", "Fixtures")
        targets = [(w, os.path.join(fixtures, f"{w}_tiny_step.safetensors")) for w in WORKLOADS]
    else:
        if not args.out:
            parser.error("--scale small needs --out (the fixture is not kept in the repository)")
        targets = [("resnet18", args.out)]
    for workload, path in targets:
        out, metadata, summary = build(workload, args.scale, args.data_seed)
        save(out, path, metadata)
        print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes): {summary}")


if __name__ == "__main__":
    main()
