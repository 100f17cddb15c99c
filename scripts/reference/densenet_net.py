"""The reference study's DenseNet-121 variant (tpufi's `densenet` workload) as a layer list and
topology, for scripts/reference/torch_densenet_step.py. Torch only: no dtype is set here.

- Stem: `densenet_conv` 7x7 stride 2 + bias -> batch norm `densenet_bn` -> ReLU ->
  `densenet_conv_p` 3x3 stride 2 + bias (the reference's replacement of the max-pool).
- Dense block b (from 1), bottleneck i (from 0), `densenet_dense_block_{b}_bottleneck_{i}`:
  `_bn1` -> ReLU -> `_conv1` 1x1 to 4 * growth + bias -> `_bn2` -> ReLU -> `_conv2` 3x3 to
  growth + bias -> dropout; the next bottleneck's input (and the block's output) is the
  channel concatenation of the block's input and every bottleneck's output so far.
- Transition t (from 1) between blocks t and t + 1, `densenet_transition_{t}`: `_bn` ->
  ReLU -> `_conv` 1x1 to int(compression * channels) + bias -> `_conv_p` 3x3 stride 2 + bias
  (the reference's replacement of the average pool). The channel count is carried as a real
  number from block to block, as the reference's `num_channels` is.
- No batch norm or ReLU after the last block: global average pool (the dense layer is the
  caller's).
- Convolutions pad as TensorFlow's SAME (same_pad from resnet18_net.py).
"""
import torch
import torch.nn.functional as F

from resnet18_net import same_pad

CLASSES = 10
BN_EPS = 1e-3
BN_MOMENTUM = 0.9
DROPOUT = 0.5
PREFIX = "densenet"


def layers(cfg):
    """Convolutions (name, cin, cout, filter, stride) and batch norms (name, channels), each
    in tpufi's registration order, the bottleneck names per block, and the pooled features.
    `cfg` has the input `channels`, `initial`, `growth`, `blocks` (bottlenecks per block) and
    `compression`."""
    convs, norms, blocks = [], [], []
    init, growth = cfg["initial"], cfg["growth"]
    convs.append((PREFIX + "_conv", cfg["channels"], init, 7, 2))
    norms.append((PREFIX + "_bn", init))
    convs.append((PREFIX + "_conv_p", init, init, 3, 2))
    channels, carried = init, float(init)
    for b, count in enumerate(cfg["blocks"]):
        if b > 0:
            t = f"{PREFIX}_transition_{b}"
            out = int(carried)
            norms.append((t + "_bn", channels))
            convs.append((t + "_conv", channels, out, 1, 1))
            convs.append((t + "_conv_p", out, out, 3, 2))
            channels = out
        names = []
        for i in range(count):
            p = f"{PREFIX}_dense_block_{b + 1}_bottleneck_{i}"
            norms.append((p + "_bn1", channels))
            convs.append((p + "_conv1", channels, 4 * growth, 1, 1))
            norms.append((p + "_bn2", 4 * growth))
            convs.append((p + "_conv2", 4 * growth, growth, 3, 1))
            names.append(p)
            channels += growth
        blocks.append(names)
        carried = cfg["compression"] * (carried + growth * count)
    return convs, norms, blocks, channels


def features(x, blocks, conv, norm, dropout):
    """NCHW images to the pooled features [N, C]. `blocks` from `layers`; `conv(name, x)` is
    that layer's convolution + bias; `norm(name, x)` that batch norm; `dropout(x)` is applied
    to every bottleneck's output, in execution order."""
    x = conv(PREFIX + "_conv_p", F.relu(norm(PREFIX + "_bn", conv(PREFIX + "_conv", x))))
    for b, names in enumerate(blocks):
        if b > 0:
            t = f"{PREFIX}_transition_{b}"
            x = conv(t + "_conv_p", conv(t + "_conv", F.relu(norm(t + "_bn", x))))
        feats = [x]
        for p in names:
            h = conv(p + "_conv1", F.relu(norm(p + "_bn1", x)))
            y = dropout(conv(p + "_conv2", F.relu(norm(p + "_bn2", h))))
            feats.append(y)
            x = torch.cat(feats, dim=1)
    return x.mean(dim=(2, 3))


def conv2d(x, w_hwio, b, k, stride):
    """TensorFlow-SAME convolution of NCHW x by an HWIO kernel, plus the bias."""
    return F.conv2d(same_pad(x, k, stride), w_hwio.permute(3, 2, 0, 1), stride=stride) + b[None, :, None, None]
