"""Training a Bilateral Inception head on a trunk: on cached trunk features (trunk frozen), on
cached backbone outputs (the trunk's head trained too) or end to end; best epoch on val.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .bi_data import collate_bi, histogram_cross_entropy, load_examples
from .datasets import SegmentationDataset
from .evaluation import bi_forward, evaluate_bi
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
from .model import BilateralInceptionHead
from .trunks import SegmentationTrunk

__all__ = ["BI_FORMAT", "BITrainConfig", "config_key", "build_head", "train_bi", "load_bi_checkpoint"]

BI_FORMAT = "bi-head-v1"


@dataclass
class BITrainConfig:
    epochs: int = 8
    lr: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 4
    init: str = "trunk"  # "trunk": start from the trunk's classifier; "spec": the released model's init
    #: None: 0.5 with init "spec" (the released model) but 0 with init "trunk": a classifier trained
    #: without dropout sees heavily perturbed inputs, and the [W; -W] / [I, -I] pair that passes the
    #: ReLU exactly (see start_from_trunk) no longer cancels under independent dropout masks
    #: (measured on MSRC-21: train loss 7.9 instead of 0.09 at the start, worse val mIoU after training).
    dropout: float | None = None
    mid_channels: int | None = None
    feature_scales: dict = field(default_factory=dict)
    theta_init: float = 1.0
    #: per BI7 filter pair (rgbxy + xy), a factor on ``theta_init``. All 1 (the released model's
    #: init): with the "trunk" init the three pairs get identical gradients and never diverge, so
    #: BI7's six filters act as two; e.g. (0.25, 1, 4) starts them at three spatial/colour scales.
    bi7_scales: tuple = (1.0, 1.0, 1.0)
    #: the trunk during BI training: "none" frozen (cached features), "head" its head trained on cached
    #: backbone outputs (backbone frozen), "full" everything end to end (no cache)
    finetune: str = "none"
    trunk_lr: float = 1e-4
    short_side: int | None = 257
    seed: int = 0

    def __post_init__(self):
        if self.init not in ("trunk", "spec"):
            raise ValueError(f"init must be 'trunk' or 'spec', got {self.init!r}")
        if self.finetune not in ("none", "head", "full"):
            raise ValueError(f"finetune must be 'none', 'head' or 'full', got {self.finetune!r}")
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs >= 0, batch_size >= 1 and lr > 0 are required")
        if self.dropout is None:
            self.dropout = 0.5 if self.init == "spec" else 0.0
        self.bi7_scales = tuple(float(v) for v in self.bi7_scales)
        if len(self.bi7_scales) != 3 or not all(np.isfinite(v) and v > 0 for v in self.bi7_scales):
            raise ValueError(f"bi7_scales must be 3 positive numbers (one per BI7 filter pair), got {self.bi7_scales}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


#: fields added after the first trained runs, with the value that reproduces those runs: they enter
#: a run's key (:meth:`BITrainConfig.key`) only when set to something else, so older runs keep their keys
_LATER_FIELDS = {"bi7_scales": (1.0, 1.0, 1.0)}


def config_key(config: BITrainConfig) -> dict:
    """What names a BI run: the configuration, without later-added fields left at their defaults."""
    d = asdict(config)
    return {k: v for k, v in d.items() if not (k in _LATER_FIELDS and tuple(v) == _LATER_FIELDS[k])}


def build_head(trunk: SegmentationTrunk, num_classes: int, config: BITrainConfig | None = None
               ) -> BilateralInceptionHead:
    """A BI head for ``trunk``, initialised as ``config.init`` says."""
    config = config or BITrainConfig()
    mid = config.mid_channels
    if mid is None:  # "trunk" init: 2K channels (see BilateralInceptionHead.start_from_trunk); spec: C
        single = sum(isinstance(m, nn.Conv2d) for m in trunk.classifier.modules()) == 1
        mid = 2 * num_classes if config.init == "trunk" and single else trunk.feature_channels
    head = BilateralInceptionHead(trunk.feature_channels, num_classes, mid, dropout=config.dropout,
                                  feature_scales=config.feature_scales, theta_init=config.theta_init,
                                  bi7_theta_init=[config.theta_init * f for f in config.bi7_scales for _ in range(2)],
                                  align_corners=trunk.align_corners)
    if config.init == "trunk":
        head.start_from_trunk(trunk.classifier)
    return head



def train_bi(head: BilateralInceptionHead, train_set: SegmentationDataset, val_set: SegmentationDataset | None,
             superpixels: dict, out_dir, *, config: BITrainConfig | None = None,
             feature_cache=None, val_superpixels: dict | None = None,
             trunk: SegmentationTrunk | None = None, device="cpu", resume: bool = True, progress: bool = True,
             meta: dict | None = None) -> dict:
    """Train a BI head; keep the best epoch on ``val_set`` (mIoU).

    ``config.finetune``: ``"none"``: the trunk is frozen, ``feature_cache`` holds its features;
    ``"head"``: ``feature_cache`` holds backbone outputs (:func:`cache_backbone`) and the trunk's
    head is trained with the BI head; ``"full"``: the whole ``trunk`` is trained end to end.
    ``superpixels`` / ``val_superpixels``: ``{id: (H, W) labels}``.
    """
    config = config or BITrainConfig()
    mode = config.finetune
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    head = head.to(device)
    groups = head.param_groups(config.lr, weight_decay=config.weight_decay)
    if mode != "none":
        if trunk is None:
            raise ValueError(f"finetune={mode!r} needs the trunk")
        trunk = trunk.to(device)
        trainable = trunk.head.parameters() if mode == "head" else trunk.parameters()
        groups.append({"params": [p for p in trainable if p.requires_grad], "lr": config.trunk_lr,
                       "weight_decay": config.weight_decay})
    if mode != "full" and feature_cache is None:
        raise ValueError(f"finetune={mode!r} needs feature_cache")
    for g in groups:
        g["base_lr"] = g["lr"]
    opt = torch.optim.Adam(groups)
    record, state = resume_state(out_dir / "last.pt", BI_FORMAT, opt, resume)
    if state is not None:
        head.load_state_dict(state["state_dict"])
        if mode != "none" and state.get("trunk_state") is not None:
            trunk.load_state_dict(state["trunk_state"])
    if record["epoch"] >= config.epochs and (out_dir / "best.pt").is_file():
        return record
    examples = load_examples(train_set, superpixels, None if mode == "full" else feature_cache)
    val_sp = val_superpixels if val_superpixels is not None else superpixels
    shapes = [(tuple(e.image.shape), None if e.features is None else tuple(e.features.shape)) for e in examples]
    rng = shuffle_rng(config.seed, shapes, config.batch_size, record["epoch"])
    head_config = _head_config(head)
    for epoch in range(record["epoch"], config.epochs):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr_factor(epoch, config.epochs)
        head.train()
        if trunk is not None:
            trunk.eval()
            if mode == "full":
                trunk.train()
            elif mode == "head":
                trunk.head.train()
            freeze_batchnorm(trunk)
        losses = []
        batches = shape_batches(shapes, config.batch_size, True, rng)
        for batch_idx in progress_bar(batches, f"BI epoch {epoch + 1}/{config.epochs}", enabled=progress):
            batch = collate_bi([examples[i] for i in batch_idx], head.num_classes)
            sp_logits, _ = bi_forward(head, batch, device, trunk, config.short_side, mode)
            loss = histogram_cross_entropy(sp_logits, batch["histogram"].to(device))
            losses.append(optimizer_step(opt, loss))
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan")}
        if val_set is not None:
            cm = evaluate_bi(head, val_set, val_sp, feature_cache=feature_cache, trunk=trunk, finetune=mode,
                             short_side=config.short_side, device=device, progress=False)
            entry["val_miou"] = cm.mean_iou()
        entry["theta6"] = [round(float(t), 4) for t in head.bi6.theta.detach()]
        entry["theta7"] = [round(float(t), 4) for t in head.bi7.theta.detach()]
        entry["seconds"] = time.perf_counter() - t0
        ckpt = {"format": BI_FORMAT, "head_config": head_config, "config": asdict(config),
                "classes": list(train_set.classes), "meta": dict(meta or {})}
        weights = {"state_dict": head.state_dict(), "trunk_state": trunk.state_dict() if mode != "none" else None}
        end_epoch(record, entry, epoch, out_dir, ckpt, weights, opt, "BI", progress)
    return record


def _head_config(head: BilateralInceptionHead) -> dict:
    return {"in_channels": head.in_channels, "num_classes": head.num_classes, "mid_channels": head.mid_channels,
            "bi6_spaces": list(head.bi6.spaces), "bi7_spaces": list(head.bi7.spaces),
            "dropout": head.dropout.p, "feature_scales": head.feature_scales, "align_corners": head.align_corners}


def load_bi_checkpoint(path) -> tuple[BilateralInceptionHead, dict]:
    """Rebuild a trained head from :func:`train_bi`'s ``best.pt``."""
    state = load_state(path, BI_FORMAT)
    cfg = dict(state["head_config"])
    head = BilateralInceptionHead(cfg.pop("in_channels"), cfg.pop("num_classes"), cfg.pop("mid_channels"), **cfg)
    head.load_state_dict(state["state_dict"])
    return head.eval(), state

