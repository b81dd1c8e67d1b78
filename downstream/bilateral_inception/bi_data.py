"""BI training data: one example per image (image, ground truth, superpixels, cached features),
padded batches, and the per-superpixel loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sin.pooling import Assignment

from .datasets import VOID
from .preprocess import image_to_tensor, label_tensor

__all__ = ["BIExample", "superpixel_class_histogram", "histogram_cross_entropy", "collate_bi", "load_examples",
           "check_superpixels"]


def check_superpixels(labels, shape, sid: str) -> torch.Tensor:
    """``labels`` as an int64 tensor after checking it is a non-empty ``shape`` map of ids >= 0."""
    a = np.asarray(labels)
    if a.size == 0 or a.ndim != 2:
        raise ValueError(f"superpixels of image {sid}: expected a non-empty (H, W) label map, got shape {a.shape}")
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"superpixels of {sid} are {tuple(a.shape)}, image is {tuple(shape)}")
    if a.dtype.kind not in "iu" or a.min() < 0:
        raise ValueError(f"superpixels of image {sid}: expected non-negative integer labels, got {a.dtype}")
    return torch.from_numpy(a.astype(np.int64))


@dataclass
class BIExample:
    """One image for BI: native image, ground truth, superpixels and (cached) trunk features."""

    id: str
    image: torch.Tensor  # (3, H, W) float32 in [0, 1]
    label: torch.Tensor  # (H, W) int64, VOID = 255
    superpixels: torch.Tensor  # (H, W) int64, 0..S-1
    features: torch.Tensor | None = None  # (C, h, w) float32


def superpixel_class_histogram(superpixels: torch.Tensor, label: torch.Tensor, num_superpixels: int,
                               num_classes: int) -> torch.Tensor:
    """``(S, K)`` number of pixels of class k in superpixel s (void pixels excluded)."""
    keep = label != VOID
    idx = superpixels[keep] * num_classes + label[keep]
    return torch.bincount(idx, minlength=num_superpixels * num_classes).reshape(num_superpixels, num_classes).float()


def histogram_cross_entropy(sp_logits: torch.Tensor, histogram: torch.Tensor) -> torch.Tensor:
    """Pixel-averaged cross-entropy of superpixel scores smeared to pixels, computed per superpixel.

    With hard superpixels every pixel of ``s`` gets ``sp_logits[:, s]``, so
    ``sum_pixels CE = sum_s sum_k hist[s, k] * (-log softmax(sp_logits[s])[k])``: exactly the
    pixel-level loss at a fraction of the cost. ``sp_logits (B, K, S)``, ``histogram (B, S, K)``.
    """
    logp = torch.log_softmax(sp_logits, dim=1).transpose(1, 2)
    total = histogram.sum()
    if total <= 0:
        return sp_logits.sum() * 0.0
    return -(histogram * logp).sum() / total


def collate_bi(examples: Sequence[BIExample], num_classes: int) -> dict:
    """Batch examples of possibly different sizes: padding (top-left aligned) + per-image sizes.

    Returns ``image (B,3,H,W)``, ``label (B,H,W)`` (padding = void), ``assignment`` (hard,
    ``S = max`` superpixel count), ``features (B,C,h,w)`` or None, ``image_sizes``/``feature_sizes``
    (None when every image fills the batch), ``histogram (B,S,K)``, ``ids``.
    """
    if not examples:
        raise ValueError("collate_bi needs at least one example")
    for e in examples:
        if e.superpixels.numel() == 0:
            raise ValueError(f"image {e.id} has an empty superpixel map (zero superpixels)")
    b = len(examples)
    hs = [tuple(e.image.shape[-2:]) for e in examples]
    H, W = max(h for h, _ in hs), max(w for _, w in hs)
    S = max(int(e.superpixels.max()) + 1 for e in examples)
    image = torch.zeros((b, 3, H, W))
    label = torch.full((b, H, W), VOID, dtype=torch.long)
    sp = torch.zeros((b, H, W), dtype=torch.long)
    hist = torch.zeros((b, S, num_classes))
    for i, e in enumerate(examples):
        h, w = hs[i]
        image[i, :, :h, :w] = e.image
        label[i, :h, :w] = e.label
        sp[i, :h, :w] = e.superpixels
        hist[i] = superpixel_class_histogram(e.superpixels, e.label, S, num_classes)
    same = len(set(hs)) == 1
    feats, fsizes = None, None
    if examples[0].features is not None:
        fs = [tuple(e.features.shape[-2:]) for e in examples]
        c = examples[0].features.shape[0]
        fh, fw = max(h for h, _ in fs), max(w for _, w in fs)
        feats = torch.zeros((b, c, fh, fw))
        for i, e in enumerate(examples):
            feats[i, :, :fs[i][0], :fs[i][1]] = e.features
        same = same and len(set(fs)) == 1
        fsizes = None if same else torch.tensor(fs)
    return {"ids": [e.id for e in examples], "image": image, "label": label,
            "assignment": Assignment.from_labels(sp, num_superpixels=S), "features": feats,
            "image_sizes": None if same else torch.tensor(hs), "feature_sizes": fsizes, "histogram": hist}


def load_examples(dataset, superpixels: dict, feature_cache=None) -> list[BIExample]:
    """Every image of ``dataset`` as a :class:`BIExample` (``feature_cache``: anything with
    ``load_tensor(id)``, or None)."""
    out = []
    for sid in dataset.ids:
        s = dataset.load(sid)
        if sid not in superpixels:
            raise ValueError(f"no superpixels for image {sid}")
        spl = check_superpixels(superpixels[sid], s.label.shape, sid)
        feats = feature_cache.load_tensor(sid).float() if feature_cache is not None else None
        out.append(BIExample(sid, image_to_tensor(s.image), label_tensor(s.label), spl, feats))
    return out

