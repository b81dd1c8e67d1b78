"""Saliency-map scores as in the SO code (MAE) plus S-, F- and E-measure (pysodmetrics).

The SO code saves every map as an 8-bit PNG and computes MAE on the re-read file
(``CalMAE``): ``mean |im2double(S) - G|`` with ``G = GT > 128``, then averages the per-image
values (``CalMeanMAE``). :func:`quantize_map` reproduces the 8-bit round trip.

Every dataset score is a mean over images of a per-image value or curve (pysodmetrics averages
per-image F / E curves over images, then takes their max / mean), so :func:`image_scores` can run
in worker processes and :func:`aggregate_scores` gives the same numbers as one
:class:`SaliencyScores` stepping through the images in the same order.
"""

from __future__ import annotations

import numpy as np
import py_sod_metrics

__all__ = ["quantize_map", "mean_absolute_error", "image_scores", "aggregate_scores", "SaliencyScores"]


def quantize_map(saliency_map) -> np.ndarray:
    """``im2uint8``: a map in [0, 1] -> uint8 with round half up (what ``imwrite`` stores).

    Raises
    ------
    ValueError
        Not 2-D, NaN, or values outside [0, 1].
    """
    s = np.asarray(saliency_map)
    if s.ndim != 2:
        raise ValueError(f"saliency map must be 2-D, got shape {s.shape}")
    if s.dtype == np.uint8:
        return s
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError("saliency map contains NaN or infinite values")
    if s.size and (s.min() < -1e-6 or s.max() > 1 + 1e-6):
        raise ValueError(f"saliency map must lie in [0, 1], got [{s.min():.4g}, {s.max():.4g}]")
    return np.clip(np.floor(s * 255.0 + 0.5), 0, 255).astype(np.uint8)


def _check_pair(pred_u8: np.ndarray, gt: np.ndarray):
    gt = np.asarray(gt)
    if gt.dtype != bool:
        raise ValueError(f"ground truth must be a boolean mask (use datasets.read_mask), got {gt.dtype}")
    if pred_u8.shape != gt.shape:
        raise ValueError(f"saliency map shape {pred_u8.shape} does not match ground truth {gt.shape}")
    return gt


def mean_absolute_error(saliency_map, gt) -> float:
    """``CalMAE`` of one image: ``mean |q / 255 - gt|`` with ``q`` the 8-bit map."""
    q = quantize_map(saliency_map)
    gt = _check_pair(q, gt)
    return float(np.mean(np.abs(q / 255.0 - gt)))


def image_scores(saliency_map, gt) -> dict:
    """Scores of one image: ``mae``, ``s_measure``, ``f_curve`` and ``e_curve`` (256 thresholds each).

    Also the per-image summaries ``max_f`` (max of the image's own F curve) and ``mean_e``
    (mean of its E curve). The dataset's mean E equals the mean of the per-image ``mean_e``;
    the dataset's max F is the max of the *mean* curve, not the mean of per-image ``max_f``.
    """
    q = quantize_map(saliency_map)
    gt = _check_pair(q, gt)
    scores = SaliencyScores()
    scores.step(q, gt)
    # a single image: pysodmetrics' means over images are the image's own values
    fm = scores._fm.get_results()["fm"]["dynamic"]
    em = scores._em.get_results()["em"]["curve"]
    return {"mae": float(scores._mae.get_results()["mae"]), "s_measure": float(scores._sm.get_results()["sm"]),
            "f_curve": np.asarray(fm, np.float64), "e_curve": np.asarray(em, np.float64),
            "max_f": float(np.max(fm)), "mean_e": float(np.mean(em))}


def aggregate_scores(records) -> dict:
    """Dataset scores (as :meth:`SaliencyScores.results`) from :func:`image_scores` records."""
    records = list(records)
    if not records:
        raise ValueError("no images scored yet")
    f = np.mean(np.array([r["f_curve"] for r in records], dtype=np.float64), axis=0)
    e = np.mean(np.array([r["e_curve"] for r in records], dtype=np.float64), axis=0)
    return {"mae": float(np.mean(np.array([r["mae"] for r in records], np.float64))),
            "s_measure": float(np.mean(np.array([r["s_measure"] for r in records], np.float64))),
            "max_f": float(np.max(f)), "mean_e": float(np.mean(e)), "max_e": float(np.max(e)),
            "n_images": len(records)}


class SaliencyScores:
    """Accumulate MAE, S-measure, max F-measure (beta^2 = 0.3) and E-measure over images.

    MAE goes through ``py_sod_metrics.MAE`` with the map used as is (``q / 255``, no extra
    min-max), which is exactly ``CalMAE``; the other measures use pysodmetrics' standard
    preprocessing (``normalize=True``: ``mapminmax(q / 255)``, ``GT > 128``).

    Examples
    --------
    >>> scores = SaliencyScores()
    >>> scores.step(smap, gt)          # float map in [0, 1] or uint8, bool mask
    >>> scores.results()["mae"]
    """

    def __init__(self):
        self._mae = py_sod_metrics.MAE()
        self._sm = py_sod_metrics.Smeasure()
        # FmeasureV2 with a dynamic-threshold F handler = the (deprecated) Fmeasure curve
        self._fm = py_sod_metrics.FmeasureV2(
            metric_handlers={"fm": py_sod_metrics.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)})
        self._em = py_sod_metrics.Emeasure()
        self.n_images = 0

    def step(self, saliency_map, gt) -> float:
        """Add one image; returns its MAE."""
        q = quantize_map(saliency_map)
        gt = _check_pair(q, gt)
        self._mae.step(q / 255.0, gt, normalize=False)
        gt_u8 = gt.astype(np.uint8) * 255
        self._sm.step(q, gt_u8)
        self._fm.step(q, gt_u8)
        self._em.step(q, gt_u8)
        self.n_images += 1
        return float(self._mae.maes[-1])

    def results(self) -> dict:
        """``mae``, ``s_measure``, ``max_f``, ``mean_e``, ``max_e``, ``n_images``."""
        if self.n_images == 0:
            raise ValueError("no images scored yet")
        fm = self._fm.get_results()["fm"]["dynamic"]
        em = self._em.get_results()["em"]["curve"]
        return {"mae": float(self._mae.get_results()["mae"]),
                "s_measure": float(self._sm.get_results()["sm"]),
                "max_f": float(np.max(fm)), "mean_e": float(np.mean(em)), "max_e": float(np.max(em)),
                "n_images": self.n_images}
