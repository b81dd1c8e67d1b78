"""``sin``: SIN superpixels (4-connected by construction) through the provider interface."""

from __future__ import annotations

import numpy as np

from ..inference import superpixels
from .registry import register_provider


@register_provider("sin", connected=True, connectivity="by construction",
                   description="SIN (Yuan et al. 2021): seed grid grown by learned interpolation",
                   defaults={"weights": None, "device": "cpu"})
def sin_superpixels(image: np.ndarray, n_segments: int, *, weights=None, device="cpu") -> np.ndarray:
    """SIN with the shipped weights (or ``weights``); grid chosen by :func:`sin.geometry.grid_shape`.

    Maps stay 4-connected at the input resolution; when the network grid is larger than the
    image the down-sampled map is repaired (see :mod:`sin.inference`).
    """
    return superpixels(image, n_segments, weights=weights, device=device)
