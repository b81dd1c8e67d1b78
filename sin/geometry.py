"""Seed-grid geometry: how many superpixels, at which network input size.

A network input of ``(16n - 15) x (16m - 15)`` pixels gives an ``n x m`` seed grid, and after
four expansions (``k -> 2k - 1`` per axis) a label map of exactly the input size with exactly
``n * m`` superpixels (``../shared/specs/sin.md`` section 1).
"""

from __future__ import annotations

import math

from .image import check_n_segments
from .model import STRIDE

__all__ = ["grid_shape", "network_size", "level_shapes"]


def _grid_from_rows(k: int, height: int, width: int) -> tuple[int, int]:
    n = max(1, min(height, int(round(math.sqrt(k * height / width)))))
    m = max(1, min(width, int(round(k / n))))
    return n, m


def grid_shape(n_segments: int, height: int, width: int) -> tuple[int, int]:
    """Seed grid ``(n, m)`` for about ``n_segments`` superpixels on an ``height x width`` image.

    Grid cells are about square in the image: the seed count along the **shorter** side is
    ``round(sqrt(K * short / long))`` and the other one ``round(K / that)``. Both are clamped to
    ``1..H`` and ``1..W`` (there can never be more seed rows than pixel rows), so
    ``n * m <= H * W``: asking for more superpixels than pixels is clamped, not an error. For
    BSDS500 (321 x 481) and K = 600 this gives the paper's 20 x 30.

    The rule is symmetric: ``grid_shape(K, W, H)`` is ``grid_shape(K, H, W)`` transposed. (Earlier
    versions derived ``n`` first also on portrait images, which rounds the longer side's count
    and then divides: 158 superpixels instead of 100 for K = 100 on a 2000 x 8 image.) When
    rounding along the longer side happens to land closer to ``K``, that grid is taken; ties keep
    the shorter-side rule (for landscape and square images the rule used before; in 20,000 random
    landscape shapes and counts no grid changed, while portrait images now get the transposed
    landscape grid).
    """
    k = check_n_segments(n_segments)
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    rows_first = _grid_from_rows(k, height, width)
    m, n = _grid_from_rows(k, width, height)
    cols_first = (n, m)
    short_first, other = (rows_first, cols_first) if height <= width else (cols_first, rows_first)
    if abs(other[0] * other[1] - k) < abs(short_first[0] * short_first[1] - k):
        return other
    return short_first


def network_size(n: int, m: int) -> tuple[int, int]:
    """Network input size ``(16n - 15, 16m - 15)`` for an ``n x m`` seed grid."""
    if n < 1 or m < 1:
        raise ValueError(f"seed grid must be at least 1x1, got {n}x{m}")
    return STRIDE * n - (STRIDE - 1), STRIDE * m - (STRIDE - 1)


def level_shapes(n: int, m: int) -> dict[str, tuple[int, int]]:
    """Map size after every step of :data:`sin.model.STEPS` for an ``n x m`` seed grid."""
    shapes = {}
    h, w = n, m
    for level in (3, 2, 1, 0):
        w = 2 * w - 1
        shapes[f"{level}h"] = (h, w)
        h = 2 * h - 1
        shapes[f"{level}v"] = (h, w)
    return shapes
