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

__all__ = ["VOID", "confusion_matrix", "ConfusionMatrix", "iou_per_class", "voc_colormap", "write_palette_png"]

VOID = 255


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


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU ``TP / (TP + FP + FN)`` of a confusion matrix; NaN for classes never seen."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)


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
