"""``sin``: SIN superpixels (4-connected by construction) through the provider interface.

Its weights are one parameter: ``None`` (the shipped BSDS500 weights), a path to a weights file
or delta, ``"untrained"``, or a *tag* naming a shipped file with a recorded sha256
(``sin:weights=msrc21``; see :mod:`sin.providers.weights`). Adding a tag is one line,
``SIN_WEIGHTS.add_tag(...)`` below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checkpoint import DEFAULT_WEIGHTS
from ..inference import resolve_precision, superpixels
from .params import Choice, Device
from .registry import register_alias, register_provider
from .weights_delta import full_weights_file, merged_weights_file
from .weights import WeightsInfo


def shipped_weights():
    """The weights file shipped in the package (a module-level function: providers pickle)."""
    return DEFAULT_WEIGHTS


def merged_delta(path: Path, sha256: str) -> Path:
    """``prepare`` of a delta tag: its full weights file (merged once, in the cache)."""
    return merged_weights_file(path, expected_sha256=sha256)


#: Provenance of the shipped weights and the named ones (their sha256 enters the fingerprint).
SIN_WEIGHTS = WeightsInfo(
    param="weights", default=shipped_weights,
    source="trained with this toolkit on BSDS500 train+val (python -m sin train --preset cpu; results/training)",
    licence="same licence as this toolkit", words=("untrained",))

# ---- weights tags: one line each. `version` keeps msrc21's maps keyed as when it was the provider
# `sin_msrc21` ("sin_msrc21", version 1): bump it together with this provider's version.
# Regenerate a delta with the commands in results/semseg/README.md, then update its sha256 here.
SIN_WEIGHTS.add_tag(
    "msrc21", "sin_msrc21_delta.pt", "be5ec46698aa67c4914f4442b9a19eb5ccff4fe5202b3c757e8ed0d27e1017d7",
    version="1", prepare=merged_delta, licence="same licence as this toolkit",
    source="SIN's decoder trained end to end through a Bilateral Inception head on MSRC-21 train, the seed "
           "selected on val (results/semseg/README.md); a delta on the shipped weights",
    description="SIN fine-tuned for MSRC-21 semantic segmentation (end to end through BI)")
SIN_WEIGHTS.add_tag(
    "small", "sin_small.pt", "6e94109daae0f938684f3d2773ec0fd64607ef36f3c726793846a7497d9702a0",
    licence="same licence as this toolkit",
    source="width 0.5, depth 1 (1/7 of SIN's FLOPs) distilled from the shipped SIN on 150 BSDS500 train images "
           "(python -m sin train --preset distill-small); snapshot selected on the 50 held-out train images of "
           "sin/data/small_sin_holdout.txt by the rule in results/small_sin/SELECTION.md",
    description="small SIN: about 2.4x faster network, ASA within 0.002 of SIN on BSDS500 (results/small_sin)")


def resolved_params(params: dict) -> dict:
    """Parameters as the fingerprint must see them: ``precision="auto"`` replaced by what it
    resolves to on this machine and device (``"bf16"`` or ``"fp32"``), so that maps cached with
    bf16 are never reused for fp32 or the other way round."""
    out = dict(params)
    out["precision"] = resolve_precision(out.get("precision", "auto"), out.get("device", "cpu"))
    return out


@register_provider("sin", connected=True, connectivity="by construction", version="2",
                   description="SIN (Yuan et al. 2021): seed grid grown by learned interpolation",
                   weights=SIN_WEIGHTS, resolve_params=resolved_params,
                   params={"device": Device(help="where the network runs"),
                           "precision": Choice("auto", "bf16", "fp32", help="network arithmetic (auto: bf16 where "
                                                                            "the hardware runs it natively)")})
def sin_superpixels(image: np.ndarray, n_segments: int, *, weights=None, device="cpu",
                    precision="auto") -> np.ndarray:
    """SIN with the shipped weights (or ``weights``); grid chosen by :func:`sin.geometry.grid_shape`.

    ``precision``: ``"fp32"`` (reference), ``"bf16"`` or ``"auto"`` (bf16 where the CPU/GPU runs
    it natively; see :func:`sin.inference.resolve_precision`), e.g. ``--provider sin:precision=fp32``.
    Maps stay 4-connected at the input resolution; when the network grid is larger than the
    image the down-sampled map is repaired (see :mod:`sin.inference`).
    """
    return superpixels(image, n_segments, weights=full_weights_file(weights), device=device, precision=precision)


register_alias("sin_msrc21", "sin", weights="msrc21")  # the former provider name of sin:weights=msrc21
