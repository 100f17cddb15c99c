"""The reference study's EfficientNet-B0 (tpufi's `effnet` workload, in its block order) as a
layer list and topology, shared by scripts/reference/torch_effnet_step.py (the float64
correctness fixture, with its own batch norm) and Benchmarks/torch_train_step.py (PyTorch
eager fp32 timing, with PyTorch's batch norm). Torch only: no dtype is set here, and no numpy.

- Stem `conv1`: 3x3 stride 2, no bias, batch norm `bn1`, swish.
- MBConv `block{i}_mbconv_{j}`: `_conv1` 1x1 expansion (no bias, also for expansion 1),
  `_bn1`, swish; `_depthwise` kxk (stride of the block, no bias), `_bn2`; squeeze-and-excite:
  mean over H and W, `_se_reduce_conv` 1x1 with bias to max(1, int(expanded / 4)), swish,
  `_se_expand_conv` 1x1 with bias, sigmoid, multiply the `_bn2` output; swish; `_conv2` 1x1
  (no bias), `_bn3`; plus the block input when the stride is 1 and the channels do not change.
- Head `conv2` 1x1 (no bias), `bn2`, swish, mean over H and W (the dense layer is the
  caller's). No dropout (the reference's rate is 0).
- Convolutions pad as TensorFlow's SAME (resnet18_net.same_pad).
"""
import torch

CLASSES = 10
BN_EPS = 1e-3
BN_MOMENTUM = 0.9


def blocks(cfg):
    """(name, in, expanded, reduced, out, kernel, stride, residual) per block. `cfg` has the
    `stem` width and the `stages` (expand, kernel, stride, out, repeats)."""
    out, cin = [], cfg["stem"]
    for i, (e, k, s, co, r) in enumerate(cfg["stages"]):
        for j in range(r):
            stride = s if j == 0 else 1
            exp = cin * e
            out.append((f"block{i + 1}_mbconv_{j}", cin, exp, max(1, exp // 4), co, k, stride, stride == 1 and cin == co))
            cin = co
    return out


def layers(cfg):
    """Convolutions (name, cin, cout, filter, stride, bias, depthwise, batch norm after it or
    None) in tpufi's registration order. `cfg` has the input `channels`, `stem`, `head` and
    `stages`."""
    convs = [("conv1", cfg["channels"], cfg["stem"], 3, 2, False, False, "bn1")]
    for name, cin, exp, red, co, k, s, _ in blocks(cfg):
        convs += [(name + "_conv1", cin, exp, 1, 1, False, False, name + "_bn1"),
                  (name + "_depthwise", exp, exp, k, s, False, True, name + "_bn2"),
                  (name + "_se_reduce_conv", exp, red, 1, 1, True, False, None),
                  (name + "_se_expand_conv", red, exp, 1, 1, True, False, None),
                  (name + "_conv2", exp, co, 1, 1, False, False, name + "_bn3")]
    convs.append(("conv2", cfg["stages"][-1][3], cfg["head"], 1, 1, False, False, "bn2"))
    return convs


def features(x, cfg, conv, depthwise, bn, swish):
    """NCHW images to the pooled features [N, head]. `conv(name, x, k, stride=1, bias=False)`
    is that layer's convolution (+ bias), `depthwise(name, x, k, stride)` the depthwise one,
    `bn(name, y)` that batch norm and `swish(x)` is x * sigmoid(x)."""
    x = swish(bn("bn1", conv("conv1", x, 3, 2)))
    for name, cin, exp, red, co, k, s, residual in blocks(cfg):
        h = swish(bn(name + "_bn1", conv(name + "_conv1", x, 1)))
        h = bn(name + "_bn2", depthwise(name + "_depthwise", h, k, s))
        g = h.mean(dim=(2, 3), keepdim=True)
        g = torch.sigmoid(conv(name + "_se_expand_conv", swish(conv(name + "_se_reduce_conv", g, 1, bias=True)), 1, bias=True))
        h = bn(name + "_bn3", conv(name + "_conv2", swish(h * g), 1))
        x = h + x if residual else h
    x = swish(bn("bn2", conv("conv2", x, 1)))
    return x.mean(dim=(2, 3))
