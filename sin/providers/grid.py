"""``grid``: the regular grid, the trivial baseline every method should beat (except on CO)."""

from __future__ import annotations

import numpy as np

from ..geometry import grid_shape
from .registry import register_provider


@register_provider("grid", connected=True, connectivity="by construction", extra=True, version="1",
                   description="regular n x m grid of rectangles (trivial baseline)")
def grid_superpixels(image: np.ndarray, n_segments: int) -> np.ndarray:
    """An ``n x m`` grid with the same ``(n, m)`` rule as SIN (:func:`sin.geometry.grid_shape`)."""
    h, w = image.shape[:2]
    n, m = grid_shape(n_segments, h, w)
    rows = (np.arange(h) * n) // h
    cols = (np.arange(w) * m) // w
    return (rows[:, None] * m + cols[None, :]).astype(np.int32)
