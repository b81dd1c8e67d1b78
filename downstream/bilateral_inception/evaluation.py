"""Evaluation: the trunk's bilinear baseline, its dense-CRF refinement, its probabilities averaged in
superpixels, and BI predictions, as confusion matrices over a split.

Every evaluator can also return per-image confusion matrices (``per_image``), from which
:func:`.metrics.paired_bootstrap_miou` draws image-level intervals; with ``band_widths`` each
image's entry is the ``(1 + len(band_widths), K, K)`` stack of :func:`.metrics.banded_confusion`
(whole image, then the boundary bands).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sin.pooling import Assignment

from .bi_data import BIExample, check_superpixels, collate_bi
from .caches import TensorCache
from .datasets import SegmentationDataset
from .loop import progress_bar
from .crf import CRFParams, dense_crf
from .metrics import ConfusionMatrix, banded_confusion, confusion_matrix, write_palette_png
from .model import BilateralInceptionHead
from .preprocess import image_to_tensor, label_tensor, resize_for_trunk, trunk_input_size
from .trunks import SegmentationTrunk

__all__ = ["evaluate_baseline", "trunk_probabilities", "superpixel_average", "evaluate_crf", "crf_grid_search",
           "evaluate_superpixel_average", "bi_forward", "predict_bi", "evaluate_bi"]


def bi_forward(head, batch, device, trunk=None, short_side=None, finetune: str = "none"):
    """Superpixel logits of a batch; ``batch["features"]`` are trunk features ("none"), backbone
    outputs ("head") or unused ("full": the trunk sees the resized images)."""
    feats = batch["features"]
    if finetune == "full":
        img = batch["image"]
        x = resize_for_trunk(img, trunk_input_size(*img.shape[-2:], short_side), trunk.align_corners)
        feats = trunk(x.to(device)).features
    elif finetune == "head":
        feats = trunk.forward_head(feats.to(device))
    return head.superpixel_logits(feats.to(device), batch["image"].to(device), _to(batch["assignment"], device),
                                  image_sizes=batch["image_sizes"], feature_sizes=batch["feature_sizes"])


def _to(assignment: Assignment, device) -> Assignment:
    return Assignment(index=assignment.index.to(device), weight=assignment.weight.to(device),
                      num_superpixels=assignment.num_superpixels)


def _record(cm: ConfusionMatrix, pred, label, sid, predictions, per_image, png_dir, band_widths=None) -> None:
    if band_widths:
        m = banded_confusion(pred, label, cm.num_classes, band_widths, ignore_index=cm.ignore_index)
        cm.matrix += m[0]
    else:
        m = confusion_matrix(pred, label, cm.num_classes, ignore_index=cm.ignore_index)
        cm.matrix += m
    if per_image is not None:
        per_image[sid] = m
    if predictions is not None:
        predictions[sid] = pred
    if png_dir is not None:
        write_palette_png(pred, Path(png_dir) / f"{sid}.png")


def _trunk_logits(trunk, sample, sid, *, feature_cache, backbone_cache, short_side, device) -> torch.Tensor:
    """The trunk's class scores ``(1, K, H, W)`` upsampled bilinearly to the native image size."""
    if feature_cache is not None and feature_cache.has(sid):
        feats = feature_cache.load_tensor(sid).float().unsqueeze(0).to(device)
    elif backbone_cache is not None and backbone_cache.has(sid):
        feats = trunk.forward_head(backbone_cache.load_tensor(sid).float().unsqueeze(0).to(device))
    else:
        img = image_to_tensor(sample.image).unsqueeze(0)
        x = resize_for_trunk(img, trunk_input_size(*img.shape[-2:], short_side), trunk.align_corners)
        feats = trunk(x.to(device)).features
    return trunk.upsample(trunk.classifier(feats), sample.label.shape)


@torch.no_grad()
def trunk_probabilities(trunk: SegmentationTrunk, sample, *, feature_cache=None, backbone_cache=None,
                        short_side: int | None = 257, device="cpu") -> np.ndarray:
    """``(K, H, W)`` float32 class probabilities of the trunk at the native size (softmax of the
    bilinearly upsampled scores: the baseline's argmax, the CRF's unary)."""
    trunk = trunk.to(device).eval()
    logits = _trunk_logits(trunk, sample, sample.id, feature_cache=feature_cache, backbone_cache=backbone_cache,
                           short_side=short_side, device=device)
    return torch.softmax(logits[0].float(), 0).cpu().numpy()


def superpixel_average(probs: np.ndarray, superpixels: np.ndarray) -> np.ndarray:
    """``(K, H, W)`` probabilities averaged inside every superpixel (piecewise constant)."""
    probs = np.asarray(probs)
    sp = np.asarray(superpixels)
    if probs.ndim != 3 or sp.shape != probs.shape[1:]:
        raise ValueError(f"probabilities {probs.shape} and superpixels {sp.shape} do not match")
    if sp.dtype.kind not in "iu" or sp.size == 0 or sp.min() < 0:
        raise ValueError("superpixels must be a non-empty map of non-negative integer labels")
    flat = sp.reshape(-1).astype(np.int64)
    n = int(flat.max()) + 1
    counts = np.bincount(flat, minlength=n).astype(np.float64)
    out = np.empty_like(probs, dtype=np.float32)
    for c in range(probs.shape[0]):
        means = np.bincount(flat, weights=probs[c].reshape(-1), minlength=n) / np.maximum(counts, 1)
        out[c] = means[flat].reshape(sp.shape)
    return out


@torch.no_grad()
def evaluate_baseline(trunk: SegmentationTrunk, dataset: SegmentationDataset, *, short_side: int | None = 257,
                      feature_cache: TensorCache | None = None, backbone_cache: TensorCache | None = None,
                      device="cpu", progress: bool = True, png_dir=None, predictions: dict | None = None,
                      per_image: dict | None = None, band_widths=None) -> ConfusionMatrix:
    """The trunk alone: coarse logits upsampled bilinearly to the native size, argmax."""
    cm = ConfusionMatrix(dataset.num_classes)
    trunk = trunk.to(device).eval()
    for sid in progress_bar(dataset.ids, f"eval baseline {trunk.name}", enabled=progress):
        sample = dataset.load(sid)
        logits = _trunk_logits(trunk, sample, sid, feature_cache=feature_cache, backbone_cache=backbone_cache,
                               short_side=short_side, device=device)
        pred = logits.argmax(1)[0].cpu().numpy().astype(np.uint8)
        _record(cm, pred, sample.label, sid, predictions, per_image, png_dir, band_widths)
    return cm


def evaluate_crf(trunk: SegmentationTrunk, dataset: SegmentationDataset, params: CRFParams | None = None, *,
                 superpixels: dict | None = None, short_side: int | None = 257, feature_cache=None,
                 device="cpu", progress: bool = True, predictions: dict | None = None,
                 per_image: dict | None = None, band_widths=None) -> ConfusionMatrix:
    """The trunk's probabilities refined by the dense CRF (:func:`.crf.dense_crf`), argmax.

    With ``superpixels`` (``{id: labels}``) the probabilities are first averaged inside each
    superpixel (:func:`superpixel_average`), then refined.
    """
    cm = ConfusionMatrix(dataset.num_classes)
    for sid in progress_bar(dataset.ids, "eval CRF", enabled=progress):
        sample = dataset.load(sid)
        probs = trunk_probabilities(trunk, sample, feature_cache=feature_cache, short_side=short_side, device=device)
        if superpixels is not None:
            probs = superpixel_average(probs, superpixels[sid])
        pred = dense_crf(sample.image, probs, params).argmax(0).astype(np.uint8)
        _record(cm, pred, sample.label, sid, predictions, per_image, None, band_widths)
    return cm


def crf_grid_search(trunk: SegmentationTrunk, dataset: SegmentationDataset, grid, *, short_side: int | None = 257,
                    feature_cache=None, device="cpu", progress: bool = True) -> list[ConfusionMatrix]:
    """One confusion matrix per :class:`.crf.CRFParams` of ``grid`` on ``dataset`` (the trunk runs
    once per image; the CRF once per image and grid point)."""
    cms = [ConfusionMatrix(dataset.num_classes) for _ in grid]
    for sid in progress_bar(dataset.ids, f"CRF grid ({len(grid)} points)", enabled=progress):
        sample = dataset.load(sid)
        probs = trunk_probabilities(trunk, sample, feature_cache=feature_cache, short_side=short_side, device=device)
        for cm, params in zip(cms, grid):
            cm.update(dense_crf(sample.image, probs, params).argmax(0), sample.label)
    return cms


def evaluate_superpixel_average(trunk: SegmentationTrunk, dataset: SegmentationDataset, superpixels: dict, *,
                                short_side: int | None = 257, feature_cache=None, device="cpu",
                                progress: bool = True, predictions: dict | None = None,
                                per_image: dict | None = None, band_widths=None) -> ConfusionMatrix:
    """No training: the trunk's class probabilities averaged inside each superpixel, argmax.

    Isolates what the superpixels themselves contribute (snapping the trunk's coarse boundaries to
    theirs) from what a BI head's learned kernels add.
    """
    cm = ConfusionMatrix(dataset.num_classes)
    for sid in progress_bar(dataset.ids, "eval superpixel average", enabled=progress):
        sample = dataset.load(sid)
        if sid not in superpixels:
            raise ValueError(f"no superpixels for image {sid}")
        sp = check_superpixels(superpixels[sid], sample.label.shape, sid).numpy()
        probs = trunk_probabilities(trunk, sample, feature_cache=feature_cache, short_side=short_side, device=device)
        pred = superpixel_average(probs, sp).argmax(0).astype(np.uint8)
        _record(cm, pred, sample.label, sid, predictions, per_image, None, band_widths)
    return cm


@torch.no_grad()
def predict_bi(head: BilateralInceptionHead, example: BIExample, *, trunk=None, short_side=None,
               finetune: str = "none", device="cpu") -> np.ndarray:
    """``(H, W)`` uint8 class map of one image (argmax per superpixel, smeared).

    ``example.features``: trunk features (``finetune="none"``) or backbone outputs (``"head"``);
    with ``"full"`` (or no features) the trunk runs on the image.
    """
    head.eval()
    if example.features is None:
        finetune = "full"
    if finetune != "none" and trunk is None:
        raise ValueError(f"finetune={finetune!r} needs the trunk")
    batch = collate_bi([example], head.num_classes)
    sp_logits, _ = bi_forward(head, batch, device, trunk, short_side, finetune)
    best = sp_logits.argmax(1)[0].cpu()  # (S,)
    return best[example.superpixels].numpy().astype(np.uint8)


@torch.no_grad()
def evaluate_bi(head: BilateralInceptionHead, dataset: SegmentationDataset, superpixels: dict, *,
                feature_cache: TensorCache | None = None, trunk: SegmentationTrunk | None = None,
                finetune: str = "none", short_side: int | None = 257, device="cpu", progress: bool = True,
                png_dir=None, predictions: dict | None = None, per_image: dict | None = None,
                band_widths=None) -> ConfusionMatrix:
    """Confusion matrix of BI predictions over ``dataset``.

    ``feature_cache`` holds trunk features (``finetune="none"``) or backbone outputs (``"head"``,
    with ``trunk``); without a cache entry (or with ``"full"``) the ``trunk`` runs on the image.
    """
    if feature_cache is None and trunk is None:
        raise ValueError("evaluate_bi needs a feature cache or the trunk")
    head = head.to(device).eval()
    if trunk is not None:
        trunk = trunk.to(device).eval()
    cm = ConfusionMatrix(dataset.num_classes)
    for sid in progress_bar(dataset.ids, "eval BI", enabled=progress):
        s = dataset.load(sid)
        if sid not in superpixels:
            raise ValueError(f"no superpixels for image {sid}")
        feats = None
        if finetune != "full" and feature_cache is not None and feature_cache.has(sid):
            feats = feature_cache.load_tensor(sid).float()
        if feats is None and trunk is None:
            raise ValueError(f"no cached features for image {sid} and no trunk to compute them")
        ex = BIExample(sid, image_to_tensor(s.image), label_tensor(s.label),
                       check_superpixels(superpixels[sid], s.label.shape, sid), feats)
        pred = predict_bi(head, ex, trunk=trunk, short_side=short_side, finetune=finetune, device=device)
        _record(cm, pred, s.label, sid, predictions, per_image, png_dir, band_widths)
    return cm

