"""Segmentation trunks behind one interface, for the Bilateral Inception head to sit on.

A :class:`SegmentationTrunk` is ``image -> backbone -> head -> features -> classifier -> coarse
logits`` with:

* ``preprocess``: the trunk's own input normalisation of a float RGB batch in [0, 1];
* ``backbone`` and ``head``: split so that the heavy backbone can be frozen and its output cached
  while the (cheap) head and classifier are fine-tuned on a new label set;
* ``features``: the classifier's input, what BI6 filters (spec: pre-ReLU fc6 for LargeFOV);
* ``align_corners``: how feature samples relate to pixels (also used to upsample the coarse
  logits for the "bilinear" baseline, and to place the BI6 sources).

Builders (weights always from a LOCAL file; torchvision's pretrained-weight names are accepted as
an option for users with internet access, nothing is downloaded otherwise):

* :func:`deeplabv3_mobilenetv2`: the TF model-zoo DeepLabV3-MobileNetV2 (depth 0.5, OS 8, VOC)
  port of :mod:`.deeplab_mobilenetv2`;
* :func:`torchvision_deeplabv3`: torchvision's DeepLabV3 with ResNet-50/101 (OS 8) or
  MobileNetV3-Large (OS 16);
* :func:`deeplab_largefov`: DeepLab-LargeFOV (VGG16), the trunk of the released BI model
  (spec section 2 item 9);
* :func:`tiny_trunk`: a small random network for tests and smoke runs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sin.checkpoint import load_torch_file

__all__ = [
    "TrunkOutput",
    "SegmentationTrunk",
    "TRUNKS",
    "build_trunk",
    "deeplabv3_mobilenetv2",
    "torchvision_deeplabv3",
    "deeplab_largefov",
    "LargeFOVBackbone",
    "tiny_trunk",
    "load_state_dict_file",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Caffe VGG/DeepLab mean, BGR order, 0..255 units.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@dataclass
class TrunkOutput:
    """``logits`` (B, K, H, W) upsampled; ``coarse_logits`` (B, K, h, w); ``features`` (B, C, h, w)."""

    logits: torch.Tensor
    coarse_logits: torch.Tensor
    features: torch.Tensor


def check_image_batch(image) -> torch.Tensor:
    """Validate a float RGB batch ``(B, 3, H, W)`` in [0, 1] (clear errors instead of garbage logits)."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"image must be a torch.Tensor (B, 3, H, W), got {type(image).__name__}")
    if image.ndim != 4 or image.shape[1] != 3 or image.numel() == 0:
        raise ValueError(f"image must have shape (B, 3, H, W) and not be empty, got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor in [0, 1], got {image.dtype} (divide uint8 by 255)")
    lo, hi = torch.aminmax(image.detach())
    if not (bool(lo >= -1e-3) and bool(hi <= 1 + 1e-3)):  # NaN fails both
        raise ValueError(f"image values must be finite and in [0, 1], got range [{float(lo):.4g}, {float(hi):.4g}]")
    return image


class _Normalize(nn.Module):
    """``(x - mean) / std`` per channel, optionally after scaling and reversing RGB -> BGR."""

    def __init__(self, mean, std, scale: float = 1.0, bgr: bool = False):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.scale = float(scale)
        self.bgr = bool(bgr)

    def forward(self, x):
        x = x * self.scale
        if self.bgr:
            x = x.flip(1)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class SegmentationTrunk(nn.Module):
    """A segmentation network split into preprocess / backbone / head / classifier.

    Parameters
    ----------
    preprocess, backbone, head, classifier : nn.Module
        ``classifier(head(backbone(preprocess(image))))`` are the coarse logits; ``head(...)``
        are the features.
    feature_channels : int
    num_classes : int
    output_stride : int
    align_corners : bool
    name : str
    """

    def __init__(self, preprocess: nn.Module, backbone: nn.Module, head: nn.Module, classifier: nn.Module, *,
                 feature_channels: int, num_classes: int, output_stride: int, align_corners: bool, name: str):
        super().__init__()
        self.preprocess = preprocess
        self.backbone = backbone
        self.head = head
        self.classifier = classifier
        self.feature_channels = int(feature_channels)
        self.num_classes = int(num_classes)
        self.output_stride = int(output_stride)
        self.align_corners = bool(align_corners)
        self.name = name

    def forward_backbone(self, image: torch.Tensor) -> torch.Tensor:
        """Backbone output of a float RGB batch in [0, 1] (what is cached when the backbone is frozen)."""
        return self.backbone(self.preprocess(check_image_batch(image)))

    def forward_head(self, backbone_out: torch.Tensor) -> torch.Tensor:
        """Features (the classifier's input) from the backbone output."""
        return self.head(backbone_out)

    def upsample(self, coarse: torch.Tensor, size) -> torch.Tensor:
        """Bilinear upsampling of coarse maps with this trunk's pixel convention."""
        return F.interpolate(coarse, size=tuple(size), mode="bilinear", align_corners=self.align_corners)

    def forward(self, image: torch.Tensor) -> TrunkOutput:
        features = self.forward_head(self.forward_backbone(image))
        coarse = self.classifier(features)
        return TrunkOutput(logits=self.upsample(coarse, image.shape[-2:]), coarse_logits=coarse, features=features)

    def replace_classifier(self, num_classes: int) -> nn.Module:
        """A new final 1x1 classifier with ``num_classes`` outputs (weights N(0, 0.01^2), bias 0)."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        last = _last_conv(self.classifier)
        new = nn.Conv2d(last.in_channels, num_classes, 1).to(device=last.weight.device, dtype=last.weight.dtype)
        # small init: the first softmax is near uniform (loss ~ log K) whatever the feature scale
        nn.init.normal_(new.weight, std=0.01)
        nn.init.zeros_(new.bias)
        if isinstance(self.classifier, nn.Conv2d):
            self.classifier = new
        else:
            _replace_last_conv(self.classifier, new)
        self.num_classes = num_classes
        return new


def _last_conv(module: nn.Module) -> nn.Conv2d:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("classifier has no Conv2d layer")
    return convs[-1]


def _replace_last_conv(seq: nn.Module, new: nn.Conv2d) -> None:
    for name, child in reversed(list(seq.named_children())):
        if isinstance(child, nn.Conv2d):
            setattr(seq, name, new)
            return
    raise ValueError("cannot replace the classifier's last convolution")


def load_state_dict_file(path, what: str) -> dict:
    """``torch.load`` a local state dict with clear errors (missing file, unreadable, not a dict)."""
    obj = load_torch_file(path, f"{what} weights")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{what} weights {path} do not hold a state dict of tensors")
    bad = [k for k, v in obj.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{what} weights {path} contain NaN/inf in {bad[:3]}")
    return obj


def _load_checked(module: nn.Module, state: dict, what: str, *, skip_prefixes=()) -> None:
    own = module.state_dict()
    state = {k: v for k, v in state.items() if not any(k.startswith(p) for p in skip_prefixes)}
    wanted = {k for k in own if not any(k.startswith(p) for p in skip_prefixes)}
    missing, unexpected = sorted(wanted - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{what} weights do not match the network: {len(missing)} missing (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    bad = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state if state[k].shape != own[k].shape]
    if bad:
        raise ValueError(f"{what} weights have wrong shapes: {bad[:3]}")
    module.load_state_dict(state, strict=False)


# ------------------------------------------------------------------------------------------ MNV2
def deeplabv3_mobilenetv2(weights=None, num_classes: int = 21) -> SegmentationTrunk:
    """DeepLabV3-MobileNetV2 (depth 0.5, OS 8, VOC-trained TF model zoo) as a :class:`SegmentationTrunk`.

    Parameters
    ----------
    weights : path, optional
        ``deeplabv3_mnv2_dm05_tflite_weights.pt`` (see ``../shared/weights/README.md``); ``None``:
        random. With ``num_classes != 21`` the classifier is new and random.
    """
    from .deeplab_mobilenetv2 import build_deeplabv3_mnv2

    net = build_deeplabv3_mnv2(weights, num_classes=num_classes)
    # TF DeepLab input: 2 * x - 1, i.e. (x - 0.5) / 0.5
    pre = _Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return SegmentationTrunk(pre, net.backbone, net.aspp, net.classifier, feature_channels=256,
                             num_classes=num_classes, output_stride=8, align_corners=True,
                             name="deeplabv3_mobilenetv2").eval()


# ----------------------------------------------------------------------------------- torchvision
class _OutOnly(nn.Module):
    """torchvision's ``IntermediateLayerGetter`` returns a dict; keep ``'out'``."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x)["out"]


_TV_BUILDERS = {
    "resnet50": ("deeplabv3_resnet50", "DeepLabV3_ResNet50_Weights", 8),
    "resnet101": ("deeplabv3_resnet101", "DeepLabV3_ResNet101_Weights", 8),
    "mobilenet_v3_large": ("deeplabv3_mobilenet_v3_large", "DeepLabV3_MobileNet_V3_Large_Weights", 16),
}


def torchvision_deeplabv3(backbone: str = "resnet50", weights=None, num_classes: int = 21) -> SegmentationTrunk:
    """torchvision DeepLabV3 as a :class:`SegmentationTrunk`.

    Parameters
    ----------
    backbone : {"resnet50", "resnet101", "mobilenet_v3_large"}
    weights : path or str, optional
        A local file holding the model's ``state_dict`` (auxiliary-classifier keys are ignored);
        or a torchvision weight name (``"DEFAULT"``, ``"COCO_WITH_VOC_LABELS_V1"``), which
        torchvision downloads (needs internet). ``None``: random initialisation.
    num_classes : int
        With pretrained weights and ``num_classes != 21`` the final classifier is new and random.
    """
    import torchvision.models.segmentation as seg

    if backbone not in _TV_BUILDERS:
        raise ValueError(f"unknown torchvision DeepLabV3 backbone {backbone!r}; choose from {sorted(_TV_BUILDERS)}")
    fn_name, enum_name, stride = _TV_BUILDERS[backbone]
    builder = getattr(seg, fn_name)
    wpath = Path(str(weights)) if weights is not None else None
    is_file = wpath is not None and (wpath.suffix in (".pt", ".pth", ".bin") or wpath.exists())
    if weights is not None and not is_file:
        enum = getattr(seg, enum_name)
        if str(weights) not in enum.__members__:
            raise ValueError(f"weights {weights!r} is neither an existing file nor one of {list(enum.__members__)}")
        net = builder(weights=enum[str(weights)], aux_loss=False)  # downloads: needs internet
    else:
        net = builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
        if is_file:
            state = load_state_dict_file(weights, f"torchvision DeepLabV3-{backbone}")
            state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
            _load_checked(net, state, f"torchvision DeepLabV3-{backbone} ({weights})")
    head = net.classifier
    trunk = SegmentationTrunk(_Normalize(IMAGENET_MEAN, IMAGENET_STD), _OutOnly(net.backbone),
                              nn.Sequential(*list(head.children())[:-1]), list(head.children())[-1],
                              feature_channels=256, num_classes=21, output_stride=stride, align_corners=False,
                              name=f"deeplabv3_{backbone}")
    if num_classes != 21:
        trunk.replace_classifier(num_classes)
    return trunk.eval()


# -------------------------------------------------------------------------------------- LargeFOV
class LargeFOVBackbone(nn.Module):
    """VGG16 conv1-conv5 of DeepLab-LargeFOV with its strides and dilations (spec section 2 item 9).

    pool1-3: max 3x3 stride 2 pad 1 (Caffe's ceil rounding); pool4: max 3x3 stride 1 pad 1;
    conv5_x: dilation 2; pool5: max 3x3 stride 1 pad 1; pool5a: average 3x3 stride 1 pad 1.
    Output stride 8 (513 -> 65), 512 channels. Layer names follow the Caffe model
    (``conv1_1`` ... ``conv5_3``) so that converted weights map one to one.
    """

    CFG = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))

    def __init__(self):
        super().__init__()
        layers = OrderedDict()
        cin = 3
        for block, widths in enumerate(self.CFG, start=1):
            dil = 2 if block == 5 else 1
            for j, cout in enumerate(widths, start=1):
                layers[f"conv{block}_{j}"] = nn.Conv2d(cin, cout, 3, padding=dil, dilation=dil)
                layers[f"relu{block}_{j}"] = nn.ReLU(inplace=True)
                cin = cout
            stride = 2 if block <= 3 else 1
            layers[f"pool{block}"] = nn.MaxPool2d(3, stride=stride, padding=1, ceil_mode=True)
        layers["pool5a"] = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.layers = nn.Sequential(layers)

    def forward(self, x):
        return self.layers(x)


def deeplab_largefov(weights=None, num_classes: int = 21, *, fc_channels: int = 1024, dropout: float = 0.5
                     ) -> SegmentationTrunk:
    """DeepLab-LargeFOV (VGG16, fc6 3x3 dilation 12, 1024 channels) as a :class:`SegmentationTrunk`.

    Features are the **pre-ReLU** fc6 output (what BI6 filters in the released model); the
    classifier is ``relu6, drop6, fc7 (1x1, 1024), relu7, drop7, fc8`` (1x1). Input convention
    of the Caffe model: BGR, 0..255, mean ``(103.939, 116.779, 123.68)`` subtracted.

    Parameters
    ----------
    weights : path, optional
        A state dict of this module (e.g. converted from ``deeplab_coco_largefov`` Caffe weights:
        ``backbone.layers.conv1_1.weight`` ..., ``head.weight`` (fc6), ``classifier.2.*`` (fc7),
        ``classifier.5.*`` (fc8)). With ``num_classes`` different from the file's fc8 the
        classifier's last layer stays random.
    """
    backbone = LargeFOVBackbone()
    fc6 = nn.Conv2d(512, fc_channels, 3, padding=12, dilation=12)
    classifier = nn.Sequential(nn.ReLU(inplace=False), nn.Dropout2d(dropout), nn.Conv2d(fc_channels, fc_channels, 1),
                               nn.ReLU(inplace=False), nn.Dropout2d(dropout), nn.Conv2d(fc_channels, num_classes, 1))
    trunk = SegmentationTrunk(_Normalize(CAFFE_BGR_MEAN, (1.0, 1.0, 1.0), scale=255.0, bgr=True), backbone, fc6,
                              classifier, feature_channels=fc_channels, num_classes=num_classes, output_stride=8,
                              align_corners=True, name="deeplab_largefov")
    if weights is not None:
        state = load_state_dict_file(weights, "DeepLab-LargeFOV")
        fc8 = state.get("classifier.5.weight")
        skip = ("classifier.5.",) if fc8 is not None and fc8.shape[0] != num_classes else ()
        _load_checked(trunk, state, f"DeepLab-LargeFOV ({weights})", skip_prefixes=skip)
    return trunk.eval()


# ------------------------------------------------------------------------------------------ tiny
def tiny_trunk(num_classes: int = 21, channels: int = 16, seed: int = 0) -> SegmentationTrunk:
    """A small random output-stride-8 trunk (three stride-2 convolutions) for tests and smoke runs."""
    gen = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        backbone = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        )
        head = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU())
        classifier = nn.Conv2d(channels, num_classes, 1)
    finally:
        torch.random.set_rng_state(gen)
    return SegmentationTrunk(_Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), backbone, head, classifier,
                             feature_channels=channels, num_classes=num_classes, output_stride=8,
                             align_corners=True, name="tiny").eval()


#: Names accepted by :func:`build_trunk`.
TRUNKS = ("deeplabv3_mobilenetv2", "deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large",
          "deeplab_largefov", "tiny")


def build_trunk(name: str, weights=None, num_classes: int = 21) -> SegmentationTrunk:
    """Build a trunk by name (see :data:`TRUNKS`)."""
    if name == "deeplabv3_mobilenetv2":
        return deeplabv3_mobilenetv2(weights, num_classes)
    if name.startswith("deeplabv3_") and name[len("deeplabv3_"):] in _TV_BUILDERS:
        return torchvision_deeplabv3(name[len("deeplabv3_"):], weights, num_classes)
    if name == "deeplab_largefov":
        return deeplab_largefov(weights, num_classes)
    if name == "tiny":
        if weights is not None:
            raise ValueError("the tiny trunk is random; it takes no weights")
        return tiny_trunk(num_classes)
    raise ValueError(f"unknown trunk {name!r}; choose from {TRUNKS}")
