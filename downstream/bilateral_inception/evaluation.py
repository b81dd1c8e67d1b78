"""Evaluation: the trunk's bilinear baseline and BI predictions, as confusion matrices over a split.

Both evaluators can also return per-image confusion matrices (``per_image``), from which
:func:`.metrics.paired_bootstrap_miou` draws image-level intervals.
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
from .metrics import ConfusionMatrix, confusion_matrix, write_palette_png
from .model import BilateralInceptionHead
from .preprocess import image_to_tensor, label_tensor, resize_for_trunk, trunk_input_size
from .trunks import SegmentationTrunk

__all__ = ["evaluate_baseline", "bi_forward", "predict_bi", "evaluate_bi"]


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


def _record(cm: ConfusionMatrix, pred, label, sid, predictions, per_image, png_dir) -> None:
    m = confusion_matrix(pred, label, cm.num_classes, ignore_index=cm.ignore_index)
    cm.matrix += m
    if per_image is not None:
        per_image[sid] = m
    if predictions is not None:
        predictions[sid] = pred
    if png_dir is not None:
        write_palette_png(pred, Path(png_dir) / f"{sid}.png")


@torch.no_grad()
def evaluate_baseline(trunk: SegmentationTrunk, dataset: SegmentationDataset, *, short_side: int | None = 257,
                      feature_cache: TensorCache | None = None, backbone_cache: TensorCache | None = None,
                      device="cpu", progress: bool = True, png_dir=None,
                      predictions: dict | None = None, per_image: dict | None = None) -> ConfusionMatrix:
    """The trunk alone: coarse logits upsampled bilinearly to the native size, argmax."""
    cm = ConfusionMatrix(dataset.num_classes)
    trunk = trunk.to(device).eval()
    for sid in progress_bar(dataset.ids, f"eval baseline {trunk.name}", enabled=progress):
        sample = dataset.load(sid)
        if feature_cache is not None and feature_cache.has(sid):
            feats = feature_cache.load_tensor(sid).float().unsqueeze(0).to(device)
        elif backbone_cache is not None and backbone_cache.has(sid):
            feats = trunk.forward_head(backbone_cache.load_tensor(sid).float().unsqueeze(0).to(device))
        else:
            img = image_to_tensor(sample.image).unsqueeze(0)
            x = resize_for_trunk(img, trunk_input_size(*img.shape[-2:], short_side), trunk.align_corners)
            feats = trunk(x.to(device)).features
        logits = trunk.upsample(trunk.classifier(feats), sample.label.shape)
        pred = logits.argmax(1)[0].cpu().numpy().astype(np.uint8)
        _record(cm, pred, sample.label, sid, predictions, per_image, png_dir)
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
                png_dir=None, predictions: dict | None = None, per_image: dict | None = None) -> ConfusionMatrix:
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
        _record(cm, pred, s.label, sid, predictions, per_image, png_dir)
    return cm

