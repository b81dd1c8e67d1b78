"""The Bilateral Inception (BI) module: a bank of learned dense Gaussian filters between point sets.

Spec section 1: values ``Z`` (C channels) at P source points with features ``f_p`` are filtered to
Q target points with features ``f_q``. Filter ``h`` works in one feature subspace ``g_h`` ("xy":
the first 2 transformed channels, "rgbxy": the other 5) with a scale ``theta_h >= 0``::

    K_h[q, p] = softmax_p( -theta_h * ||g_h(f_q) - g_h(f_p)||^2 )     (over valid sources only)
    Zhat      = sum_h  w_h * (Z K_h^T)                                (w_h: one weight per channel)

The features are first mapped by a learned linear transform ``Lambda`` (7x7, no bias), shared by
all BI modules of a network (:class:`FeatureTransform`). Masks replace the original's "255"
ignore value: masked sources get ``-inf`` (zero weight), masked targets output 0, and a target
without any valid source outputs 0 instead of the NaN of an all ``-inf`` softmax. Unlike the
original (spec section 7), a learned ``theta = 0`` gives uniform weights over the *valid*
sources only.

The filtering is exact and dense (``Q x P`` kernel per filter): for ~1000 superpixels and a 65x65
grid that is a few tens of MB, no permutohedral lattice needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .features import FEATURE_DIM, XY_DIM

__all__ = ["SPACES", "FeatureTransform", "squared_distances", "bilateral_kernels", "BilateralInception"]

#: Feature subspaces a filter can use.
SPACES = ("xy", "rgbxy")


class FeatureTransform(nn.Module):
    """``Lambda``: a learned linear map of the superpixel features (7x7, no bias), identity at init.

    Input and output ``(B, D, N)`` (channels first, like the original's 1x1 convolution).
    """

    def __init__(self, dim: int = FEATURE_DIM):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 3 or features.shape[1] != self.weight.shape[1]:
            raise ValueError(f"features must be (B, {self.weight.shape[1]}, N), got {tuple(features.shape)}")
        return torch.einsum("ij,bjn->bin", self.weight.to(features.dtype), features)


def _space_slice(space: str, xy_dim: int) -> slice:
    if space == "xy":
        return slice(0, xy_dim)
    if space == "rgbxy":
        return slice(xy_dim, None)
    raise ValueError(f"unknown feature space {space!r}; choose from {SPACES}")


def squared_distances(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``(B, Q, P)`` squared Euclidean distances between ``(B, D, Q)`` and ``(B, D, P)`` features.

    One batched product of augmented vectors ``[t, |t|^2, 1] . [-2 s, 1, |s|^2]`` (the dense
    kernels are the cost of BI, so no elementwise pass over ``Q x P``), after centring both sets
    on the sources' mean, which keeps the float32 rounding error around 1e-4 for features of the
    spec's size (~30); coincident points may come out ~1e-4 below 0, harmless inside a softmax.
    """
    if target.shape[1] == 0:
        raise ValueError("features have no channels")
    centre = source.mean(dim=2, keepdim=True).detach()
    t, s = target - centre, source - centre
    t_aug = torch.cat([t, t.square().sum(1, keepdim=True), torch.ones_like(t[:, :1])], dim=1)
    s_aug = torch.cat([-2 * s, torch.ones_like(s[:, :1]), s.square().sum(1, keepdim=True)], dim=1)
    return torch.bmm(t_aug.transpose(1, 2), s_aug)


def bilateral_kernels(source: torch.Tensor, target: torch.Tensor, theta: torch.Tensor, spaces: Sequence[str], *,
                      source_mask: torch.Tensor | None = None, source_counts: torch.Tensor | None = None,
                      xy_dim: int = XY_DIM) -> torch.Tensor:
    """Row-normalised Gaussian kernels ``(B, H, Q, P)``, one per filter.

    Parameters
    ----------
    source, target : (B, D, P), (B, D, Q) tensors
        Transformed features.
    theta : (H,) tensor
        Non-negative scales.
    spaces : sequence of H str
        Subspace of each filter, ``"xy"`` or ``"rgbxy"``.
    source_mask : (B, P) bool tensor, optional
        Valid sources; invalid ones get zero weight. Rows with no valid source are all zero.
    source_counts : (B, P) tensor, optional
        Multiplicity of each source: source ``p`` stands for ``n_p`` identical points (weight
        ``n_p exp(-theta d^2)``, i.e. ``log n_p`` added to the logits); ``n_p = 0`` masks it.
        Lets BI6 filter per-superpixel means of the grid values instead of every grid point.
    """
    spaces = tuple(spaces)
    if theta.shape != (len(spaces),):
        raise ValueError(f"theta has shape {tuple(theta.shape)}, expected ({len(spaces)},)")
    b, p = source.shape[0], source.shape[2]
    unique = list(dict.fromkeys(spaces))  # filters sharing a space share their distances
    d2 = torch.stack([squared_distances(target[:, _space_slice(sp, xy_dim)], source[:, _space_slice(sp, xy_dim)])
                      for sp in unique], dim=1)  # (B, U, Q, P)
    if len(unique) != len(spaces) or unique != list(spaces):
        d2 = d2[:, [unique.index(sp) for sp in spaces]]
    # additive per-source term: log multiplicity, -inf for masked sources
    bias = source.new_zeros((b, p))
    valid = None if source_mask is None else source_mask.to(torch.bool)
    if source_counts is not None:
        if source_counts.shape != (b, p):
            raise ValueError(f"source_counts must be (B, P) = {(b, p)}, got {tuple(source_counts.shape)}")
        positive = source_counts > 0
        valid = positive if valid is None else valid & positive
        bias = torch.log(torch.where(positive, source_counts, torch.ones_like(source_counts))).to(bias.dtype)
    has_source = None
    if valid is not None:
        if valid.shape != (b, p):
            raise ValueError(f"source_mask must be (B, P) = {(b, p)}, got {tuple(valid.shape)}")
        bias = bias.masked_fill(~valid, float("-inf"))
        has_source = valid.any(dim=-1)
        # an image without any valid source: avoid the NaN of softmax(all -inf); its rows become 0
        bias = torch.where(has_source[:, None], bias, torch.zeros_like(bias))
    logits = torch.addcmul(bias[:, None, None, :], d2, -theta.to(d2.dtype).view(1, -1, 1, 1))
    kernels = torch.softmax(logits, dim=-1)
    if has_source is not None and not bool(has_source.all()):
        kernels = kernels * has_source[:, None, None, None].to(kernels.dtype)
    return kernels


class BilateralInception(nn.Module):
    """H learned bilateral filters on ``channels`` channels with learned combination.

    Parameters
    ----------
    channels : int
        Channels C of the filtered values.
    spaces : sequence of str
        Feature subspace of each of the H filters, e.g. ``("rgbxy", "xy")`` for BI6(2) and
        ``("rgbxy", "xy") * 3`` for BI7(6) of the released model (spec section 2 item 7).
    theta_init : float or sequence of float
        Initial scales (spec: 1). ``theta = relu(theta_raw)`` keeps them non-negative.
    weight_init : float or "normal"
        Initial combination weights ``w_h`` (shape (H, C)): a constant (spec BI6: 1) or
        ``"normal"``, N(0, ``weight_std``^2) (spec BI7: std 0.001).
    weight_std : float
        Std of the ``"normal"`` initialisation.
    xy_dim : int
        Number of leading transformed feature channels that form the "xy" space.

    Shapes
    ------
    ``forward(values (B, C, P), source (B, D, P), target (B, D, Q), source_mask (B, P),
    target_mask (B, Q), *, source_counts (B, P)) -> (B, C, Q)``; with ``source_counts``, ``values``
    are the per-source *means* of the points each source stands for (see :func:`bilateral_kernels`).
    """

    def __init__(self, channels: int, spaces: Sequence[str] = ("rgbxy", "xy"), *, theta_init=1.0,
                 weight_init=1.0, weight_std: float = 1e-3, xy_dim: int = XY_DIM):
        super().__init__()
        spaces = tuple(spaces)
        if not spaces:
            raise ValueError("a BI module needs at least one filter")
        for s in spaces:
            _space_slice(s, xy_dim)  # validates
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.spaces = spaces
        self.channels = channels
        self.xy_dim = xy_dim
        theta = torch.as_tensor(theta_init, dtype=torch.float32).flatten()
        if theta.numel() == 1:
            theta = theta.expand(len(spaces)).clone()
        if theta.shape != (len(spaces),) or not torch.isfinite(theta).all() or (theta < 0).any():
            raise ValueError(f"theta_init must be one non-negative value or {len(spaces)} of them, got {theta_init!r}")
        self.theta_raw = nn.Parameter(theta)
        if isinstance(weight_init, str):
            if weight_init != "normal":
                raise ValueError(f"weight_init must be a number or 'normal', got {weight_init!r}")
            w = torch.randn(len(spaces), channels) * weight_std
        else:
            w = torch.full((len(spaces), channels), float(weight_init))
        self.weight = nn.Parameter(w)

    @property
    def num_filters(self) -> int:
        return len(self.spaces)

    @property
    def theta(self) -> torch.Tensor:
        """The scales actually used: ``relu(theta_raw)`` (as the original's ReLU on its scales)."""
        return F.relu(self.theta_raw)

    def kernels(self, source, target, source_mask=None, source_counts=None) -> torch.Tensor:
        """``(B, H, Q, P)`` normalised kernels (see :func:`bilateral_kernels`)."""
        return bilateral_kernels(source, target, self.theta.to(source.dtype), self.spaces,
                                 source_mask=source_mask, source_counts=source_counts, xy_dim=self.xy_dim)

    def forward(self, values: torch.Tensor, source: torch.Tensor, target: torch.Tensor,
                source_mask: torch.Tensor | None = None, target_mask: torch.Tensor | None = None, *,
                source_counts: torch.Tensor | None = None) -> torch.Tensor:
        if values.ndim != 3 or values.shape[1] != self.channels:
            raise ValueError(f"values must be (B, {self.channels}, P), got {tuple(values.shape)}")
        if source.ndim != 3 or target.ndim != 3 or source.shape[:2] != target.shape[:2] \
                or source.shape[0] != values.shape[0] or source.shape[2] != values.shape[2]:
            raise ValueError(f"source features {tuple(source.shape)}, target features {tuple(target.shape)} and "
                             f"values {tuple(values.shape)} do not match: expected (B, D, P), (B, D, Q), (B, C, P)")
        k = self.kernels(source, target, source_mask, source_counts)  # (B, H, Q, P)
        # (B, 1, C, P) @ (B, H, P, Q): the transposed kernel is a strided view (no copy of the
        # large Q x P kernels; only the small values are broadcast over the H filters)
        filtered = torch.matmul(values.unsqueeze(1), k.transpose(-1, -2))  # (B, H, C, Q)
        out = torch.einsum("bhcq,hc->bcq", filtered, self.weight.to(filtered.dtype))
        if target_mask is not None:
            out = out * target_mask.to(out.dtype).unsqueeze(1)
        return out

    def extra_repr(self) -> str:
        return f"channels={self.channels}, spaces={self.spaces}"
