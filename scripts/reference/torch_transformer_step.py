#!/usr/bin/env python3
"""Independent reference for one data-parallel training step of tpufi's `transformer` (an
encoder-decoder in the layout of the TensorFlow Model Garden Transformer) at the tiny scale
with dropout 0, in PyTorch float64.

tpufi's semantics, spelled out here rather than shared with the Swift code:

- Tokens: sources [R, B, Ls] and targets [R, B, Lt] of int32 in 0..<V; token 0 is padding.
- Shared embedding E [V, H]: lookups times sqrt(H), padding rows zero; sinusoidal positions
  (sin in the first H/2 columns, cos in the rest, inv_i = exp(-i ln(1e4) / (H/2 - 1))).
- Decoder input: the targets' embeddings shifted right by one position (zero vector first).
- Pre-layer-norm blocks x + f(LN(x)), layer norm epsilon 1e-6 with the biased variance.
- Attention: q, k, v projections [H, H] without bias; heads of H / heads; q times depth^-0.5;
  scores q k^T plus -1e9 where masked (encoder self-attention and encoder-decoder attention:
  keys whose source token is 0; decoder self-attention: keys after the query); softmax; the
  context P v, heads merged, output projection [H, H] without bias.
- Feed-forward: filter [H, F] with bias, ReLU, output [F, H] with bias.
- Encoder and decoder stacks end in a layer norm; logits = decoder output E^T.
- Loss: label-smoothed cross-entropy (0.1): soft targets 1 - 0.1 on the label and
  0.1 / (V - 1) elsewhere, minus the soft targets' entropy, averaged over non-padding
  target tokens per replica; replicas' gradients averaged.
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

# The Model Garden Transformer's Adam (tpufi's transformer workload): beta2 0.997, epsilon 1e-9.
ADAM_B2, ADAM_EPS = 0.997, 1e-9

torch.set_default_dtype(torch.float64)

LR, SMOOTHING, LN_EPS = 0.001, 0.1, 1e-6
# tpufi's `tiny` preset (with dropout 0).
TINY = dict(replicas=2, batch=2, source=8, target=8, vocabulary=128, hidden=16, heads=2, filter=32, encoder=2, decoder=2)
SEED, EPOCH, STEP = 1000, 0, 0


def parameter_names(cfg):
    """(name, shape) in tpufi's order."""
    h, f = cfg["hidden"], cfg["filter"]
    out = [("embedding_shared_weights/weights", (cfg["vocabulary"], h))]

    def attention(path):
        out.extend([(path + "/layer_normalization/gamma", (h,)), (path + "/layer_normalization/beta", (h,)),
                    (path + "/query/kernel", (h, h)), (path + "/key/kernel", (h, h)), (path + "/value/kernel", (h, h)),
                    (path + "/output_transform/kernel", (h, h))])

    def ffn(path):
        out.extend([(path + "/layer_normalization/gamma", (h,)), (path + "/layer_normalization/beta", (h,)),
                    (path + "/filter_layer/kernel", (h, f)), (path + "/filter_layer/bias", (f,)),
                    (path + "/output_layer/kernel", (f, h)), (path + "/output_layer/bias", (h,))])

    for i in range(cfg["encoder"]):
        attention(f"encoder_stack/layer_{i}/self_attention")
        ffn(f"encoder_stack/layer_{i}/ffn")
    out.extend([("encoder_stack/layer_normalization/gamma", (h,)), ("encoder_stack/layer_normalization/beta", (h,))])
    for i in range(cfg["decoder"]):
        attention(f"decoder_stack/layer_{i}/self_attention")
        attention(f"decoder_stack/layer_{i}/encdec_attention")
        ffn(f"decoder_stack/layer_{i}/ffn")
    out.extend([("decoder_stack/layer_normalization/gamma", (h,)), ("decoder_stack/layer_normalization/beta", (h,))])
    return out


def positions(length, hidden):
    half = hidden // 2
    increment = np.float32(math.log(1e4) / max(half - 1, 1))
    inv = np.exp(np.float32(-1) * np.arange(half, dtype=np.float32) * increment).astype(np.float32)
    t = (np.arange(length, dtype=np.float32)[:, None] * inv[None, :]).astype(np.float64)
    return torch.from_numpy(np.concatenate([np.sin(t), np.cos(t)], axis=1))


def layer_norm(x, gamma, beta):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + LN_EPS) * gamma + beta


def replica_step(p, sources, targets, cfg):
    h, heads = cfg["hidden"], cfg["heads"]
    depth = h // heads
    E = p["embedding_shared_weights/weights"]
    src = torch.from_numpy(sources.astype(np.int64))
    tgt = torch.from_numpy(targets.astype(np.int64))
    B, Ls = src.shape
    Lt = tgt.shape[1]

    def embed(tokens):
        return E[tokens] * math.sqrt(h) * (tokens != 0).to(torch.float64)[..., None]

    def split(x):
        return x.reshape(x.shape[0], x.shape[1], heads, depth).permute(0, 2, 1, 3)

    def attention(path, x, memory, bias):
        y = layer_norm(x, p[path + "/layer_normalization/gamma"], p[path + "/layer_normalization/beta"])
        kv = y if memory is None else memory
        q = split(y @ p[path + "/query/kernel"]) * depth ** -0.5
        k = split(kv @ p[path + "/key/kernel"])
        v = split(kv @ p[path + "/value/kernel"])
        weights = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1)
        c = (weights @ v).permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], h)
        return x + c @ p[path + "/output_transform/kernel"]

    def ffn(path, x):
        y = layer_norm(x, p[path + "/layer_normalization/gamma"], p[path + "/layer_normalization/beta"])
        r = torch.relu(y @ p[path + "/filter_layer/kernel"] + p[path + "/filter_layer/bias"])
        return x + r @ p[path + "/output_layer/kernel"] + p[path + "/output_layer/bias"]

    padding_bias = (src == 0).to(torch.float64)[:, None, None, :] * -1e9
    x = embed(src) + positions(Ls, h)
    for i in range(cfg["encoder"]):
        x = attention(f"encoder_stack/layer_{i}/self_attention", x, None, padding_bias)
        x = ffn(f"encoder_stack/layer_{i}/ffn", x)
    encoded = layer_norm(x, p["encoder_stack/layer_normalization/gamma"], p["encoder_stack/layer_normalization/beta"])
    shifted = torch.zeros_like(tgt)
    shifted[:, 1:] = tgt[:, :-1]
    d = embed(shifted) + positions(Lt, h)
    causal = torch.triu(torch.ones(Lt, Lt), diagonal=1)[None, None] * -1e9
    for i in range(cfg["decoder"]):
        d = attention(f"decoder_stack/layer_{i}/self_attention", d, None, causal)
        d = attention(f"decoder_stack/layer_{i}/encdec_attention", d, encoded, padding_bias)
        d = ffn(f"decoder_stack/layer_{i}/ffn", d)
    decoded = layer_norm(d, p["decoder_stack/layer_normalization/gamma"], p["decoder_stack/layer_normalization/beta"])
    logits = (decoded @ E.T).reshape(-1, cfg["vocabulary"])
    labels = tgt.reshape(-1)
    V = cfg["vocabulary"]
    confidence, low = 1 - SMOOTHING, SMOOTHING / (V - 1)
    soft = torch.full((labels.shape[0], V), low)
    soft[torch.arange(labels.shape[0]), labels] = confidence
    xent = -(soft * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
    constant = -(confidence * math.log(confidence) + (V - 1) * low * math.log(low + 1e-20))
    weights = (labels != 0).to(torch.float64)
    loss = ((xent - constant) * weights).sum() / weights.sum()
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
