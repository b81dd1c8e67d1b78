"""The SIN network: an FCN that predicts association scores for every interpolation step.

Architecture as in ``models/Spixel_deconv.py`` of the original code (see
``../shared/specs/sin.md`` section 2): a strided encoder with BatchNorm down to the seed grid,
then a chain of transposed convolutions that alternately doubles the width (``deconv{L}_h``)
and the height (``deconv{L}_v``), each followed by a 2-way prediction head.

Module names and parameter shapes equal the original ones, so an original checkpoint loads
through :func:`convert_original_state_dict` (which only drops the dead modules and the
``module.`` prefix of ``DataParallel``).
"""

from __future__ import annotations

import copy
from typing import List

import torch
from torch import nn

__all__ = [
    "SINNet",
    "STEPS",
    "STRIDE",
    "BASE_CHANNELS",
    "channel_plan",
    "convert_original_state_dict",
    "fuse_for_inference",
]

#: Interpolation steps in the order they are applied (coarse to fine). ``"3h"`` is the
#: horizontal step of code level 3 (paper expansion 1), ``"0v"`` the last vertical step.
STEPS = ("3h", "3v", "2h", "2v", "1h", "1v", "0h", "0v")

#: Seed spacing S of the paper: a network input of (16n-15) x (16m-15) pixels gives n x m seeds.
STRIDE = 16

_LEAK = 0.1

#: Channels of the full-resolution encoder level of the original network (width 1).
BASE_CHANNELS = 16


def channel_plan(width: float = 1.0, depth: int = 2) -> tuple[int, ...]:
    """Channels of encoder levels 0..4 for a width multiplier (``16 * width * 2**level``).

    ``width`` must make ``16 * width`` a positive integer (1: the original 16-32-64-128-256,
    0.5: 8-16-32-64-128); ``depth`` is the number of 3x3 convolutions per encoder level, 2 (the
    original ``conv{l}a`` + ``conv{l}b``) or 1 (``conv{l}a`` only). Raises ``ValueError`` otherwise.
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width must be a positive number, got {width!r}")
    base = BASE_CHANNELS * width
    if abs(base - round(base)) > 1e-9 or round(base) < 1:
        raise ValueError(f"width must make {BASE_CHANNELS} * width a positive integer number of channels, "
                         f"got width={width!r} ({base:g} channels)")
    if isinstance(depth, bool) or depth not in (1, 2):
        raise ValueError(f"depth (convolutions per encoder level) must be 1 or 2, got {depth!r}")
    return tuple(int(round(base)) << level for level in range(5))


def _conv(cin: int, cout: int, stride: int = 1, batch_norm: bool = True) -> nn.Sequential:
    if batch_norm:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(_LEAK),
        )
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(_LEAK))


def _deconv(cin: int, cout: int, axis: str) -> nn.Sequential:
    # Transposed 3x3 conv with stride 2 along one axis: n -> 2n - 1 along that axis, so that
    # the old positions land on the even indices and the new ones on the odd indices.
    stride = (1, 2) if axis == "h" else (2, 1)
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(_LEAK)
    )


def _head(cin: int) -> nn.Conv2d:
    return nn.Conv2d(cin, 2, 3, padding=1)


class SINNet(nn.Module):
    """Superpixel Interpolation Network (Yuan et al., PRICAI 2021).

    Parameters
    ----------
    batch_norm : bool, optional
        BatchNorm in the encoder (the original ``SpixelNet1l_bn``). The decoder never has BN.
    width : float, optional
        Channel multiplier (see :func:`channel_plan`): 1 is the original network; 0.5 has half
        the channels everywhere and about a quarter of its multiply-adds.
    depth : {2, 1}, optional
        Convolutions per encoder level: 2 (the original) or 1 (drops ``conv{l}b``).

    The interpolation (and so the 4-connectivity guarantee) does not depend on ``width`` or
    ``depth``: every variant predicts the same eight 2-way decisions.

    Notes
    -----
    ``forward(x)`` takes a normalised image batch ``(B, 3, 16n-15, 16m-15)`` (see
    :func:`sin.inference.normalize_image`) and returns a list of eight **logit** tensors, one
    per step of :data:`STEPS`, each ``(B, 2, h, w)`` at the size of the map after that step.
    Channel 0 means "take the left (top) neighbour", channel 1 "take the right (bottom)
    neighbour". Softmax is left to the caller (the loss and the soft interpolation).
    """

    def __init__(self, batch_norm: bool = True, width: float = 1.0, depth: int = 2):
        super().__init__()
        ch = channel_plan(width, depth)
        self.batch_norm = batch_norm
        self.width = float(width)
        self.depth = int(depth)
        bn = batch_norm
        cin = 3
        for level, c in enumerate(ch):  # original names: conv0a, conv0b, conv1a, ...
            setattr(self, f"conv{level}a", _conv(cin, c, 1 if level == 0 else 2, bn))
            if depth == 2:
                setattr(self, f"conv{level}b", _conv(c, c, 1, bn))
            cin = c
        for level in (3, 2, 1, 0):
            cin, cout = ch[level + 1], ch[level]  # deconv_h halves the channels, deconv_v keeps them
            setattr(self, f"deconv{level}_h", _deconv(cin, cout, "h"))
            setattr(self, f"pred_mask{level}_h", _head(cout))
            setattr(self, f"deconv{level}_v", _deconv(cout, cout, "v"))
            setattr(self, f"pred_mask{level}_v", _head(cout))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (a=0.1) weights, zero biases, BN identity: the original init."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, a=_LEAK)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def architecture(self) -> dict:
        """What a weights file records to rebuild this network (:func:`sin.checkpoint.load_model`)."""
        return {"batch_norm": self.batch_norm, "width": self.width, "depth": self.depth}

    @property
    def encoder_names(self) -> tuple[str, ...]:
        """Encoder convolutions in the order they run."""
        return tuple(f"conv{level}{ab}" for level in range(5) for ab in "ab"[:self.depth])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.encoder_names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feat = self.encode(x)
        logits = []
        for step in STEPS:
            level, axis = step[0], step[1]
            feat = getattr(self, f"deconv{level}_{axis}")(feat)
            logits.append(getattr(self, f"pred_mask{level}_{axis}")(feat))
        return logits


# Modules of the original network that exist in its state_dict but are never called in forward.
_DEAD_PREFIXES = tuple(
    [f"deconv{i}." for i in range(4)]
    + [f"conv{i}_1." for i in range(4)]
    + [f"pred_mask{i}." for i in range(4)]
)


def convert_original_state_dict(state_dict: dict) -> dict:
    """Map a checkpoint of the original SIN code (``yuanqqq/SIN``) to :class:`SINNet` keys.

    The mapping is the identity on every used parameter; it strips a ``module.`` prefix
    (``DataParallel``) and drops the dead modules ``deconv{0..3}``, ``conv{0..3}_1`` and
    ``pred_mask{0..3}`` that the original ``forward`` never calls. Accepts the raw
    ``state_dict`` or the original ``{'state_dict': ...}`` checkpoint dictionary.
    """
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    out = {}
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key.startswith(_DEAD_PREFIXES):
            continue
        out[key] = value
    return out


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                      stride=conv.stride, padding=conv.padding, bias=True)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused.weight.data.copy_(conv.weight * scale[:, None, None, None])
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.data.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


@torch.no_grad()
def fuse_for_inference(model: SINNet) -> SINNet:
    """Return an eval-mode copy with BatchNorm folded into the preceding convolutions.

    Same outputs as ``model.eval()`` up to float rounding; fewer kernels per forward.
    """
    fused = copy.deepcopy(model).eval()
    for name, child in fused.named_children():
        if isinstance(child, nn.Sequential) and len(child) == 3 and isinstance(child[1], nn.BatchNorm2d):
            setattr(fused, name, nn.Sequential(_fold_bn(child[0], child[1]), child[2]))
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
