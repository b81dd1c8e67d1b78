"""``sin``: SIN superpixels (4-connected by construction) through the provider interface."""

from __future__ import annotations

import numpy as np

from ..checkpoint import DEFAULT_WEIGHTS
from ..inference import resolve_precision, superpixels
from .registry import WeightsInfo, register_provider

def shipped_weights():
    """The weights file shipped in the package (a module-level function: providers pickle)."""
    return DEFAULT_WEIGHTS


#: Provenance of the shipped weights (recorded in the registry; their sha256 enters the fingerprint).
SIN_WEIGHTS = WeightsInfo(
    param="weights", default=shipped_weights,
    source="trained with this toolkit on BSDS500 train+val (python -m sin train --preset cpu; results/training)",
    licence="same licence as this toolkit")


def resolved_params(params: dict) -> dict:
    """Parameters as the fingerprint must see them: ``precision="auto"`` replaced by what it
    resolves to on this machine and device (``"bf16"`` or ``"fp32"``), so that maps cached with
    bf16 are never reused for fp32 or the other way round."""
    out = dict(params)
    out["precision"] = resolve_precision(out.get("precision", "auto"), out.get("device", "cpu"))
    return out


@register_provider("sin", connected=True, connectivity="by construction",
                   description="SIN (Yuan et al. 2021): seed grid grown by learned interpolation",
                   weights=SIN_WEIGHTS,
                   code=("sin.providers.sin_provider", "sin.inference", "sin.model", "sin.fast_model",
                         "sin.interpolation", "sin.geometry", "sin.image", "sin.checkpoint", "sin.connectivity"),
                   version="2", resolve_params=resolved_params)
def sin_superpixels(image: np.ndarray, n_segments: int, *, weights=None, device="cpu",
                    precision="auto") -> np.ndarray:
    """SIN with the shipped weights (or ``weights``); grid chosen by :func:`sin.geometry.grid_shape`.

    ``precision``: ``"fp32"`` (reference), ``"bf16"`` or ``"auto"`` (bf16 where the CPU/GPU runs
    it natively; see :func:`sin.inference.resolve_precision`), e.g. ``--provider sin:precision=fp32``.
    Maps stay 4-connected at the input resolution; when the network grid is larger than the
    image the down-sampled map is repaired (see :mod:`sin.inference`).
    """
    return superpixels(image, n_segments, weights=weights, device=device, precision=precision)
