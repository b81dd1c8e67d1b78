"""Growing the seed grid into a full label map: hard and differentiable interpolation.

Every step inserts one new element between each pair of neighbours along one axis; the new
element takes the label of one of its two axis-aligned neighbours (hard) or a mixture of
them (soft). Since a new element always joins a region it touches along the axis, every
region stays 4-connected and every seed keeps its label: an ``n x m`` grid yields exactly
``n * m`` 4-connected superpixels (paper section 3.3).

The functions work on batches ``(B, ...)``, on any device, without Python loops over pixels.
Logits follow :class:`sin.model.SINNet`: channel 0 = left/top, channel 1 = right/bottom,
ties go to channel 0 as ``argmax`` does in the original code.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np
import torch

from .model import STEPS, STRIDE
from .pooling import Assignment

__all__ = [
    "seed_map",
    "grid_from_logits",
    "logits_to_decisions",
    "expand",
    "hard_interpolate",
    "hard_interpolate_decisions",
    "soft_interpolate",
]


def seed_map(n: int, m: int, batch: int = 1, device=None) -> torch.Tensor:
    """Initial map ``M0``: ``(batch, n, m)`` int32 ids ``0..n*m-1`` in row-major order."""
    ids = torch.arange(n * m, dtype=torch.int32, device=device).reshape(1, n, m)
    return ids.expand(batch, n, m)


def grid_from_logits(logits: Sequence[torch.Tensor]) -> tuple[int, int]:
    """Seed grid ``(n, m)`` from the first (``"3h"``) logits, whose map is ``n x (2m - 1)``."""
    if len(logits) != len(STEPS):
        raise ValueError(f"expected {len(STEPS)} logit tensors (one per step), got {len(logits)}")
    h, w = logits[0].shape[-2:]
    if w % 2 != 1:
        raise ValueError(f"logits of step 3h must have an odd width 2m-1, got {w}")
    return int(h), (int(w) + 1) // 2


def _interleave(even: torch.Tensor, odd: torch.Tensor, dim: int) -> torch.Tensor:
    """``out[2k] = even[k]``, ``out[2k+1] = odd[k]`` along ``dim`` (len(odd) = len(even) - 1)."""
    dim = dim % even.ndim
    pad_shape = list(odd.shape)
    pad_shape[dim] = 1
    odd = torch.cat([odd, odd.new_zeros(pad_shape)], dim=dim)
    both = torch.stack([even, odd], dim=dim + 1)
    shape = list(even.shape)
    shape[dim] = 2 * even.shape[dim]
    return both.reshape(shape).narrow(dim, 0, 2 * even.shape[dim] - 1)


def logits_to_decisions(logits: torch.Tensor, axis: str) -> torch.Tensor:
    """Boolean "take the right/bottom neighbour" at the inserted (odd) positions of one step."""
    if axis == "h":
        sel = logits[:, :, :, 1::2]
    elif axis == "v":
        sel = logits[:, :, 1::2, :]
    else:
        raise ValueError(f"axis must be 'h' or 'v', got {axis!r}")
    return sel[:, 1] > sel[:, 0]


def expand(labels: torch.Tensor, take_next: torch.Tensor, axis: str) -> torch.Tensor:
    """One hard interpolation step.

    Parameters
    ----------
    labels : (B, h, w) tensor
        Current map.
    take_next : (B, h, w-1) or (B, h-1, w) bool tensor
        For every inserted element, whether it takes the right (``"h"``) or bottom (``"v"``)
        neighbour's label instead of the left/top one.
    axis : {"h", "v"}
    """
    dim = -1 if axis == "h" else -2
    n = labels.shape[dim]
    prev = labels.narrow(dim, 0, n - 1)
    nxt = labels.narrow(dim, 1, n - 1)
    if take_next.shape != prev.shape:
        raise ValueError(f"decision shape {tuple(take_next.shape)} does not match {tuple(prev.shape)}")
    return _interleave(labels, torch.where(take_next, nxt, prev), dim)


def hard_interpolate_decisions(decisions: Sequence[torch.Tensor], n: int, m: int) -> torch.Tensor:
    """Hard label map from per-step decisions (see :func:`logits_to_decisions`)."""
    batch = decisions[0].shape[0]
    labels = seed_map(n, m, batch, device=decisions[0].device)
    for step, dec in zip(STEPS, decisions):
        labels = expand(labels, dec, step[1])
    return labels


def hard_interpolate(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Hard SIN label map ``(B, 16n-15, 16m-15)`` int32 with ids ``0..n*m-1`` from 8 logit maps."""
    n, m = grid_from_logits(logits)
    decisions = [logits_to_decisions(lg, step[1]) for step, lg in zip(STEPS, logits)]
    return hard_interpolate_decisions(decisions, n, m)


# ---------------------------------------------------------------------------------------------
# Soft interpolation
#
# Every element of the map at full-resolution position (y, x) can only ever take the label of
# one of the 4 seeds at the corners of its grid cell (cy, cx) = (y // 16, x // 16), clamped to
# the last cell. (An element on a seed column x = 16j only ever receives labels from column j,
# through vertical steps; likewise for seed rows.) So a soft assignment is 4 probabilities per
# pixel over the slots [TL, TR, BL, BR] of its own cell. A new element's neighbour lies in the
# same cell except when it sits on the next cell border (x or y a multiple of 16), where its
# whole mass is on its own seed column (row); its mass then moves to the new element's right
# (bottom) slots. The step is linear in the neighbours, so gradients flow into the logits.
# ---------------------------------------------------------------------------------------------

def _collapse(q: torch.Tensor, axis: str) -> torch.Tensor:
    """Move all mass to the right (``"h"``) or bottom (``"v"``) slots of the cell."""
    tl, tr, bl, br = q.unbind(1)
    zero = torch.zeros_like(tl)
    if axis == "h":
        return torch.stack([zero, tl + tr, zero, bl + br], dim=1)
    return torch.stack([zero, zero, tl + bl, tr + br], dim=1)


def _soft_step(q: torch.Tensor, prob_next: torch.Tensor, axis: str, spacing: int) -> torch.Tensor:
    """One soft step; ``spacing`` is the distance (full-res pixels) between existing elements."""
    dim = -1 if axis == "h" else -2
    n = q.shape[dim]
    prev = q.narrow(dim, 0, n - 1)
    nxt = q.narrow(dim, 1, n - 1)
    # neighbours at positions (k+1)*spacing that are multiples of STRIDE are on the next border
    pos = (torch.arange(1, n, device=q.device) * spacing) % STRIDE == 0
    shape = [1] * q.ndim
    shape[dim] = n - 1
    nxt = torch.where(pos.reshape(shape), _collapse(nxt, axis), nxt)
    p1 = prob_next.unsqueeze(1)
    new = (1 - p1) * prev + p1 * nxt
    return _interleave(q, new, dim)


def _slot_index(n: int, m: int, height: int, width: int, device) -> torch.Tensor:
    """Seed id of each slot [TL, TR, BL, BR] at every full-resolution pixel: ``(4, H, W)``."""
    y = torch.arange(height, device=device)
    x = torch.arange(width, device=device)
    cy = torch.clamp(y // STRIDE, max=max(n - 2, 0))
    cx = torch.clamp(x // STRIDE, max=max(m - 2, 0))
    rows = [torch.clamp(cy + d, max=n - 1) for d in (0, 1)]
    cols = [torch.clamp(cx + d, max=m - 1) for d in (0, 1)]
    idx = [rows[dy][:, None] * m + cols[dx][None, :] for dy in (0, 1) for dx in (0, 1)]
    return torch.stack(idx, dim=0)


def _initial_slots(n: int, m: int, batch: int, device, dtype) -> torch.Tensor:
    i = torch.arange(n, device=device)
    j = torch.arange(m, device=device)
    dy = i - torch.clamp(i, max=max(n - 2, 0))
    dx = j - torch.clamp(j, max=max(m - 2, 0))
    slot = 2 * dy[:, None] + dx[None, :]
    q = torch.nn.functional.one_hot(slot, 4).permute(2, 0, 1).to(dtype)
    return q.unsqueeze(0).expand(batch, 4, n, m).contiguous()


def _check_logits(logits) -> tuple[int, int]:
    """The seed grid ``(n, m)`` of SIN's 8 logit maps after checking them: torch tensors
    ``(B, 2, H_i, W_i)`` of one batch size and device, in :data:`sin.model.STEPS` order, each of
    the size its step makes from the first (``ValueError`` naming the step otherwise)."""
    if isinstance(logits, torch.Tensor) or not isinstance(logits, Sequence) or len(logits) != len(STEPS):
        got = f"a tensor of shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else \
            f"{len(logits)} items" if isinstance(logits, Sequence) else type(logits).__name__
        raise ValueError(f"logits must be a sequence of {len(STEPS)} tensors, one per step {STEPS} "
                         f"(the output of SINNet), got {got}")
    for step, lg in zip(STEPS, logits):
        if not isinstance(lg, torch.Tensor):
            hint = " (convert with torch.from_numpy)" if isinstance(lg, np.ndarray) else ""
            raise ValueError(f"logits of step {step} must be a torch tensor, got {type(lg).__name__}{hint}")
        if lg.ndim != 4 or lg.shape[1] != 2:
            raise ValueError(f"logits of step {step} must be (B, 2, H, W), got shape {tuple(lg.shape)}")
        if lg.shape[0] != logits[0].shape[0] or lg.device != logits[0].device:
            raise ValueError(f"logits of step {step} have batch {lg.shape[0]} on {lg.device}, step {STEPS[0]} "
                             f"has batch {logits[0].shape[0]} on {logits[0].device}")
    n, m = grid_from_logits(logits)
    rows = cols = 1  # the map of step "<level><axis>" is (rows (n-1) + 1) x (cols (m-1) + 1)
    for step, lg in zip(STEPS, logits):
        cols, rows = (cols * 2, rows) if step[1] == "h" else (cols, rows * 2)
        want = (rows * (n - 1) + 1, cols * (m - 1) + 1)
        if tuple(lg.shape[-2:]) != want:
            raise ValueError(f"logits of step {step} have size {tuple(lg.shape[-2:])}, expected {want} for a "
                             f"{n}x{m} seed grid: the logits must be in the order {STEPS} (as SINNet returns them)")
    return n, m


def soft_interpolate(logits: Sequence[torch.Tensor], *, temperature: float = 1.0) -> Assignment:
    """Differentiable SIN assignment of every pixel to the (at most 4) seeds of its grid cell.

    Parameters
    ----------
    logits : sequence of 8 tensors
        Network outputs, one per step of :data:`sin.model.STEPS`.
    temperature : float, optional
        Softmax temperature of the association scores; as it goes to 0 the assignment tends to
        the hard map of :func:`hard_interpolate`.

    Returns
    -------
    Assignment
        ``weight`` ``(B, 4, H, W)`` (sums to 1 over the 4 slots), ``index`` the seed id of each
        slot, ``num_superpixels = n * m``. Use it with :func:`sin.pooling.superpixel_pool` /
        :func:`sin.pooling.superpixel_unpool`.

    Raises
    ------
    ValueError
        ``logits`` that are not SINNet's 8 tensors in step order (numpy arrays, a wrong count,
        shape, batch size or order; the message names the step), or a bad ``temperature``.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0 \
            or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    n, m = _check_logits(logits)
    batch = logits[0].shape[0]
    dtype = logits[0].dtype if logits[0].is_floating_point() else torch.float32
    q = _initial_slots(n, m, batch, logits[0].device, dtype)
    spacing = STRIDE
    for step, lg in zip(STEPS, logits):
        axis = step[1]
        odd = lg[:, :, :, 1::2] if axis == "h" else lg[:, :, 1::2, :]
        prob_next = torch.softmax(odd / temperature, dim=1)[:, 1]
        q = _soft_step(q, prob_next, axis, spacing)
        if axis == "v":
            spacing //= 2
    height, width = q.shape[-2:]
    index = _slot_index(n, m, height, width, q.device)
    return Assignment(index=index.unsqueeze(0).expand(batch, -1, -1, -1), weight=q, num_superpixels=n * m)
