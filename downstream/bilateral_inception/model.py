"""A trunk's classifier replaced by Bilateral Inception: BI6(2) -> fc7 -> BI7(6) -> classifier -> smear.

Layer order of the released model (spec section 2 items 10-14)::

    trunk features (B, C, h, w)            # the coarse grid: P = h*w sources
      BI6(2)  grid -> superpixels          # "xy" + "rgbxy" kernels, resolution recovery
      ReLU, Dropout(0.5)
      fc7     1x1 conv C -> M, per superpixel
      BI7(6)  superpixels -> superpixels   # 3 x ("rgbxy", "xy")
      ReLU, Dropout(0.5)
      classifier 1x1 conv M -> K
      smear to pixels (superpixel_unpool)  # piecewise constant on superpixels

The superpixel features are computed from the image at the resolution of the assignment (the
"pixel" frame: evaluation resolution) and transformed once by the shared ``Lambda``. The trunk
may see a resized copy of the image; its grid is mapped onto the pixel frame by
:func:`.features.grid_assignment` with the trunk's ``align_corners`` convention.

Initialisation: ``init="spec"`` is the released model's (theta = 1, w6 = 1, w7 ~ N(0, 0.001^2),
fc7/classifier random). :meth:`BilateralInceptionHead.start_from_trunk` instead makes the head
start as "trunk classifier on bilaterally averaged features" (w = 1/H, fc7 = identity or the
trunk's fc7, classifier = the trunk's), which trains much faster from a fine-tuned trunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sin.pooling import Assignment, superpixel_unpool

from .bilateral import BilateralInception, FeatureTransform
from .features import FEATURE_DIM, XY_DIM, grid_assignment, superpixel_features, valid_pixel_mask

__all__ = ["BIOutput", "BilateralInceptionHead"]

BI6_SPACES = ("rgbxy", "xy")
BI7_SPACES = ("rgbxy", "xy") * 3


@dataclass
class BIOutput:
    """``logits`` (B, K, H, W) smeared to pixels; ``sp_logits`` (B, K, S) per superpixel; ``sp_mask`` (B, S)."""

    logits: torch.Tensor
    sp_logits: torch.Tensor
    sp_mask: torch.Tensor


class BilateralInceptionHead(nn.Module):
    """BI6 -> fc7 -> BI7 -> classifier on superpixels.

    Parameters
    ----------
    in_channels : int
        Trunk feature channels C.
    num_classes : int
    mid_channels : int, optional
        Width M of fc7 (default ``in_channels``).
    bi6_spaces, bi7_spaces : sequence of str
        Feature spaces of the BI6 / BI7 filters (released model: 2 and 6 filters).
    dropout : float
        After BI6 and BI7 (spec: 0.5).
    feature_scales : dict, optional
        ``xy_scale``, ``rgbxy_rgb_scale``, ``rgbxy_xy_scale``, ``color_range`` of
        :func:`.features.superpixel_features` (defaults: the spec's 0.1, 0.1, 0.01 in pixel / 0..255
        units).
    theta_init, bi6_weight_init, bi7_weight_init
        Initial kernel scales and combination weights (spec: 1, 1, ``"normal"``).
    bi7_theta_init : float or sequence of float, optional
        BI7's own initial scales, one per filter (default ``theta_init``).
    align_corners : bool
        Pixel convention of the trunk's feature grid.
    """

    def __init__(self, in_channels: int, num_classes: int, mid_channels: int | None = None, *,
                 bi6_spaces: Sequence[str] = BI6_SPACES, bi7_spaces: Sequence[str] = BI7_SPACES,
                 dropout: float = 0.5, feature_scales: dict | None = None, theta_init=1.0,
                 bi6_weight_init=1.0, bi7_weight_init="normal", align_corners: bool = True, bi7_theta_init=None):
        super().__init__()
        mid = int(mid_channels or in_channels)
        self.in_channels, self.mid_channels, self.num_classes = int(in_channels), mid, int(num_classes)
        self.feature_scales = dict(feature_scales or {})
        unknown = set(self.feature_scales) - {"xy_scale", "rgbxy_rgb_scale", "rgbxy_xy_scale", "color_range"}
        if unknown:
            raise ValueError(f"unknown feature scales {sorted(unknown)}")
        self.align_corners = bool(align_corners)
        self.transform = FeatureTransform(FEATURE_DIM)
        self.bi6 = BilateralInception(self.in_channels, bi6_spaces, theta_init=theta_init,
                                      weight_init=bi6_weight_init, xy_dim=XY_DIM)
        self.fc7 = nn.Conv1d(self.in_channels, mid, 1)
        self.bi7 = BilateralInception(mid, bi7_spaces, theta_init=theta_init if bi7_theta_init is None else bi7_theta_init,
                                      weight_init=bi7_weight_init,
                                      xy_dim=XY_DIM)
        self.classifier = nn.Conv1d(mid, self.num_classes, 1)
        self.dropout = nn.Dropout(dropout)
        self.act = nn.ReLU()
        #: merge the grid points of one hard superpixel into one BI6 source (exact; see superpixel_logits)
        self.group_sources = True

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def start_from_trunk(self, trunk_classifier: nn.Module) -> BilateralInceptionHead:
        """Start as the trunk's classifier applied to bilaterally averaged features.

        ``w6 = 1/H6`` and ``w7 = 1/H7`` (normalised averages) and, depending on the widths:

        * the trunk classifier has an fc7 of matching shape (LargeFOV): copy fc7 and fc8;
        * ``mid == 2 * num_classes`` and a single 1x1 trunk classifier ``W, b``: ``fc7 = [W; -W]``,
          ``classifier = [I, -I]``, so that ``classifier(relu(z)) = relu(Wf+b) - relu(-Wf-b) = Wf + b``
          passes the ReLU after BI7 exactly (BI7 acts on both halves alike) -- the cheap choice:
          BI7 filters 2K channels instead of C;
        * ``mid == in_channels`` and non-negative trunk features: ``fc7`` = identity, classifier = W.
        """
        convs = [m for m in trunk_classifier.modules() if isinstance(m, nn.Conv2d)]
        last = convs[-1] if convs else None
        if last is None or last.out_channels != self.num_classes:
            raise ValueError("the trunk classifier does not end in a 1x1 convolution with num_classes outputs")
        self.bi6.weight.fill_(1.0 / self.bi6.num_filters)
        self.bi7.weight.fill_(1.0 / self.bi7.num_filters)
        w = last.weight.reshape(last.out_channels, last.in_channels)
        b = last.bias if last.bias is not None else w.new_zeros(last.out_channels)
        fc7 = convs[-2] if len(convs) >= 2 else None
        if fc7 is not None and fc7.in_channels == self.in_channels and fc7.out_channels == self.mid_channels \
                and last.in_channels == self.mid_channels:
            self.fc7.weight.copy_(fc7.weight.reshape(self.fc7.weight.shape))
            self.fc7.bias.copy_(fc7.bias)
            self.classifier.weight.copy_(w.unsqueeze(-1))
            self.classifier.bias.copy_(b)
        elif last.in_channels == self.in_channels and self.mid_channels == 2 * self.num_classes:
            self.fc7.weight.copy_(torch.cat([w, -w]).unsqueeze(-1))
            self.fc7.bias.copy_(torch.cat([b, -b]))
            eye = torch.eye(self.num_classes, dtype=w.dtype, device=w.device)
            self.classifier.weight.copy_(torch.cat([eye, -eye], dim=1).unsqueeze(-1))
            self.classifier.bias.zero_()
        elif last.in_channels == self.in_channels == self.mid_channels:
            self.fc7.weight.copy_(torch.eye(self.in_channels, dtype=w.dtype, device=w.device).unsqueeze(-1))
            self.fc7.bias.zero_()
            self.classifier.weight.copy_(w.unsqueeze(-1))
            self.classifier.bias.copy_(b)
        else:
            raise ValueError(f"cannot start from the trunk classifier with mid_channels={self.mid_channels} "
                             f"(use {2 * self.num_classes} or {self.in_channels})")
        return self

    def param_groups(self, lr: float, *, weight_decay: float = 0.0) -> list[dict]:
        """Optimizer groups with the released model's learning-rate multipliers.

        theta7 and w7 x10, everything else x1 (spec section 5); no decay on theta and Lambda.
        """
        groups = [
            {"params": [self.transform.weight, self.bi6.theta_raw], "lr": lr, "weight_decay": 0.0},
            {"params": [self.bi7.theta_raw], "lr": 10 * lr, "weight_decay": 0.0},
            {"params": [self.bi6.weight], "lr": lr, "weight_decay": weight_decay},
            {"params": [self.bi7.weight], "lr": 10 * lr, "weight_decay": weight_decay},
            {"params": list(self.fc7.parameters()) + list(self.classifier.parameters()), "lr": lr,
             "weight_decay": weight_decay},
        ]
        return groups

    # ------------------------------------------------------------------ forward
    def superpixel_logits(self, features: torch.Tensor, image: torch.Tensor, assignment: Assignment, *,
                          image_sizes=None, feature_sizes=None):
        """``(sp_logits (B, K, S), sp_mask (B, S))`` without smearing to pixels."""
        if features.ndim != 4 or features.shape[1] != self.in_channels:
            raise ValueError(f"features must be (B, {self.in_channels}, h, w), got {tuple(features.shape)}")
        b = features.shape[0]
        if image.shape[0] != b or assignment.index.shape[0] not in (1, b):
            raise ValueError(f"batch sizes differ: features {b}, image {image.shape[0]}, "
                             f"assignment {assignment.index.shape[0]}")
        if assignment.num_superpixels < 1:
            raise ValueError("Bilateral Inception needs at least one superpixel (got an empty label map)")
        for what, t in (("features", features), ("image", image)):
            if not torch.isfinite(t).all():  # NaN would spread through every Gaussian kernel silently
                raise ValueError(f"Bilateral Inception {what} contain NaN or inf")
        h_pix, w_pix = image.shape[-2:]
        pixel_valid = None if image_sizes is None else valid_pixel_mask(image_sizes, h_pix, w_pix, image.device)
        sp = superpixel_features(image, assignment, pixel_valid=pixel_valid, **self.feature_scales)
        sp_feat = self.transform(sp.features.to(features.dtype))  # Lambda, shared by BI6 and BI7
        grid, src_valid = grid_assignment(assignment, features.shape[-2:], image_sizes=image_sizes,
                                          grid_sizes=feature_sizes, align_corners=self.align_corners)
        values = features.flatten(2)
        if grid.index.shape[1] == 1 and self.group_sources:
            # Hard superpixels: all grid points inside superpixel s carry s's features, so they
            # can be merged into one source with multiplicity n_s and the mean value (exact, and
            # P drops from h*w grid points to <= S superpixels).
            b, c, _ = values.shape
            idx = grid.index[:, 0].flatten(1)
            w = grid.weight[:, 0].flatten(1).to(values.dtype)
            counts = values.new_zeros((b, assignment.num_superpixels)).scatter_add(1, idx, w)
            sums = values.new_zeros((b, c, assignment.num_superpixels)).scatter_add(
                2, idx.unsqueeze(1).expand(b, c, -1), values * w.unsqueeze(1))
            means = sums / counts.clamp_min(1e-12).unsqueeze(1)
            x = self.bi6(means, sp_feat, sp_feat, target_mask=sp.mask, source_counts=counts)
        else:
            src_feat = superpixel_unpool(sp_feat, grid).flatten(2)  # (B, 7, h*w): the grid points' superpixel features
            x = self.bi6(values, src_feat, sp_feat, source_mask=src_valid, target_mask=sp.mask)
        x = self.dropout(self.act(x))
        x = self.fc7(x)
        x = self.bi7(x, sp_feat, sp_feat, source_mask=sp.mask, target_mask=sp.mask)
        x = self.dropout(self.act(x))
        logits = self.classifier(x) * sp.mask.unsqueeze(1).to(x.dtype)
        return logits, sp.mask

    def forward(self, features: torch.Tensor, image: torch.Tensor, assignment: Assignment, *,
                image_sizes=None, feature_sizes=None) -> BIOutput:
        """Superpixel scores smeared to the pixels of ``image``.

        Parameters
        ----------
        features : (B, C, h, w) tensor
            Trunk features (padded for batches of different sizes).
        image : (B, 3, H, W) float tensor
            RGB in [0, 1] at the assignment's resolution.
        assignment : sin.pooling.Assignment
            ``(B, S, H, W)``; hard or soft.
        image_sizes, feature_sizes : (B, 2) array_like, optional
            Valid sizes per image of a padded batch.
        """
        sp_logits, mask = self.superpixel_logits(features, image, assignment, image_sizes=image_sizes,
                                                 feature_sizes=feature_sizes)
        return BIOutput(logits=superpixel_unpool(sp_logits, assignment), sp_logits=sp_logits, sp_mask=mask)
