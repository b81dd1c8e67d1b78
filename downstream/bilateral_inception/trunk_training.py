"""Trunk fine-tuning: a pretrained trunk gets a new classifier for the dataset's classes.

``mode="head"`` freezes the backbone and trains ``head + classifier`` on cached backbone outputs
(the cheap choice on a CPU; horizontal flips cached too); ``mode="full"`` trains everything end
to end. Also :func:`train_classifier`: the trunk's classifier alone trained further on cached
features, the "equally trained" baseline a BI head is compared with.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .caches import cache_backbone
from .datasets import VOID, SegmentationDataset
from .evaluation import evaluate_baseline
from .loop import (
    optimizer_step,
    end_epoch,
    freeze_batchnorm,
    load_state,
    lr_factor,
    progress_bar,
    resume_state,
    seed_everything,
    shape_batches,
    shuffle_rng,
)
from .preprocess import image_to_tensor, label_tensor, resize_for_trunk, trunk_input_size
from .trunks import SegmentationTrunk, build_trunk

__all__ = ["TRUNK_FORMAT", "TrunkTrainConfig", "train_trunk", "load_trunk_checkpoint", "train_classifier"]

TRUNK_FORMAT = "bi-trunk-v1"


@dataclass
class TrunkTrainConfig:
    epochs: int = 8
    lr: float = 5e-4
    weight_decay: float = 1e-4
    batch_size: int = 8
    short_side: int | None = 257
    mode: str = "head"  # "head": backbone frozen (cached); "full": end to end
    flips: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.mode not in ("head", "full"):
            raise ValueError(f"mode must be 'head' or 'full', got {self.mode!r}")
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs >= 0, batch_size >= 1 and lr > 0 are required")


def _trunk_loss(trunk, coarse: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = trunk.upsample(coarse, labels.shape[-2:])
    return F.cross_entropy(logits, labels, ignore_index=VOID)


def train_trunk(trunk: SegmentationTrunk, train_set: SegmentationDataset, val_set: SegmentationDataset | None,
                out_dir, *, config: TrunkTrainConfig | None = None, backbone_cache_dir=None, backbone_cache=None,
                device="cpu", resume: bool = True, progress: bool = True, meta: dict | None = None) -> dict:
    """Fine-tune a trunk (new classifier for ``train_set.classes``) and keep the best on ``val_set``.

    ``mode="head"`` reads backbone outputs from ``backbone_cache`` (already filled for the train
    split, with flips when ``config.flips``, and for ``val_set``) or fills a cache in
    ``backbone_cache_dir``.

    Writes ``out_dir/last.pt`` (every epoch, for ``resume``) and ``out_dir/best.pt`` (best val
    mIoU; the last epoch when there is no validation set). Returns the training record.
    """
    config = config or TrunkTrainConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    if trunk.num_classes != train_set.num_classes:
        trunk.replace_classifier(train_set.num_classes)
    trunk = trunk.to(device)
    params = list(trunk.head.parameters()) + list(trunk.classifier.parameters())
    if config.mode == "full":
        params = list(trunk.backbone.parameters()) + params
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    record, state = resume_state(out_dir / "last.pt", TRUNK_FORMAT, opt, resume)
    if state is not None:
        trunk.load_state_dict(state["state_dict"])
    if record["epoch"] >= config.epochs and (out_dir / "best.pt").is_file():
        return record

    # data: labels (and flipped labels), inputs = cached backbone outputs or resized images
    bb_cache = backbone_cache if config.mode == "head" else None
    if config.mode == "head" and bb_cache is None:
        if backbone_cache_dir is None:
            raise ValueError("mode='head' needs backbone_cache or backbone_cache_dir")
        bb_cache = cache_backbone(trunk, train_set, backbone_cache_dir, short_side=config.short_side,
                                  flips=config.flips, device=device, progress=progress)
        if val_set is not None:
            cache_backbone(trunk, val_set, backbone_cache_dir, short_side=config.short_side, device=device,
                           progress=progress)
    items = []  # (key, label, flip)
    for sid in train_set.ids:
        lab = train_set.load(sid).label
        items.append((sid, lab, False))
        if config.flips:
            items.append((sid, np.ascontiguousarray(lab[:, ::-1]), True))
    shapes = [it[1].shape for it in items]
    rng = shuffle_rng(config.seed, shapes, config.batch_size, record["epoch"])
    for epoch in range(record["epoch"], config.epochs):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = config.lr * lr_factor(epoch, config.epochs)
        trunk.train()
        if config.mode == "head":
            trunk.backbone.eval()
        freeze_batchnorm(trunk)
        losses = []
        batches = shape_batches(shapes, config.batch_size, True, rng)
        for batch in progress_bar(batches, f"trunk epoch {epoch + 1}/{config.epochs}", enabled=progress):
            labels = torch.stack([label_tensor(items[i][1]) for i in batch]).to(device)
            if bb_cache is not None:
                x = torch.stack([bb_cache.load_tensor(items[i][0] + ("_flip" if items[i][2] else "")).float()
                                 for i in batch]).to(device)
                coarse = trunk.classifier(trunk.forward_head(x))
            else:
                imgs = []
                for i in batch:
                    img = image_to_tensor(train_set.load(items[i][0]).image)
                    imgs.append(img.flip(-1) if items[i][2] else img)
                img = torch.stack(imgs)
                x = resize_for_trunk(img, trunk_input_size(*img.shape[-2:], config.short_side), trunk.align_corners)
                coarse = trunk(x.to(device)).coarse_logits
            loss = _trunk_loss(trunk, coarse, labels)
            losses.append(optimizer_step(opt, loss))
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan")}
        trunk.eval()
        if val_set is not None:
            cm = evaluate_baseline(trunk, val_set, short_side=config.short_side, device=device, progress=False,
                                   backbone_cache=bb_cache)
            entry["val_miou"] = cm.mean_iou()
        entry["seconds"] = time.perf_counter() - t0
        ckpt = {"format": TRUNK_FORMAT, "trunk": trunk.name, "num_classes": trunk.num_classes,
                "classes": list(train_set.classes), "short_side": config.short_side, "config": asdict(config),
                "meta": dict(meta or {})}
        end_epoch(record, entry, epoch, out_dir, ckpt, {"state_dict": trunk.state_dict()}, opt, "trunk", progress)
    return record


def load_trunk_checkpoint(path, *, weights=None) -> tuple[SegmentationTrunk, dict]:
    """Rebuild a fine-tuned trunk from :func:`train_trunk`'s ``best.pt`` (``weights``: not needed)."""
    state = load_state(path, TRUNK_FORMAT)
    trunk = build_trunk(state["trunk"], weights=weights, num_classes=state["num_classes"])
    trunk.load_state_dict(state["state_dict"])
    return trunk.eval(), state



def train_classifier(trunk: SegmentationTrunk, train_set: SegmentationDataset, val_set: SegmentationDataset | None,
                     feature_cache, out_dir, *, epochs: int = 8, lr: float = 1e-3, weight_decay: float = 5e-4,
                     batch_size: int = 4, seed: int = 0, finetune: str = "none", trunk_lr: float = 1e-4,
                     device="cpu", resume: bool = True, progress: bool = True, meta: dict | None = None) -> dict:
    """Train only the trunk's classifier further, on cached trunk features; best epoch on val.

    The control for a BI head trained on the same frozen features with the same budget (epochs,
    Adam, learning rate, cosine schedule, batch size, seed): the difference between the two is
    what BI adds beyond "train the last layer some more". With ``finetune="head"``
    ``feature_cache`` holds *backbone* outputs and the trunk's head is trained too (lr
    ``trunk_lr``), the control for BI heads trained with ``finetune="head"``. Writes a trunk
    checkpoint (:func:`load_trunk_checkpoint` reads it) to ``out_dir``; returns the training record.
    """
    if trunk.num_classes != train_set.num_classes:
        raise ValueError(f"the trunk predicts {trunk.num_classes} classes, {train_set.name} has "
                         f"{train_set.num_classes}: fine-tune it first (train_trunk)")
    if epochs < 0 or batch_size < 1 or not lr > 0 or not trunk_lr > 0:
        raise ValueError("epochs >= 0, batch_size >= 1, lr > 0 and trunk_lr > 0 are required")
    if finetune not in ("none", "head"):
        raise ValueError(f"finetune must be 'none' or 'head', got {finetune!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    trunk = trunk.to(device).eval()
    groups = [{"params": list(trunk.classifier.parameters()), "lr": lr}]
    if finetune == "head":
        groups.append({"params": [p for p in trunk.head.parameters() if p.requires_grad], "lr": trunk_lr})
    base_lrs = [g["lr"] for g in groups]  # (not stored in the groups: older checkpoints resume as they were)
    opt = torch.optim.Adam(groups, weight_decay=weight_decay)
    record, state = resume_state(out_dir / "last.pt", TRUNK_FORMAT, opt, resume)
    if state is not None:
        trunk.load_state_dict(state["state_dict"])
    if record["epoch"] >= epochs and (out_dir / "best.pt").is_file():
        return record
    labels = {sid: train_set.load(sid).label for sid in train_set.ids}
    feats = {sid: feature_cache.load_tensor(sid).float() for sid in train_set.ids}
    ids = list(train_set.ids)
    shapes = [(labels[i].shape, tuple(feats[i].shape)) for i in ids]
    rng = shuffle_rng(seed, shapes, batch_size, record["epoch"])
    config = {"epochs": epochs, "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "seed": seed,
              "finetune": finetune, "trunk_lr": trunk_lr}
    head = trunk.forward_head if finetune == "head" else (lambda x: x)
    for epoch in range(record["epoch"], epochs):
        t0 = time.perf_counter()
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * lr_factor(epoch, epochs)
        trunk.eval()
        trunk.classifier.train()
        if finetune == "head":
            trunk.head.train()
        freeze_batchnorm(trunk)
        losses = []
        for batch in progress_bar(shape_batches(shapes, batch_size, True, rng),
                                  f"classifier epoch {epoch + 1}/{epochs}", enabled=progress):
            x = torch.stack([feats[ids[i]] for i in batch]).to(device)
            y = torch.stack([label_tensor(labels[ids[i]]) for i in batch]).to(device)
            loss = _trunk_loss(trunk, trunk.classifier(head(x)), y)
            losses.append(optimizer_step(opt, loss))
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan")}
        trunk.eval()
        if val_set is not None:
            caches = {"backbone_cache" if finetune == "head" else "feature_cache": feature_cache}
            entry["val_miou"] = evaluate_baseline(trunk, val_set, device=device, progress=False, **caches).mean_iou()
        entry["seconds"] = time.perf_counter() - t0
        ckpt = {"format": TRUNK_FORMAT, "trunk": trunk.name, "num_classes": trunk.num_classes,
                "classes": list(train_set.classes), "short_side": None, "config": config, "meta": dict(meta or {})}
        end_epoch(record, entry, epoch, out_dir, ckpt, {"state_dict": trunk.state_dict()}, opt, "classifier",
                  progress)
    return record
