#!/usr/bin/env python3
"""Independent reference for one data-parallel training step of the tiny ResNet-18, in
PyTorch (float64), with tpufi's semantics spelled out here rather than shared:

- NHWC activations / HWIO kernels / dense [in, out] are tpufi's storage; PyTorch computes in
  NCHW/OIHW after permuting.
- TensorFlow SAME padding (odd padding row/column at the bottom/right), stride-2 3x3 convs
  and 1x1 stride-2 downsample convs.
- Batch norm per replica with the batch's biased variance, epsilon 1e-3; moving averages
  momentum 0.99 with the replica-mean batch statistics.
- 2 replicas x 4 images, cross-entropy mean per replica, gradients averaged over replicas.
- Keras Adam: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t), p -= lr_t * m / (sqrt(v) + 1e-7).

Writes Tests/SimTests/Fixtures/resnet18_tiny_step.safetensors (inputs and expected outputs).
Run once: python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch numpy &&
/tmp/torch-venv/bin/python scripts/reference/torch_resnet18_step.py
"""
import json, os, struct
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261128)
H = W = 8; C_IN = 1; WIDTH = 4; BATCH = 4; REPLICAS = 2; CLASSES = 10
EPS = 1e-3; MOMENTUM = 0.99; LR = 1e-3; B1, B2, ADAM_EPS = 0.9, 0.999, 1e-7

# Layers in tpufi's order, with its names.
convs = []  # (name, cin, cout, k, stride)
convs.append(("conv1", C_IN, WIDTH, 3, 1))
cin = WIDTH
for stage in range(1, 5):
    width = WIDTH << (stage - 1)
    for block in range(2):
        stride = 2 if stage > 1 and block == 0 else 1
        p = f"basicblock_{stage}_basic_{block}"
        convs.append((p + "_conv1", cin, width, 3, stride))
        convs.append((p + "_conv2", width, width, 3, 1))
        if stride != 1 or cin != width:
            convs.append((p + "_downsample", cin, width, 1, stride))
        cin = width
FEATURES = cin

params = {}
for name, ci, co, k, _ in convs:
    limit = np.sqrt(6 / (k * k * ci + k * k * co))
    params[name + "/kernel"] = rng.uniform(-limit, limit, (k, k, ci, co)).astype(np.float32)
    params[name + "_bn/gamma"] = rng.uniform(0.5, 1.5, co).astype(np.float32)
    params[name + "_bn/beta"] = rng.uniform(-0.2, 0.2, co).astype(np.float32)
limit = np.sqrt(6 / (FEATURES + CLASSES))
params["dense/kernel"] = rng.uniform(-limit, limit, (FEATURES, CLASSES)).astype(np.float32)
params["dense/bias"] = rng.uniform(-0.1, 0.1, CLASSES).astype(np.float32)
images = rng.standard_normal((REPLICAS, BATCH, H, W, C_IN)).astype(np.float32)
labels = rng.integers(0, CLASSES, (REPLICAS, BATCH)).astype(np.int32)


def same_pad(x, k, stride):
    h = x.shape[2]
    out = -(-h // stride)
    total = max((out - 1) * stride + k - h, 0)
    return F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))


def replica(images, labels, p):
    stats = {}
    x = torch.tensor(images).permute(0, 3, 1, 2)

    def conv_bn(name, x, stride):
        w = p[name + "/kernel"]
        k = w.shape[0]
        y = F.conv2d(same_pad(x, k, stride), w.permute(3, 2, 0, 1), stride=stride)
        mean = y.mean(dim=(0, 2, 3))
        var = ((y - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))
        stats[name + "_bn"] = (mean.detach(), var.detach())
        xhat = (y - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + EPS)
        return p[name + "_bn/gamma"][None, :, None, None] * xhat + p[name + "_bn/beta"][None, :, None, None]

    strides = {n: s for n, _, _, _, s in convs}
    x = F.relu(conv_bn("conv1", x, 1))
    names = [n for n, *_ in convs][1:]
    i = 0
    while i < len(names):
        c1, c2 = names[i], names[i + 1]
        down = names[i + 2] if i + 2 < len(names) and names[i + 2].endswith("_downsample") else None
        h = F.relu(conv_bn(c1, x, strides[c1]))
        main = conv_bn(c2, h, 1)
        short = conv_bn(down, x, strides[down]) if down else x
        x = F.relu(main + short)
        i += 3 if down else 2
    pooled = x.mean(dim=(2, 3))
    logits = pooled @ p["dense/kernel"] + p["dense/bias"]
    loss = F.cross_entropy(logits, torch.tensor(labels, dtype=torch.long))
    return loss, stats


grads = {k: np.zeros(v.shape) for k, v in params.items()}
losses, all_stats = [], []
for r in range(REPLICAS):
    p = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in params.items()}
    loss, stats = replica(images[r].astype(np.float64), labels[r], p)
    loss.backward()
    for k in params:
        grads[k] += p[k].grad.numpy() / REPLICAS
    losses.append(loss.item())
    all_stats.append(stats)

out = {}
for k, v in params.items():
    g = grads[k]
    m = (1 - B1) * g
    v2 = (1 - B2) * g * g
    lr_t = LR * np.sqrt(1 - B2) / (1 - B1)
    out["param/" + k] = v
    out["grad/" + k] = g.astype(np.float32)
    out["updated/" + k] = (v.astype(np.float64) - lr_t * m / (np.sqrt(v2) + ADAM_EPS)).astype(np.float32)
for name in all_stats[0]:
    mean = sum(s[name][0].numpy() for s in all_stats) / REPLICAS
    var = sum(s[name][1].numpy() for s in all_stats) / REPLICAS
    out[f"moving/{name}/mean"] = (MOMENTUM * 0 + (1 - MOMENTUM) * mean).astype(np.float32)
    out[f"moving/{name}/variance"] = (MOMENTUM * 1 + (1 - MOMENTUM) * var).astype(np.float32)
out["images"] = images
out["labels"] = labels
out["loss"] = np.array([np.mean(losses)], dtype=np.float32)

# safetensors, written with numpy only.
header, blobs, offset = {}, [], 0
for k in sorted(out):
    a = np.ascontiguousarray(out[k])
    dtype = {np.float32: "F32", np.int32: "I32"}[a.dtype.type]
    b = a.astype("<f4" if dtype == "F32" else "<i4").tobytes()
    header[k] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
    blobs.append(b)
    offset += len(b)
header["__metadata__"] = {"generator": "scripts/reference/torch_resnet18_step.py", "torch": torch.__version__}
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
path = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "SimTests", "Fixtures", "resnet18_tiny_step.safetensors")
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print(f"wrote {os.path.normpath(path)}: {offset + len(h) + 8} bytes, loss {np.mean(losses):.6f}")
