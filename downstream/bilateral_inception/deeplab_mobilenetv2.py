"""DeepLabV3 on a MobileNetV2 trunk (depth multiplier 0.5, output stride 8): a PyTorch port.

The model is the TensorFlow DeepLab model-zoo network shipped as ``deeplabv3_257_mv_gpu.tflite``
(PASCAL VOC, 21 classes, batch norm folded into the convolutions). It is the trunk that
:mod:`downstream.bilateral_inception` puts Bilateral Inception modules on: it exposes the
penultimate ``concat_projection`` features (256 channels at 1/8 resolution), the coarse logits and
a replaceable :attr:`DeepLabV3MobileNetV2.classifier`.

Architecture, as read from the tflite graph (70 operators; all reproduced except an identity 33->33 resize):

* input ``x`` in [-1, 1] (TF DeepLab's ``2 / 255 * pixel - 1``; :meth:`forward` takes [0, 1] RGB and
  maps it with ``2 * x - 1``);
* ``MobilenetV2/Conv``: 3x3 stride-2 convolution, 16 channels, ReLU6;
* 17 inverted-residual blocks ``expanded_conv[_i]`` (1x1 expand + ReLU6, 3x3 depthwise + ReLU6,
  1x1 linear projection, identity shortcut when stride 1 and in == out channels); see
  :data:`BLOCKS` for expansion / channels / stride / dilation. For output stride 8 the blocks that
  are stride 2 in MobileNetV2 (``expanded_conv_6`` and ``_13``) run at stride 1, and the depthwise
  convolutions after them are dilated (rate 2 for blocks 7-13, rate 4 for blocks 14-16);
* ASPP "lite" head of this model: image pooling (global average -> 1x1 conv 256 + ReLU -> broadcast
  back, TF ``resize_bilinear`` with ``align_corners=True`` from 1x1) and a 1x1 branch ``aspp0``
  (256 + ReLU); concatenated **in that order** (pooling first) and projected by
  ``concat_projection`` (1x1, 256, ReLU) = :attr:`DeepLabOutput.features`;
* ``logits/semantic``: 1x1 conv to 21 classes = :attr:`DeepLabOutput.coarse_logits`;
* resize to the input size with TF ``resize_bilinear(align_corners=True)`` (the graph's identity
  33->33 resize in between is dropped), which is exactly ``F.interpolate(..., mode="bilinear",
  align_corners=True)``.

TF "SAME" padding, generalised to any input size
-------------------------------------------------
Every convolution of the graph uses TF ``SAME`` padding: the output has ``ceil(n / stride)`` samples
and the total padding ``max((out - 1) * stride + (k - 1) * dilation + 1 - n, 0)`` is split with the
smaller half at the top/left. For stride 1 (odd kernels) that is PyTorch's symmetric
``dilation * (k - 1) / 2``. For the three stride-2 3x3 convolutions it is symmetric (1, 1) when
``n`` is odd — the case of the 257 x 257 export, 257 -> 129 -> 65 -> 33 — but (0, 1) when ``n`` is
even, where PyTorch's ``padding=1`` would shift the sampling grid by one pixel.
:class:`TFSameConv2d` computes the TF padding per call, so the port is exact at every input size
(feature maps are ``ceil(ceil(ceil(n / 2) / 2) / 2)`` = ``ceil(n / 8)`` samples per axis).

The exported graph's image pooling is a VALID 33x33 average pool, i.e. the global mean at the export
size 257; for other sizes we use the global mean (what TF DeepLab does when no fixed crop size is
given), not a fixed 33x33 window.

Weights (``deeplabv3_mnv2_dm05_tflite_weights.pt``, a state_dict keyed by the tflite tensor names, or
the same converted to this module's own names) are never shipped with the code:
``build_deeplabv3_mnv2(weights_path=...)``. Licence of the weights: Apache-2.0 (TF DeepLab model zoo).

Examples
--------
>>> model = build_deeplabv3_mnv2("../shared/weights/deeplabv3_mnv2_dm05_tflite_weights.pt")
>>> out = model(batch)                  # (B, 3, H, W) float RGB in [0, 1]
>>> out.logits.shape, out.features.shape  # (B, 21, H, W), (B, 256, ceil(H/8), ceil(W/8))
>>> model.replace_classifier(5)          # new random 1x1 classifier, trunk weights kept
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sin.checkpoint import load_torch_file

__all__ = [
    "VOC_CLASSES",
    "BLOCKS",
    "TFSameConv2d",
    "InvertedResidual",
    "DeepLabOutput",
    "DeepLabV3MobileNetV2",
    "build_deeplabv3_mnv2",
    "tf_same_padding",
    "feature_size",
]

#: PASCAL VOC 2012 class names, in the order of the 21 logits.
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

#: Inverted-residual blocks ``expanded_conv``, ``expanded_conv_1`` ... ``_16`` of the tflite graph:
#: ``(expansion, out_channels, stride, dilation)``. Depth multiplier 0.5 is already applied to the
#: channel counts; strides/dilations are those of output stride 8.
BLOCKS = (
    (1, 8, 1, 1),                                   # expanded_conv
    (6, 12, 2, 1), (6, 12, 1, 1),                   # _1, _2
    (6, 16, 2, 1), (6, 16, 1, 1), (6, 16, 1, 1),    # _3 .. _5
    (6, 32, 1, 1),                                  # _6: stride 2 in MobileNetV2, 1 at OS 8
    (6, 32, 1, 2), (6, 32, 1, 2), (6, 32, 1, 2),    # _7 .. _9
    (6, 48, 1, 2), (6, 48, 1, 2), (6, 48, 1, 2),    # _10 .. _12
    (6, 80, 1, 2),                                  # _13: stride 2 in MobileNetV2, 1 at OS 8
    (6, 80, 1, 4), (6, 80, 1, 4),                   # _14, _15
    (6, 160, 1, 4),                                 # _16
)
STEM_CHANNELS = 16
ASPP_CHANNELS = 256
OUTPUT_STRIDE = 8


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF ``SAME`` padding ``(before, after)`` of one axis of length ``size``.

    The output has ``ceil(size / stride)`` samples; the total padding is split with the smaller
    half before (top/left), as TensorFlow does.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def feature_size(size: int) -> int:
    """Length of the stride-8 feature axis for an input axis of ``size`` pixels (``ceil(size/8)``)."""
    for _ in range(3):  # the three stride-2 SAME convolutions
        size = -(-size // 2)
    return size


class TFSameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``SAME`` padding computed for the actual input size.

    The constructor's ``padding`` must be 0 (the padding is decided per call).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(self.padding, str) or any(p != 0 for p in self.padding):
            raise ValueError("TFSameConv2d computes its own padding; pass padding=0")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        th, bh = tf_same_padding(x.shape[-2], kh, sh, dh)
        lw, rw = tf_same_padding(x.shape[-1], kw, sw, dw)
        if th == bh and lw == rw:  # symmetric: let the convolution pad (no extra copy)
            return F.conv2d(x, self.weight, self.bias, self.stride, (th, lw), self.dilation, self.groups)
        x = F.pad(x, (lw, rw, th, bh))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(in_ch: int, out_ch: int, kernel: int = 1, *, stride: int = 1, dilation: int = 1, groups: int = 1,
          activation: type[nn.Module] | None = None) -> nn.Sequential:
    """``Sequential(conv[, activation])``: convolution with bias (batch norm is folded into it), TF SAME padding.

    The same layout as torchvision's ``Conv2dNormActivation`` without a norm layer; that class
    cannot be used here because it hard-wires ``nn.Conv2d`` with symmetric padding.
    """
    layers = [TFSameConv2d(in_ch, out_ch, kernel, stride=stride, padding=0, dilation=dilation, groups=groups,
                           bias=True)]
    if activation is not None:
        layers.append(activation(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual with folded batch norm and TF SAME padding.

    torchvision's ``mobilenetv2.InvertedResidual`` does not fit as is: its projection has no bias
    (it expects a BatchNorm after it) and its stride-2 depthwise uses symmetric padding, which
    differs from TF SAME for even input sizes. The structure is the same.
    """

    def __init__(self, in_ch: int, out_ch: int, expansion: int, stride: int, dilation: int):
        super().__init__()
        hidden = in_ch * expansion
        self.expand = _conv(in_ch, hidden, 1, activation=nn.ReLU6) if expansion != 1 else nn.Identity()
        self.depthwise = _conv(hidden, hidden, 3, stride=stride, dilation=dilation, groups=hidden,
                               activation=nn.ReLU6)
        self.project = _conv(hidden, out_ch, 1)  # linear bottleneck: no activation
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.use_residual else y


class MobileNetV2Trunk(nn.Module):
    """MobileNetV2 (depth 0.5) feature extractor at output stride 8: ``(B,3,H,W) -> (B,160,H/8,W/8)``."""

    def __init__(self):
        super().__init__()
        self.stem = _conv(3, STEM_CHANNELS, 3, stride=2, activation=nn.ReLU6)
        blocks, ch = [], STEM_CHANNELS
        for expansion, out_ch, stride, dilation in BLOCKS:
            blocks.append(InvertedResidual(ch, out_ch, expansion, stride, dilation))
            ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class ASPPLite(nn.Module):
    """The ASPP head of this model: image pooling + a 1x1 branch, concatenated, projected (all ReLU)."""

    def __init__(self, in_ch: int, out_ch: int = ASPP_CHANNELS):
        super().__init__()
        self.image_pooling = _conv(in_ch, out_ch, 1, activation=nn.ReLU)
        self.aspp0 = _conv(in_ch, out_ch, 1, activation=nn.ReLU)
        self.projection = _conv(2 * out_ch, out_ch, 1, activation=nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pooling(x.mean(dim=(2, 3), keepdim=True))
        # align-corners bilinear resize of a 1x1 map = broadcast
        pooled = pooled.expand(-1, -1, x.shape[2], x.shape[3])
        return self.projection(torch.cat([pooled, self.aspp0(x)], dim=1))  # order of the graph


@dataclass
class DeepLabOutput:
    """What :class:`DeepLabV3MobileNetV2` returns.

    Attributes
    ----------
    logits : (B, num_classes, H, W) tensor
        Class scores at the input resolution (align-corners bilinear upsampling of ``coarse_logits``).
    coarse_logits : (B, num_classes, h, w) tensor
        Class scores at the feature resolution ``h = ceil(H/8)``, ``w = ceil(W/8)``.
    features : (B, 256, h, w) tensor
        Penultimate features (``concat_projection/Relu`` of the graph), the classifier's input.
    """

    logits: torch.Tensor
    coarse_logits: torch.Tensor
    features: torch.Tensor


class DeepLabV3MobileNetV2(nn.Module):
    """DeepLabV3 + MobileNetV2 (depth 0.5, output stride 8). Use :func:`build_deeplabv3_mnv2`.

    ``forward(image)`` takes a float RGB batch ``(B, 3, H, W)`` in [0, 1] of any size and returns a
    :class:`DeepLabOutput`. ``classifier`` is a plain ``nn.Conv2d(256, num_classes, 1)``; replace it
    (or call :meth:`replace_classifier`) for another label set.
    """

    def __init__(self, num_classes: int = 21):
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.backbone = MobileNetV2Trunk()
        self.aspp = ASPPLite(self.backbone.out_channels)
        self.classifier = nn.Conv2d(ASPP_CHANNELS, num_classes, 1)
        self.num_classes = num_classes

    def replace_classifier(self, num_classes: int) -> nn.Conv2d:
        """Put a new randomly initialised 1x1 classifier with ``num_classes`` outputs; returns it."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        ref = self.classifier.weight
        self.classifier = nn.Conv2d(ASPP_CHANNELS, num_classes, 1).to(device=ref.device, dtype=ref.dtype)
        self.num_classes = num_classes
        return self.classifier

    @staticmethod
    def _check_input(image) -> torch.Tensor:
        if not isinstance(image, torch.Tensor):
            raise ValueError(f"image must be a torch.Tensor (B, 3, H, W), got {type(image).__name__}")
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must have shape (B, 3, H, W), got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise ValueError(f"image must be a float tensor in [0, 1], got dtype {image.dtype} "
                             "(divide uint8 images by 255)")
        if image.numel() == 0:
            raise ValueError(f"image is empty: shape {tuple(image.shape)}")
        lo, hi = torch.aminmax(image.detach())
        # NaN fails both comparisons; a 0..255 image would silently give garbage logits
        if not (bool(lo >= -1e-3) and bool(hi <= 1 + 1e-3)):
            raise ValueError(f"image values must be finite and in [0, 1], got range [{float(lo):.4g}, {float(hi):.4g}]")
        return image

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(B, 256, ceil(H/8), ceil(W/8))`` of an RGB batch in [0, 1]."""
        x = self._check_input(image)
        x = x * 2.0 - 1.0  # TF DeepLab preprocessing: 2/255 * pixel - 1, i.e. [0, 1] -> [-1, 1]
        return self.aspp(self.backbone(x))

    def forward(self, image: torch.Tensor) -> DeepLabOutput:
        features = self.forward_features(image)
        coarse = self.classifier(features)
        logits = F.interpolate(coarse, size=image.shape[-2:], mode="bilinear", align_corners=True)
        return DeepLabOutput(logits=logits, coarse_logits=coarse, features=features)

    # ---------------------------------------------------------------- weights
    def tflite_parameter_names(self) -> dict[str, str]:
        """Map ``tflite tensor name -> own parameter name`` for all 110 tensors of the export."""
        names: dict[str, str] = {}

        def conv(tf_prefix: str, module_prefix: str, depthwise: bool = False, bias_name: str = "Conv2D_bias"):
            w = "depthwise_weights" if depthwise else "weights"
            b = "depthwise_bias" if depthwise else bias_name
            names[f"{tf_prefix}/{w}"] = f"{module_prefix}.0.weight"
            names[f"{tf_prefix}/{b}"] = f"{module_prefix}.0.bias"

        conv("MobilenetV2/Conv", "backbone.stem")
        for i, (expansion, *_rest) in enumerate(BLOCKS):
            tf = "MobilenetV2/expanded_conv" + (f"_{i}" if i else "")
            own = f"backbone.blocks.{i}"
            if expansion != 1:
                conv(f"{tf}/expand", f"{own}.expand")
            conv(f"{tf}/depthwise", f"{own}.depthwise", depthwise=True)
            conv(f"{tf}/project", f"{own}.project")
        conv("image_pooling", "aspp.image_pooling")
        conv("aspp0", "aspp.aspp0")
        conv("concat_projection", "aspp.projection")
        names["logits/semantic/weights"] = "classifier.weight"
        names["logits/semantic/Conv2D_bias"] = "classifier.bias"
        return names

    def load_tflite_state_dict(self, state: Mapping[str, torch.Tensor], *, source: str = "state dict") -> None:
        """Load weights keyed by tflite tensor names (TF layouts) or by this module's own names.

        TF layouts: convolutions ``(out, kh, kw, in)``, depthwise ``(1, kh, kw, channels)``; they
        are transposed to PyTorch's ``(out, in/groups, kh, kw)``. With ``num_classes != 21`` the
        classifier is left randomly initialised (only the trunk and head are loaded).
        Raises ``ValueError`` naming missing/unexpected keys, shape mismatches or non-finite values.
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"{source}: expected a state dict (mapping of name -> tensor), got {type(state).__name__}")
        own = self.state_dict()
        mapping = self.tflite_parameter_names()
        skip_classifier = self.num_classes != len(VOC_CLASSES)
        if all(k in own for k in state):  # already in our naming
            mapping = {k: k for k in own}
            keys_tf = False
        else:
            keys_tf = True
        wanted = {k: v for k, v in mapping.items() if not (skip_classifier and v.startswith("classifier."))}
        missing = sorted(set(wanted) - set(state))
        unexpected = sorted(set(state) - set(mapping))
        if missing or unexpected:
            raise ValueError(f"{source} does not hold the DeepLabV3-MobileNetV2 (depth 0.5) weights: "
                             f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                             f"(e.g. {unexpected[:3]})")
        new = {}
        for src, dst in wanted.items():
            t = state[src]
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"{source}: entry {src!r} is not a tensor ({type(t).__name__})")
            if keys_tf and t.ndim == 4:
                # TF conv (O, kh, kw, I) -> (O, I, kh, kw); depthwise (1, kh, kw, C) -> (C, 1, kh, kw)
                t = t.permute(3, 0, 1, 2) if "depthwise_weights" in src else t.permute(0, 3, 1, 2)
            if tuple(t.shape) != tuple(own[dst].shape):
                raise ValueError(f"{source}: {src!r} has shape {tuple(state[src].shape)}, expected a tensor "
                                 f"that maps to {tuple(own[dst].shape)} for {dst!r}")
            if not t.is_floating_point() or not torch.isfinite(t).all():
                raise ValueError(f"{source}: {src!r} is not a finite float tensor (corrupted weights?)")
            new[dst] = t.to(own[dst].dtype).contiguous()
        self.load_state_dict(new, strict=not skip_classifier)


def build_deeplabv3_mnv2(weights_path=None, num_classes: int = 21) -> DeepLabV3MobileNetV2:
    """The DeepLabV3-MobileNetV2 (depth 0.5, OS 8) port, in eval mode.

    Parameters
    ----------
    weights_path : str or Path, optional
        ``deeplabv3_mnv2_dm05_tflite_weights.pt`` (tflite tensor names as keys) or a state dict of
        this module saved with ``torch.save(model.state_dict())``. ``None``: random initialisation.
    num_classes : int
        Size of the classifier. With 21 (VOC) the pretrained classifier is loaded; otherwise it is
        randomly initialised and only the trunk + ASPP head are loaded.

    Raises
    ------
    FileNotFoundError
        ``weights_path`` does not exist.
    ValueError
        The file cannot be read as a torch state dict, or does not hold this model's weights.
    """
    model = DeepLabV3MobileNetV2(num_classes=num_classes)
    if weights_path is not None:
        hint = " (expected deeplabv3_mnv2_dm05_tflite_weights.pt, see ../shared/weights/README.md)"
        state = load_torch_file(weights_path, "DeepLabV3-MobileNetV2 weights", hint=hint)
        model.load_tflite_state_dict(state, source=str(weights_path))
    return model.eval()

