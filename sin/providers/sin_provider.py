"""``sin``: SIN superpixels (4-connected by construction) through the provider interface."""

from __future__ import annotations

import numpy as np

from ..inference import superpixels
from ..checkpoint import DEFAULT_WEIGHTS
from .registry import WeightsInfo, register_provider

#: Provenance of the shipped weights (recorded in the registry; their sha256 enters the fingerprint).
SIN_WEIGHTS = WeightsInfo(
    param="weights", default=lambda: DEFAULT_WEIGHTS,
    source="trained with this toolkit on BSDS500 train+val (python -m sin train --preset cpu; results/training)",
    licence="same licence as this toolkit")


@register_provider("sin", connected=True, connectivity="by construction",
                   description="SIN (Yuan et al. 2021): seed grid grown by learned interpolation",
                   weights=SIN_WEIGHTS,
                   code=("sin.providers.sin_provider", "sin.inference", "sin.model", "sin.fast_model",
                         "sin.interpolation", "sin.geometry", "sin.image", "sin.checkpoint", "sin.connectivity"))
def sin_superpixels(image: np.ndarray, n_segments: int, *, weights=None, device="cpu") -> np.ndarray:
    """SIN with the shipped weights (or ``weights``); grid chosen by :func:`sin.geometry.grid_shape`.

    Maps stay 4-connected at the input resolution; when the network grid is larger than the
    image the down-sampled map is repaired (see :mod:`sin.inference`).
    """
    return superpixels(image, n_segments, weights=weights, device=device)
