#!/usr/bin/env python3
"""Independent reference for one data-parallel training step of tpufi's `nfnet` workload (the
reference study's NF-ResNet) at the tiny scale, in PyTorch float64 with autograd:

- NHWC activations, HWIO kernels and dense [in, out] are tpufi's storage; PyTorch computes in
  NCHW/OIHW after permuting. Parameter names are tpufi's: per conv `<layer>/kernel`,
  `<layer>/bias`, `<layer>/gain`; per block `NF_ResNet_block_{k}/skip_gain` (shape [1]);
  `dense/kernel`, `dense/bias`.
- The network (layer list, weight standardisation, scaled activation, blocks) is in
  nfnet_net.py next to this script; the gradient is PyTorch's autograd through all of it,
  the weight standardisation included (so the fixture checks tpufi's hand-written backward).
- Dense with bias on the pooled features, softmax cross-entropy averaged over the replica's
  batch; R replicas, gradients averaged over replicas; loss = mean of the replicas' losses.
- Keras Adam from a fresh state (lr 0.01, the reference's initial rate for nfnet; beta1 0.9,
  beta2 0.999, epsilon 1e-7): p -= lr * sqrt(1 - beta2) / (1 - beta1) * m / (sqrt(v) + eps).

Every parameter is random, not the initializer's values: in particular `skip_gain` is
nonzero (at its initial 0 no gradient would reach conv0..conv2 of any block) and the gains
and biases differ from 1 and 0. One output channel of `NF_ResNet_block_3_conv1` is nearly
constant (spread 1e-5), so its var * fan_in is far below the epsilon 1e-4 and the clamped
path of the standardisation (no gradient through the variance) is exercised too.

Run from the repository root, in a throwaway virtual environment VENV outside the
repository (the CPU build of torch is enough; numpy from PyPI):

    python3 -m venv VENV
    VENV/bin/pip install torch numpy
    VENV/bin/python scripts/reference/torch_nfnet_step.py

writes Tests/SimTests/Fixtures/nfnet_tiny_step.safetensors (tiny scale: 16x16x1 inputs, stem
4, stages 16/32/64/128, 2 replicas x 4 images), which
`swift test --filter NFResNetReferenceStepTests` checks.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from nfnet_net import CLASSES, WS_EPS, conv2d, features, layers
from torch_resnet18_step import save, update_outputs

torch.set_default_dtype(torch.float64)

TINY = dict(size=16, channels=1, stem=4, widths=(16, 32, 64, 128), batch=4, replicas=2)
LR = 0.01
CLAMPED = "NF_ResNet_block_3_conv1"  # its output channel 0 is clamped at WS_EPS


def replica_step(params, images, labels, cfg):
    """Forward and backward of one replica (float64): loss and gradients."""
    convs, blocks, _ = layers(cfg)
    spec = {name: (k, s) for name, _, _, k, s in convs}
    p = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in params.items()}

    def conv(name, x):
        k, stride = spec[name]
        return conv2d(x, p[name + "/kernel"], p[name + "/gain"], p[name + "/bias"], k, stride)

    pooled = features(torch.from_numpy(images.astype(np.float64)).permute(0, 3, 1, 2), blocks, conv,
                      lambda block: p[block + "/skip_gain"][0])
    logits = pooled @ p["dense/kernel"] + p["dense/bias"]
    loss = F.cross_entropy(logits, torch.from_numpy(labels.astype(np.int64)))
    loss.backward()
    return loss.item(), {k: v.grad.numpy().copy() for k, v in p.items()}, logits.detach()


def random_inputs(cfg, rng):
    convs, blocks, features_ = layers(cfg)
    params = {}
    for name, ci, co, k, _ in convs:
        w = rng.standard_normal((k, k, ci, co)) * math.sqrt(1 / (k * k * ci))
        if name == CLAMPED:
            w[..., 0] = rng.standard_normal((k, k, ci)) * 1e-5
        params[name + "/kernel"] = w.astype(np.float32)
        params[name + "/bias"] = rng.uniform(-0.1, 0.1, co).astype(np.float32)
        params[name + "/gain"] = rng.uniform(0.5, 1.5, co).astype(np.float32)
    for name, *_ in blocks:
        params[name + "/skip_gain"] = (rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.0, 1)).astype(np.float32)
    params["dense/kernel"] = (rng.standard_normal((features_, CLASSES)) * math.sqrt(1 / features_)).astype(np.float32)
    params["dense/bias"] = rng.uniform(-0.1, 0.1, CLASSES).astype(np.float32)
    R, B, S, C = cfg["replicas"], cfg["batch"], cfg["size"], cfg["channels"]
    images = rng.standard_normal((R, B, S, S, C)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (R, B)).astype(np.int32)
    return params, images, labels


def build(cfg, data_seed):
    rng = np.random.default_rng(data_seed)
    params, images, labels = random_inputs(cfg, rng)
    w = params[CLAMPED + "/kernel"].astype(np.float64)[..., 0]
    assert w.var() * w.size < WS_EPS / 100, "the clamped channel is not clamped"
    R = cfg["replicas"]
    grads = {k: np.zeros(v.shape) for k, v in params.items()}
    losses, logits = [], []
    for r in range(R):
        loss, g, lg = replica_step(params, images[r], labels[r], cfg)
        for k in g:
            grads[k] += g[k] / R
        losses.append(loss)
        logits.append(lg)
    loss = float(np.mean(losses))
    out = update_outputs(params, grads, LR)
    out["images"] = images
    out["labels"] = labels
    out["origin"] = np.array([[0, 0, 0, r] for r in range(R)], dtype=np.int32)
    out["loss"] = np.array([loss], dtype=np.float32)
    out["learning_rate"] = np.array([LR], dtype=np.float32)
    metadata = {"generator": "scripts/reference/torch_nfnet_step.py", "torch": torch.__version__, "workload": "nfnet",
                "scale": "tiny", "optimizer": "adam"}
    logits = torch.cat(logits)
    summary = f"nfnet tiny: loss {loss:.6f}, logit std {logits.std().item():.3f}"
    return out, metadata, summary


def main():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "SimTests", "Fixtures",
                        "nfnet_tiny_step.safetensors")
    out, metadata, summary = build(TINY, 20261205)
    save(out, path, metadata)
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes): {summary}")


if __name__ == "__main__":
    main()
