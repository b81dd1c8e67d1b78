"""Segmentation scores (confusion matrix, per-class and mean IoU) and VOC-format palette PNGs.

IoU as in the VOC devkit and the BI code's ``eval_segmentation.py`` (spec section 4): TP, FP and
FN are summed over the whole set (not averaged per image); pixels whose ground truth is void
(255) count nowhere; ``IoU_c = TP / (TP + FP + FN)``; the mean is over the classes that occur
(in the ground truth or the predictions) - a class absent from both has an undefined IoU (NaN),
left out of the mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sin.io import atomic_write

__all__ = ["VOID", "BAND_WIDTHS", "boundary_distance", "banded_confusion", "confusion_matrix", "ConfusionMatrix",
           "iou_per_class", "mean_iou", "paired_bootstrap_miou", "voc_colormap", "write_palette_png"]

VOID = 255

#: Widths (pixels) of the boundary bands of the trimap score (DeepLab / dense-CRF papers' "trimap").
BAND_WIDTHS = (2, 4, 8, 16, 32)


def confusion_matrix(pred, target, num_classes: int, *, ignore_index: int = VOID) -> np.ndarray:
    """``(K, K)`` int64 counts, rows = ground truth, columns = prediction; void pixels excluded.

    Raises ``ValueError`` for mismatched shapes, non-integer input or values outside
    ``0..K-1`` (predictions) / ``0..K-1`` or ``ignore_index`` (ground truth).
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {target.shape} differ in shape")
    for name, a in (("prediction", pred), ("ground truth", target)):
        if a.dtype.kind not in "iu":
            raise ValueError(f"{name} must be an integer array, got {a.dtype}")
    k = int(num_classes)
    if k < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    keep = target != ignore_index
    t, p = target[keep].astype(np.int64), pred[keep].astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= k):
        raise ValueError(f"ground truth has values outside 0..{k - 1} and {ignore_index}")
    if p.size and (p.min() < 0 or p.max() >= k):
        raise ValueError(f"prediction has values outside 0..{k - 1}")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def boundary_distance(target) -> np.ndarray:
    """Euclidean distance (pixels) from every pixel to the nearest ground-truth label boundary.

    A boundary pixel is one whose label differs from a 4-neighbour's (void counts as a label of
    its own, so an object edge drawn as a void band, as in VOC and MSRC-21, is a boundary too);
    boundary pixels have distance 0. An image with one label everywhere has no boundary: ``inf``.
    """
    from scipy.ndimage import distance_transform_edt

    t = np.asarray(target)
    if t.ndim != 2 or t.size == 0:
        raise ValueError(f"boundary_distance needs a non-empty (H, W) label map, got shape {t.shape}")
    edge = np.zeros(t.shape, bool)
    dx = t[:, 1:] != t[:, :-1]
    dy = t[1:, :] != t[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    if not edge.any():
        return np.full(t.shape, np.inf)
    return distance_transform_edt(~edge)


def banded_confusion(pred, target, num_classes: int, widths=BAND_WIDTHS, *, ignore_index: int = VOID) -> np.ndarray:
    """``(1 + len(widths), K, K)`` confusion matrices: the whole image, then only the pixels within
    ``d`` pixels of a ground-truth boundary (:func:`boundary_distance` ``<= d``) for each width ``d``.

    Void pixels count nowhere, as in :func:`confusion_matrix`.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    full = confusion_matrix(pred, target, num_classes, ignore_index=ignore_index)
    k = int(num_classes)
    keep = target != ignore_index
    idx = target[keep].astype(np.int64) * k + pred[keep].astype(np.int64)
    dist = boundary_distance(target)[keep]
    out = np.empty((1 + len(widths), k, k), np.int64)
    out[0] = full
    for j, d in enumerate(widths):
        if not d > 0:
            raise ValueError(f"band widths must be positive, got {d}")
        out[j + 1] = np.bincount(idx[dist <= d], minlength=k * k).reshape(k, k)
    return out


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU ``TP / (TP + FP + FN)`` of a confusion matrix; NaN for classes never seen."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)


def mean_iou(cm: np.ndarray) -> np.ndarray:
    """mIoU of one ``(K, K)`` confusion matrix or of a stack ``(..., K, K)`` (classes never seen
    left out; NaN when no class is seen)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    denom = cm.sum(-2) + cm.sum(-1) - tp
    seen = denom > 0
    iou = np.where(seen, tp / np.where(seen, denom, 1), 0.0)
    n = seen.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, iou.sum(-1) / np.maximum(n, 1), np.nan)


def paired_bootstrap_miou(a, b, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Paired bootstrap over images of the mIoU difference ``a - b``.

    mIoU is not a mean of per-image scores (it is computed from the confusion matrix summed over
    the set), so the bootstrap resamples *images* and recomputes both mIoUs from the summed
    per-image confusion matrices of the same resample; the two methods stay paired image by image.

    Parameters
    ----------
    a, b : array_like, ``(N, K, K)`` or ``(S, N, K, K)``
        Per-image confusion matrices of the two methods on the same N images, in the same order.
        With a leading seed axis ``S`` (runs of both methods with seeds ``0..S-1``, paired by
        seed) the statistic is the seed mean of the per-seed mIoU differences, and every
        bootstrap resample uses the same images for all seeds.
    n_boot : int
        Number of resamples.
    confidence : float
        Two-sided level of the percentile interval.
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``diff`` (the statistic on the actual images), ``low``, ``high`` (percentile interval),
        ``n_images``, ``n_boot``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (3, 4) or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"a and b must be matching (N, K, K) or (S, N, K, K) arrays, got {a.shape} and {b.shape}")
    if a.ndim == 3:
        a, b = a[None], b[None]
    s, n, k, _ = a.shape
    if n < 1:
        raise ValueError("paired_bootstrap_miou needs at least one image")
    if n_boot < 1 or not 0 < confidence < 1:
        raise ValueError(f"n_boot >= 1 and 0 < confidence < 1 are required, got {n_boot}, {confidence}")
    diff = float(np.mean(mean_iou(a.sum(1)) - mean_iou(b.sum(1))))
    rng = np.random.default_rng(seed)
    # multiplicity of each image in each resample: summed matrices are one matrix product
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]).astype(np.float64)
    stats = np.zeros(n_boot)
    for si in range(s):
        ma = (counts @ a[si].reshape(n, k * k)).reshape(n_boot, k, k)
        mb = (counts @ b[si].reshape(n, k * k)).reshape(n_boot, k, k)
        stats += mean_iou(ma) - mean_iou(mb)
    stats /= s
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(stats, [alpha, 1 - alpha])
    return {"diff": diff, "low": float(low), "high": float(high), "n_images": n, "n_boot": int(n_boot)}


class ConfusionMatrix:
    """Accumulate a confusion matrix over a dataset.

    >>> cm = ConfusionMatrix(3)
    >>> cm.update(pred, gt)                       # any number of images
    >>> cm.mean_iou(), cm.iou(), cm.pixel_accuracy()
    """

    def __init__(self, num_classes: int, *, ignore_index: int = VOID):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, pred, target) -> ConfusionMatrix:
        self.matrix += confusion_matrix(pred, target, self.num_classes, ignore_index=self.ignore_index)
        return self

    def iou(self) -> np.ndarray:
        return iou_per_class(self.matrix)

    def mean_iou(self) -> float:
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def summary(self, class_names=None) -> dict:
        """``{"mIoU": ..., "pixel_accuracy": ..., "iou": {name: value}}`` (NaN -> None)."""
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        iou = self.iou()
        return {"mIoU": self.mean_iou(), "pixel_accuracy": self.pixel_accuracy(),
                "iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou)}}


def voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map ``(n, 3)`` uint8 (bit-interleaved class index; 255 -> (224, 224, 192))."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def write_palette_png(labels: np.ndarray, path) -> Path:
    """Write class indices as a palette PNG with the VOC colour map (the evaluation server's format)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "iu" or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 2-D integer array, got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() > 255:
        raise ValueError("palette PNG labels must be in 0..255")
    im = Image.fromarray(labels.astype(np.uint8))  # mode "L"; putpalette turns it into "P"
    im.putpalette(voc_colormap().reshape(-1).tolist())
    path = Path(path)
    atomic_write(path, lambda tmp: im.save(tmp, format="PNG"))
    return path
