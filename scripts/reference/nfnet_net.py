"""The reference study's NF-ResNet (tpufi's `nfnet` workload) as layer list and topology, for
scripts/reference/torch_nfnet_step.py (the float64 correctness fixture). Torch only: no dtype
is set here, and no numpy.

- Stem `NF_ResNet_init_conv`: 3x3 stride-2 weight-standardised conv + bias, no activation.
- Four stages of two bottleneck blocks `NF_ResNet_block_{k}`, outputs `widths` (inner width a
  quarter), strides 1, 2, 2, 2 on the 3x3 conv: h = act(x) * beta; the shortcut is the 1x1
  `conv_shortcut` of h (with the stride) where the block changes shape, x otherwise; the main
  path conv0 (1x1) -> act -> conv1 (3x3) -> act -> conv2 (1x1) -> times `skip_gain` -> times
  ALPHA; the block's output is main + shortcut.
- beta = 1 / expected std: the expected std starts at 1, is reset to 1 after a stage's first
  block and grows as sqrt(std^2 + ALPHA^2) after every block (the reference's nf_resnet.py).
- act = ReLU times ACT_GAIN. Head: act, global mean (then the callers' dense layer).
- Every conv is weight-standardised (`standardize`) with a per-output-channel gain, and has a
  bias. SAME padding as TensorFlow's (resnet18_net.same_pad).
"""
import torch
import torch.nn.functional as F

from resnet18_net import same_pad

CLASSES = 10
ACT_GAIN = 1.7139588594436646
WS_EPS = 1e-4
ALPHA = 1.0
DEPTHS = (2, 2, 2, 2)
STRIDES = (1, 2, 2, 2)
PREFIX = "NF_ResNet"


def layers(cfg):
    """Convolutions (name, cin, cout, filter, stride) in tpufi's forward order, the blocks
    (name, shortcut or None, conv0, conv1, conv2, beta) and the number of pooled features.
    `cfg` has the input `channels`, the `stem` width and the four stage `widths`."""
    convs = [(PREFIX + "_init_conv", cfg["channels"], cfg["stem"], 3, 2)]
    blocks, cin, std = [], cfg["stem"], 1.0
    for width, depth, first_stride in zip(cfg["widths"], DEPTHS, STRIDES):
        for index in range(depth):
            stride = first_stride if index == 0 else 1
            name = f"{PREFIX}_block_{len(blocks)}"
            inner = width // 4
            short = None
            if stride > 1 or cin != width:
                short = name + "_conv_shortcut"
                convs.append((short, cin, width, 1, stride))
            convs.append((name + "_conv0", cin, inner, 1, 1))
            convs.append((name + "_conv1", inner, inner, 3, stride))
            convs.append((name + "_conv2", inner, width, 1, 1))
            blocks.append((name, short, name + "_conv0", name + "_conv1", name + "_conv2", 1.0 / std))
            cin = width
            if index == 0:
                std = 1.0
            std = (std * std + ALPHA * ALPHA) ** 0.5
    return convs, blocks, cin


def standardize(w, gain):
    """Scaled weight standardisation of an HWIO kernel: per output channel, (w - mean) *
    rsqrt(max(var * fan_in, WS_EPS)) * gain, var the biased variance over H, W, I."""
    fan_in = w.shape[0] * w.shape[1] * w.shape[2]
    mean = w.mean(dim=(0, 1, 2), keepdim=True)
    var = ((w - mean) ** 2).mean(dim=(0, 1, 2), keepdim=True)
    return (w - mean) * torch.rsqrt(torch.clamp(var * fan_in, min=WS_EPS)) * gain


def act(x):
    return F.relu(x) * ACT_GAIN


def conv2d(x, w, gain, bias, k, stride):
    """An NCHW input through the standardised HWIO kernel `w`, SAME padding, plus `bias`."""
    y = F.conv2d(same_pad(x, k, stride), standardize(w, gain).permute(3, 2, 0, 1), stride=stride)
    return y + bias[None, :, None, None]


def features(x, blocks, conv, skip_gain):
    """The network from NCHW images to the pooled features [N, C]. `blocks` from `layers`;
    `conv(name, x)` is that layer's standardised convolution + bias; `skip_gain(block)` its
    scalar SkipInit gain."""
    x = conv(PREFIX + "_init_conv", x)
    for name, short, c0, c1, c2, beta in blocks:
        h = act(x) * beta
        shortcut = conv(short, h) if short else x
        main = conv(c2, act(conv(c1, act(conv(c0, h)))))
        x = main * skip_gain(name) * ALPHA + shortcut
    return act(x).mean(dim=(2, 3))
