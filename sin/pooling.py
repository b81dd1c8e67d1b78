"""Pixel <-> superpixel pooling for hard label maps and soft (differentiable) assignments.

An :class:`Assignment` says, for every pixel, which superpixels it belongs to and with which
weight: ``S`` slots per pixel, ``index`` the superpixel id of each slot and ``weight`` its
share (summing to 1 over the slots). A hard label map is the case ``S = 1``, weight 1; SIN's
soft interpolation gives ``S = 4`` (the seeds at the corners of the pixel's grid cell). Both go
through the same :func:`superpixel_pool` / :func:`superpixel_unpool`, so a downstream module
written for hard superpixels back-propagates into SIN unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Assignment", "superpixel_pool", "superpixel_unpool"]


@dataclass(frozen=True)
class Assignment:
    """Pixel-to-superpixel assignment of a batch.

    Attributes
    ----------
    index : (B, S, H, W) int64 tensor
        Superpixel id of each slot, in ``0..num_superpixels-1``.
    weight : (B, S, H, W) float tensor
        Weight of each slot; sums to 1 over ``S`` for every pixel.
    num_superpixels : int
        Number of superpixel slots K (the same for the whole batch; images with fewer
        superpixels simply leave some slots empty).
    """

    index: torch.Tensor
    weight: torch.Tensor
    num_superpixels: int

    def __post_init__(self):
        if self.index.shape != self.weight.shape or self.index.ndim != 4:
            raise ValueError(
                f"index and weight must both be (B, S, H, W); got {tuple(self.index.shape)} "
                f"and {tuple(self.weight.shape)}"
            )
        if 0 in self.index.shape:  # nothing to pool: every later step would fail obscurely
            raise ValueError(f"an Assignment needs a non-empty (B, S, H, W) index, got shape {tuple(self.index.shape)}")
        if isinstance(self.num_superpixels, bool) or int(self.num_superpixels) < 1:
            raise ValueError(f"num_superpixels must be >= 1, got {self.num_superpixels!r}")

    @classmethod
    def from_labels(cls, labels: torch.Tensor, num_superpixels: int | None = None,
                    dtype: torch.dtype = torch.float32) -> Assignment:
        """Hard assignment from a ``(B, H, W)`` or ``(H, W)`` integer label tensor."""
        if not isinstance(labels, torch.Tensor):
            labels = torch.as_tensor(labels)
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
        if labels.ndim == 2:
            labels = labels.unsqueeze(0)
        if labels.ndim != 3:
            raise ValueError(f"labels must be (B, H, W) or (H, W), got shape {tuple(labels.shape)}")
        if labels.numel() == 0:
            raise ValueError(f"labels are empty (shape {tuple(labels.shape)}): no pixel to assign")
        if int(labels.min()) < 0:
            raise ValueError("labels must be non-negative")
        k = int(labels.max()) + 1 if num_superpixels is None else int(num_superpixels)
        if labels.numel() and int(labels.max()) >= k:
            raise ValueError(f"label {int(labels.max())} out of range for num_superpixels={k}")
        index = labels.long().unsqueeze(1)
        return cls(index=index, weight=torch.ones(index.shape, dtype=dtype, device=index.device),
                   num_superpixels=k)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.index.shape[-2:])

    def hard_labels(self) -> torch.Tensor:
        """``(B, H, W)`` int64: the superpixel of each pixel's largest weight."""
        best = self.weight.argmax(dim=1, keepdim=True)
        return self.index.gather(1, best).squeeze(1)

    def to_dense(self) -> torch.Tensor:
        """Dense ``(B, K, H, W)`` assignment matrix (memory K*H*W: small problems only)."""
        b, _, h, w = self.index.shape
        dense = self.weight.new_zeros((b, self.num_superpixels, h, w))
        return dense.scatter_add(1, self.index, self.weight)

    def mass(self) -> torch.Tensor:
        """``(B, K)`` total weight of every superpixel (its soft area in pixels; 0 = empty)."""
        b = self.index.shape[0]
        out = self.weight.new_zeros((b, self.num_superpixels))
        return out.scatter_add(1, self.index.reshape(b, -1), self.weight.reshape(b, -1))


def superpixel_pool(features: torch.Tensor, assignment: Assignment, *, eps: float = 1e-8):
    """Weighted mean of pixel features per superpixel.

    Parameters
    ----------
    features : (B, C, H, W) tensor
    assignment : Assignment
        With the same ``(H, W)`` as ``features``.

    Returns
    -------
    pooled : (B, C, K) tensor
        ``sum_p w_pk f_p / sum_p w_pk``; zero for empty superpixels.
    mass : (B, K) tensor
        ``sum_p w_pk``; ``mass > 0`` marks the superpixels that exist.

    Raises
    ------
    ValueError
        ``features`` not a ``(B, C, H, W)`` tensor (e.g. ``(C, H, W)``: add the batch axis with
        ``features[None]``), or an assignment of another size or batch.
    """
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"features must be a torch tensor (B, C, H, W), got {type(features).__name__}")
    if features.ndim != 4:
        hint = ": add the batch axis with features[None]" if features.ndim == 3 else ""
        raise ValueError(f"features must be (B, C, H, W), got shape {tuple(features.shape)}{hint}")
    if not isinstance(assignment, Assignment):
        raise ValueError(f"assignment must be an Assignment (Assignment.from_labels(labels) for a label map), "
                         f"got {type(assignment).__name__}")
    b, c, h, w = features.shape
    if assignment.shape != (h, w) or assignment.index.shape[0] not in (1, b):
        raise ValueError(
            f"assignment of shape {tuple(assignment.index.shape)} does not match features {tuple(features.shape)}"
        )
    s = assignment.index.shape[1]
    index = assignment.index.expand(b, -1, -1, -1).reshape(b, 1, s * h * w)
    weight = assignment.weight.expand(b, -1, -1, -1).to(features.dtype)
    weighted = (features.unsqueeze(2) * weight.unsqueeze(1)).reshape(b, c, s * h * w)
    sums = features.new_zeros((b, c, assignment.num_superpixels))
    sums = sums.scatter_add(2, index.expand(b, c, -1), weighted)
    mass = features.new_zeros((b, assignment.num_superpixels))
    mass = mass.scatter_add(1, index[:, 0], weight.reshape(b, -1))
    pooled = sums / mass.clamp_min(eps).unsqueeze(1)
    return pooled, mass


def superpixel_unpool(sp_features: torch.Tensor, assignment: Assignment) -> torch.Tensor:
    """Spread superpixel features back to pixels: ``f_p = sum_k w_pk g_k``.

    Parameters
    ----------
    sp_features : (B, C, K) tensor
    assignment : Assignment

    Returns
    -------
    (B, C, H, W) tensor
    """
    b, c, k = sp_features.shape
    if k != assignment.num_superpixels:
        raise ValueError(f"sp_features has {k} superpixels, assignment has {assignment.num_superpixels}")
    _, s, h, w = assignment.index.shape
    index = assignment.index.expand(b, -1, -1, -1).reshape(b, 1, s * h * w).expand(b, c, -1)
    gathered = sp_features.gather(2, index).reshape(b, c, s, h, w)
    weight = assignment.weight.expand(b, -1, -1, -1).to(sp_features.dtype).unsqueeze(1)
    return (gathered * weight).sum(dim=2)
