"""The reference study's ResNet-18 (tpufi's `Network.reference`) as layer list and topology,
shared by scripts/reference/torch_resnet18_step.py (the float64 correctness fixture, with its
own hand-written batch norm and tpufi's dropout masks) and Benchmarks/torch_train_step.py
(PyTorch eager fp32 timing, with PyTorch's own batch norm and dropout). Torch only: no dtype
is set here, and no numpy.

- Stem: 7x7 stride-2 conv + bias -> batch norm -> ReLU (no max-pool).
- Four stages of two basic blocks, widths 1, 2, 4 and 8 times the base width: 3x3 conv
  + bias -> BN -> ReLU -> dropout -> 3x3 conv + bias -> BN, plus the shortcut (a 1x1
  `downsample` conv + bias + BN where the block changes stride or width: the first block
  of stages 2-4, stride 2) -> ReLU -> dropout.
- Global average pool, then a dense layer with bias (not here: the callers own it).
- Convolutions pad as TensorFlow's SAME.
- Layer names are tpufi's: `conv1`, `basicblock_{1..4}_basic_{0,1}_{conv1,conv2,downsample}`.
"""
import torch.nn.functional as F

CLASSES = 10
BN_EPS = 1e-3
BN_MOMENTUM = 0.9  # Keras convention: moving = 0.9 * moving + 0.1 * batch (PyTorch's momentum 0.1)
DROPOUT = 0.15     # resnet18 and resnet18_nobn; resnet18_sgd has none


def layers(cfg):
    """Convolutions (name, cin, cout, filter, stride) in tpufi's order, the blocks
    (conv1, conv2, downsample or None) and the number of pooled features. `cfg` has the
    input `channels` and the base `width`."""
    convs = [("conv1", cfg["channels"], cfg["width"], 7, 2)]
    blocks, cin = [], cfg["width"]
    for stage in range(1, 5):
        width = cfg["width"] << (stage - 1)
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            p = f"basicblock_{stage}_basic_{block}"
            convs.append((p + "_conv1", cin, width, 3, stride))
            convs.append((p + "_conv2", width, width, 3, 1))
            down = None
            if stride != 1 or cin != width:
                down = p + "_downsample"
                convs.append((down, cin, width, 1, stride))
            blocks.append((p + "_conv1", p + "_conv2", down))
            cin = width
    return convs, blocks, cin


def same_padding(n, k, stride):
    """TensorFlow SAME along one axis of size n: output ceil(n / stride), total padding
    max((out - 1) * stride + k - n, 0), the odd row/column at the end. (before, after)."""
    out = -(-n // stride)
    total = max((out - 1) * stride + k - n, 0)
    return total // 2, total - total // 2


def same_pad(x, k, stride):
    """Pads an NCHW tensor for a k x k, `stride` convolution with SAME semantics."""
    (top, bottom), (left, right) = same_padding(x.shape[2], k, stride), same_padding(x.shape[3], k, stride)
    return F.pad(x, (left, right, top, bottom))


def features(x, blocks, conv, dropout):
    """The network from NCHW images to the pooled features [N, C]. `blocks` from `layers`;
    `conv(name, x)` is that layer's convolution + bias (+ batch norm); `dropout(x)` is applied
    after both ReLUs of every block, in this order."""
    x = F.relu(conv("conv1", x))
    for c1, c2, down in blocks:
        h = dropout(F.relu(conv(c1, x)))
        main = conv(c2, h)
        short = conv(down, x) if down else x
        x = dropout(F.relu(main + short))
    return x.mean(dim=(2, 3))
