"""tpufi's `transformer` workload (an encoder-decoder in the layout of the TensorFlow Model
Garden Transformer) as parameter list and forward pass, shared by
scripts/reference/torch_transformer_step.py (the float64 correctness fixture, dropout 0) and
Benchmarks/torch_train_step.py (PyTorch eager fp32 timing, with PyTorch's dropout). The
dtype is the embedding's.

- Tokens: sources [B, Ls] and targets [B, Lt] in 0..<V; token 0 is padding.
- Shared embedding E [V, H]: lookups times sqrt(H), padding rows zero; sinusoidal positions
  (sin in the first H/2 columns, cos in the rest, inv_i = exp(-i ln(1e4) / (H/2 - 1)), formed
  in fp32 as tpufi forms them); dropout.
- Decoder input: the targets' embeddings shifted right by one position (zero vector first).
- Pre-layer-norm blocks x + dropout(f(LN(x))), layer norm epsilon 1e-6 with the biased
  variance.
- Attention: q, k, v projections [H, H] without bias; heads of H / heads; q times depth^-0.5;
  scores q k^T plus -1e9 where masked (encoder self-attention and encoder-decoder attention:
  keys whose source token is 0; decoder self-attention: keys after the query); softmax;
  dropout; the context P v, heads merged, output projection [H, H] without bias.
- Feed-forward: filter [H, F] with bias, ReLU, dropout, output [F, H] with bias.
- Encoder and decoder stacks end in a layer norm; logits = decoder output E^T.
- Loss: label-smoothed cross-entropy: soft targets 1 - smoothing on the label and
  smoothing / (V - 1) elsewhere, minus the soft targets' entropy, averaged over non-padding
  target tokens.
"""
import math

import numpy as np
import torch

LN_EPS = 1e-6


def parameter_names(cfg):
    """(name, shape) in tpufi's order. `cfg` has `vocabulary`, `hidden`, `filter`, `encoder`
    and `decoder` (layers)."""
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
    """The sinusoidal position table [length, hidden] (float64 holding tpufi's fp32 angles)."""
    half = hidden // 2
    increment = np.float32(math.log(1e4) / max(half - 1, 1))
    inv = np.exp(np.float32(-1) * np.arange(half, dtype=np.float32) * increment).astype(np.float32)
    t = (np.arange(length, dtype=np.float32)[:, None] * inv[None, :]).astype(np.float64)
    return torch.from_numpy(np.concatenate([np.sin(t), np.cos(t)], axis=1))


def layer_norm(x, gamma, beta):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + LN_EPS) * gamma + beta


def logits(p, src, tgt, cfg, dropout=lambda x: x):
    """The logits [B * Lt, V] of int64 token tensors `src` [B, Ls] and `tgt` [B, Lt] under the
    parameters `p` (name -> tensor); `dropout(x)` is applied at every dropout of the network,
    in forward order."""
    h, heads = cfg["hidden"], cfg["heads"]
    depth = h // heads
    E = p["embedding_shared_weights/weights"]
    B, Ls = src.shape
    Lt = tgt.shape[1]

    def embed(tokens):
        return E[tokens] * math.sqrt(h) * (tokens != 0).to(E.dtype)[..., None]

    def split(x):
        return x.reshape(x.shape[0], x.shape[1], heads, depth).permute(0, 2, 1, 3)

    def attention(path, x, memory, bias):
        y = layer_norm(x, p[path + "/layer_normalization/gamma"], p[path + "/layer_normalization/beta"])
        kv = y if memory is None else memory
        q = split(y @ p[path + "/query/kernel"]) * depth ** -0.5
        k = split(kv @ p[path + "/key/kernel"])
        v = split(kv @ p[path + "/value/kernel"])
        weights = dropout(torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1))
        c = (weights @ v).permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], h)
        return x + dropout(c @ p[path + "/output_transform/kernel"])

    def ffn(path, x):
        y = layer_norm(x, p[path + "/layer_normalization/gamma"], p[path + "/layer_normalization/beta"])
        r = dropout(torch.relu(y @ p[path + "/filter_layer/kernel"] + p[path + "/filter_layer/bias"]))
        return x + dropout(r @ p[path + "/output_layer/kernel"] + p[path + "/output_layer/bias"])

    padding_bias = (src == 0).to(E.dtype)[:, None, None, :] * -1e9
    x = dropout(embed(src) + positions(Ls, h).to(E.dtype))
    for i in range(cfg["encoder"]):
        x = attention(f"encoder_stack/layer_{i}/self_attention", x, None, padding_bias)
        x = ffn(f"encoder_stack/layer_{i}/ffn", x)
    encoded = layer_norm(x, p["encoder_stack/layer_normalization/gamma"], p["encoder_stack/layer_normalization/beta"])
    shifted = torch.zeros_like(tgt)
    shifted[:, 1:] = tgt[:, :-1]
    d = dropout(embed(shifted) + positions(Lt, h).to(E.dtype))
    causal = torch.triu(torch.ones(Lt, Lt, dtype=E.dtype), diagonal=1)[None, None] * -1e9
    for i in range(cfg["decoder"]):
        d = attention(f"decoder_stack/layer_{i}/self_attention", d, None, causal)
        d = attention(f"decoder_stack/layer_{i}/encdec_attention", d, encoded, padding_bias)
        d = ffn(f"decoder_stack/layer_{i}/ffn", d)
    decoded = layer_norm(d, p["decoder_stack/layer_normalization/gamma"], p["decoder_stack/layer_normalization/beta"])
    return (decoded @ E.T).reshape(-1, cfg["vocabulary"])


def smoothed_loss(logits, labels, smoothing):
    """Label-smoothed cross-entropy of `logits` [N, V] against int64 `labels` [N], minus the
    soft targets' entropy, averaged over the labels that are not padding (0)."""
    V = logits.shape[1]
    confidence, low = 1 - smoothing, smoothing / (V - 1)
    soft = torch.full((labels.shape[0], V), low, dtype=logits.dtype)
    soft[torch.arange(labels.shape[0]), labels] = confidence
    xent = -(soft * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
    constant = -(confidence * math.log(confidence) + (V - 1) * low * math.log(low + 1e-20))
    weights = (labels != 0).to(logits.dtype)
    return ((xent - constant) * weights).sum() / weights.sum()
