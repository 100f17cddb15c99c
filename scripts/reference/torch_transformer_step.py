#!/usr/bin/env python3
"""Independent reference for one data-parallel training step of tpufi's `transformer` (an
encoder-decoder in the layout of the TensorFlow Model Garden Transformer) at the tiny scale
with dropout 0, in PyTorch float64.

tpufi's semantics, spelled out here rather than shared with the Swift code:

- Tokens: sources [R, B, Ls] and targets [R, B, Lt] of int32 in 0..<V; token 0 is padding.
- The network and its loss (transformer_net.py next to this script, shared with the timing
  benchmark Benchmarks/torch_train_step.py): shared embedding with sinusoidal positions,
  pre-layer-norm encoder and decoder blocks (masked multi-head attention, ReLU feed-forward),
  logits against the embedding, label-smoothed cross-entropy (0.1) averaged over the
  non-padding target tokens per replica; replicas' gradients averaged.
- Adam from a fresh state (the Model Garden's constants: beta1 0.9, beta2 0.997, epsilon 1e-9; Keras's update rule), one update at learning rate 0.001.

Every parameter is random (layer-norm gains and biases too) so that each matters; one source
of each replica ends in padding, so that the padding mask matters.

Run from the repository root in a throwaway virtual environment (see torch_resnet18_step.py):

    VENV/bin/python scripts/reference/torch_transformer_step.py

writes Tests/SimTests/Fixtures/transformer_tiny_step.safetensors, which
`swift test --filter TransformerReferenceStepTests` checks.
"""
import math
import os

import numpy as np
import torch

from torch_resnet18_step import save, update_outputs
from transformer_net import logits, parameter_names, smoothed_loss

# The Model Garden Transformer's Adam (tpufi's transformer workload): beta2 0.997, epsilon 1e-9.
ADAM_B2, ADAM_EPS = 0.997, 1e-9

torch.set_default_dtype(torch.float64)

LR, SMOOTHING = 0.001, 0.1
# tpufi's `tiny` preset (with dropout 0).
TINY = dict(replicas=2, batch=2, source=8, target=8, vocabulary=128, hidden=16, heads=2, filter=32, encoder=2, decoder=2)
SEED, EPOCH, STEP = 1000, 0, 0


def replica_step(p, sources, targets, cfg):
    src = torch.from_numpy(sources.astype(np.int64))
    tgt = torch.from_numpy(targets.astype(np.int64))
    loss = smoothed_loss(logits(p, src, tgt, cfg), tgt.reshape(-1), SMOOTHING)
    loss.backward()
    return loss.item(), {k: v.grad.numpy().copy() for k, v in p.items()}


def random_inputs(cfg, rng):
    params = {}
    for name, shape in parameter_names(cfg):
        if name.startswith("embedding"):
            params[name] = rng.standard_normal(shape) * cfg["hidden"] ** -0.5
        elif name.endswith("/gamma"):
            params[name] = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 1:
            params[name] = rng.uniform(-0.2, 0.2, shape)
        else:
            params[name] = rng.standard_normal(shape) * math.sqrt(2 / (shape[0] + shape[1]))
        params[name] = params[name].astype(np.float32)
    R, B, Ls, Lt, V = cfg["replicas"], cfg["batch"], cfg["source"], cfg["target"], cfg["vocabulary"]
    sources = rng.integers(1, V, (R, B, Ls)).astype(np.int32)
    sources[:, 0, Ls - 2:] = 0  # padding at the end of each replica's first source
    targets = rng.integers(1, V, (R, B, Lt)).astype(np.int32)
    return params, sources, targets


def main():
    cfg = TINY
    rng = np.random.default_rng(20261204)
    params, sources, targets = random_inputs(cfg, rng)
    R = cfg["replicas"]
    grads = {k: np.zeros(v.shape) for k, v in params.items()}
    losses = []
    for r in range(R):
        p = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in params.items()}
        loss, g = replica_step(p, sources[r], targets[r], cfg)
        for k in g:
            grads[k] += g[k] / R
        losses.append(loss)
    out = update_outputs(params, grads, LR, b2=ADAM_B2, eps=ADAM_EPS)
    out["sources"] = sources
    out["labels"] = targets
    out["origin"] = np.array([[SEED, EPOCH, STEP, r] for r in range(R)], dtype=np.int32)
    out["loss"] = np.array([np.mean(losses)], dtype=np.float32)
    out["learning_rate"] = np.array([LR], dtype=np.float32)
    metadata = {"generator": "scripts/reference/torch_transformer_step.py", "torch": torch.__version__, "workload": "transformer",
                "scale": "tiny", "optimizer": "adam", "dropout": "0"}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "SimTests", "Fixtures",
                        "transformer_tiny_step.safetensors")
    save(out, path, metadata)
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes): transformer tiny: loss {np.mean(losses):.6f}")


if __name__ == "__main__":
    main()
