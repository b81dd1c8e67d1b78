"""Training and evaluation of a trunk and of Bilateral Inception heads on top of it.

Pipeline (each stage cached / resumable, CPU or GPU):

1. **Trunk fine-tuning** (:func:`train_trunk`): a pretrained trunk gets a new classifier for the
   dataset's classes. ``mode="head"`` freezes the backbone and trains ``head + classifier`` on
   cached backbone outputs (the cheap choice on a CPU; horizontal flips cached too); ``mode="full"``
   trains everything end to end.
2. **Feature cache** (:func:`cache_features`): the fine-tuned trunk's features per image.
3. **Superpixels** (:func:`cache_superpixels`): one label map per (provider, image), any provider
   of :mod:`sin.providers`.
4. **BI training** (:func:`train_bi`): the head of :mod:`.model` on cached features (trunk
   frozen), or with the trunk fine-tuned end to end (``trunk=...``).
5. **Evaluation** (:func:`evaluate_baseline`, :func:`evaluate_bi`): confusion matrix over the set,
   per-class IoU / mIoU, optional VOC palette PNGs.

Geometry: the trunk sees the image resized (align-corners bilinear) so that its shorter side is
``short_side`` and both sides are ``8k + 1`` (TF DeepLab's favourite sizes: grid points fall on
pixels); superpixels, BI and the evaluation work at the image's native resolution. The baseline
is the coarse logits upsampled bilinearly to the native size with the trunk's convention.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sin.checkpoint import atomic_torch_save, load_torch_file
from sin.pooling import Assignment

from .datasets import VOID, SegmentationDataset
from .metrics import ConfusionMatrix, write_palette_png
from .model import BilateralInceptionHead
from .trunks import SegmentationTrunk, build_trunk

__all__ = [
    "trunk_input_size",
    "image_to_tensor",
    "resize_for_trunk",
    "file_fingerprint",
    "config_fingerprint",
    "TensorCache",
    "provider_fingerprint",
    "cache_superpixels",
    "cache_backbone",
    "cache_features",
    "TrunkTrainConfig",
    "train_trunk",
    "load_trunk_checkpoint",
    "evaluate_baseline",
    "BIExample",
    "collate_bi",
    "superpixel_class_histogram",
    "histogram_cross_entropy",
    "BITrainConfig",
    "build_head",
    "train_bi",
    "load_bi_checkpoint",
    "evaluate_bi",
    "predict_bi",
]

TRUNK_FORMAT = "bi-trunk-v1"
BI_FORMAT = "bi-head-v1"


# ------------------------------------------------------------------------------------ geometry
def trunk_input_size(height: int, width: int, short_side: int | None = 257) -> tuple[int, int]:
    """Trunk input size: shorter side ``short_side``, aspect kept, both sides ``8k + 1``.

    ``short_side=None`` keeps the native size.
    """
    if short_side is None:
        return int(height), int(width)
    if short_side < 9:
        raise ValueError(f"short_side must be >= 9, got {short_side}")
    s = short_side / min(height, width)

    def snap(n):
        return int(8 * max(1, round((n * s - 1) / 8)) + 1)

    return snap(height), snap(width)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``(3, H, W)`` float32 in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1).div_(255.0)


def resize_for_trunk(image: torch.Tensor, size, align_corners: bool = True) -> torch.Tensor:
    """Bilinear resize of ``(B, 3, H, W)`` with the trunk's pixel convention (identity if same size)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=align_corners).clamp_(0.0, 1.0)


# -------------------------------------------------------------------------------------- caches
def file_fingerprint(path) -> str:
    """First 12 hex digits of the SHA-1 of a file (cache keys follow weight changes)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def config_fingerprint(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


class TensorCache:
    """One file per key under ``root`` (``.pt`` tensors or ``.npy`` arrays), written atomically."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str, ext: str = ".pt") -> Path:
        return self.root / f"{key}{ext}"

    def has(self, key: str, ext: str = ".pt") -> bool:
        return self.path(key, ext).is_file()

    def save_tensor(self, key: str, tensor: torch.Tensor) -> None:
        atomic_torch_save(tensor.detach().cpu().contiguous(), self.path(key))

    def load_tensor(self, key: str) -> torch.Tensor:
        try:
            return torch.load(self.path(key), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"corrupted cache file {self.path(key)} ({exc}); delete it to recompute") from None

    def save_array(self, key: str, array: np.ndarray) -> None:
        from sin.io import atomic_write

        atomic_write(self.path(key, ".npy"), lambda tmp: np.save(tmp, array))  # tmp ends in .npy

    def load_array(self, key: str) -> np.ndarray:
        try:
            return np.load(self.path(key, ".npy"))
        except Exception as exc:
            raise ValueError(f"corrupted cache file {self.path(key, '.npy')} ({exc}); delete it to recompute") from None


def provider_fingerprint(name: str, params: dict | None = None) -> str:
    """Cache key part for a provider: its parameters, plus the content of any weights file.

    SIN with ``weights=None`` uses the shipped weights: their file hash, or ``"untrained"`` while
    none ship, so that new SIN weights invalidate cached SIN superpixels automatically.
    """
    params = dict(params or {})
    parts = {"params": {k: str(v) for k, v in sorted(params.items())}}
    for k, v in params.items():
        if isinstance(v, (str, Path)) and Path(str(v)).is_file():
            parts[f"file:{k}"] = file_fingerprint(v)
    if name == "sin" and params.get("weights") is None:
        from sin.checkpoint import DEFAULT_WEIGHTS

        parts["sin_weights"] = file_fingerprint(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.exists() else "untrained"
    return config_fingerprint(parts)


def _progress(iterable, desc: str, total: int | None = None, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not enabled, mininterval=5.0, unit="img")


def cache_superpixels(dataset: SegmentationDataset, provider: str, n_segments: int, cache_dir, *,
                      params: dict | None = None, progress: bool = True) -> dict:
    """Superpixels of every image (computed once, cached as ``.npy``).

    Returns ``{"labels": {id: (H, W) int32}, "seconds": {id: s} (computed ones), "key": dir}``.
    """
    from sin.providers import get_provider

    prov = get_provider(provider)
    params = dict(params or {})
    key = f"{provider}_k{int(n_segments)}_{provider_fingerprint(provider, params)}"
    cache = TensorCache(Path(cache_dir) / key)
    labels, seconds = {}, {}
    for sid in _progress(dataset.ids, f"superpixels {provider} k={n_segments}", enabled=progress):
        if cache.has(sid, ".npy"):
            labels[sid] = cache.load_array(sid).astype(np.int32)
            continue
        image = dataset.load(sid).image
        t0 = time.perf_counter()
        lab = prov(image, n_segments, **params)
        seconds[sid] = time.perf_counter() - t0
        cache.save_array(sid, lab.astype(np.uint16 if lab.max() < 65535 else np.int32))
        labels[sid] = lab.astype(np.int32)
    return {"labels": labels, "seconds": seconds, "key": str(cache.root)}


@torch.no_grad()
def cache_backbone(trunk: SegmentationTrunk, dataset: SegmentationDataset, cache_dir, *, short_side: int | None = 257,
                   flips: bool = False, device="cpu", progress: bool = True) -> TensorCache:
    """Backbone outputs (float16) of every image (and of its mirror image with ``flips``)."""
    cache = TensorCache(cache_dir)
    trunk = trunk.to(device).eval()
    for sid in _progress(dataset.ids, f"backbone {trunk.name}", enabled=progress):
        keys = [sid] + ([f"{sid}_flip"] if flips else [])
        if all(cache.has(k) for k in keys):
            continue
        img = image_to_tensor(dataset.load(sid).image).unsqueeze(0)
        x = resize_for_trunk(img, trunk_input_size(*img.shape[-2:], short_side), trunk.align_corners).to(device)
        cache.save_tensor(sid, trunk.forward_backbone(x)[0].half())
        if flips:
            cache.save_tensor(f"{sid}_flip", trunk.forward_backbone(x.flip(-1))[0].half())
    return cache


@torch.no_grad()
def cache_features(trunk: SegmentationTrunk, dataset: SegmentationDataset, cache_dir, *, short_side: int | None = 257,
                   backbone_cache: TensorCache | None = None, device="cpu", progress: bool = True) -> TensorCache:
    """Trunk features (float16) of every image; from cached backbone outputs when given."""
    cache = TensorCache(cache_dir)
    trunk = trunk.to(device).eval()
    for sid in _progress(dataset.ids, f"features {trunk.name}", enabled=progress):
        if cache.has(sid):
            continue
        if backbone_cache is not None and backbone_cache.has(sid):
            feats = trunk.forward_head(backbone_cache.load_tensor(sid).float().unsqueeze(0).to(device))
        else:
            img = image_to_tensor(dataset.load(sid).image).unsqueeze(0)
            x = resize_for_trunk(img, trunk_input_size(*img.shape[-2:], short_side), trunk.align_corners)
            feats = trunk(x.to(device)).features
        cache.save_tensor(sid, feats[0].half())
    return cache


# ------------------------------------------------------------------------------ checkpointing
def _save_state(path, obj) -> None:
    atomic_torch_save(obj, path)


def _load_state(path, fmt: str) -> dict:
    obj = load_torch_file(path, "checkpoint", weights_only=False)
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise ValueError(f"{path} is not a {fmt} checkpoint")
    return obj


def _resume(last: Path, fmt: str, opt, resume: bool) -> tuple[dict, dict | None]:
    """The run record and, when ``resume`` finds ``last``, its checkpoint (optimizer and torch RNG
    already restored, so dropout masks continue as in an uninterrupted run; the caller restores
    its modules from the returned state)."""
    record = {"history": [], "best_miou": -1.0, "best_epoch": -1, "epoch": 0, "seconds": 0.0}
    if not (resume and last.is_file()):
        return record, None
    state = _load_state(last, fmt)
    opt.load_state_dict(state["optimizer"])
    if state.get("rng") is not None:
        torch.set_rng_state(state["rng"])
    return state["record"], state


def _shuffle_rng(seed: int, shapes: Sequence, batch_size: int, epochs_done: int) -> random.Random:
    """The batch-shuffling RNG, advanced past ``epochs_done`` epochs so that a resumed run draws
    the same batches as an uninterrupted one."""
    rng = random.Random(seed)
    for _ in range(epochs_done):
        _shape_batches(shapes, batch_size, True, rng)
    return rng


def _end_epoch(record: dict, entry: dict, epoch: int, out_dir: Path, ckpt: dict, weights: dict, opt, tag: str,
               progress: bool) -> None:
    """Log the epoch in ``record``, save ``best.pt`` when val mIoU improved and ``last.pt`` always."""
    record["history"].append(entry)
    record["epoch"] = epoch + 1
    record["seconds"] += entry["seconds"]
    score = entry.get("val_miou", float(epoch))
    if score > record["best_miou"]:
        record["best_miou"], record["best_epoch"] = score, epoch + 1
        _save_state(out_dir / "best.pt", {**ckpt, **weights, "record": record})
    _save_state(out_dir / "last.pt", {**ckpt, **weights, "optimizer": opt.state_dict(), "record": record,
                                      "rng": torch.get_rng_state()})
    if progress:
        print(f"[{tag}] epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                       for k, v in entry.items() if k != "epoch"), flush=True)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _shape_batches(shapes: Sequence, batch_size: int, shuffle: bool, rng: random.Random) -> list[list[int]]:
    """Batches of indices with equal shapes (no padding waste); shuffled within and across groups."""
    groups = defaultdict(list)
    for i, s in enumerate(shapes):
        groups[s].append(i)
    batches = []
    for idx in groups.values():
        if shuffle:
            rng.shuffle(idx)
        batches.extend(idx[i:i + batch_size] for i in range(0, len(idx), batch_size))
    if shuffle:
        rng.shuffle(batches)
    return batches


def _lr_factor(epoch: int, epochs: int) -> float:
    """Cosine decay over the epochs (per-epoch granularity)."""
    return 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))


# --------------------------------------------------------------------------- trunk training
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


def _freeze_batchnorm(module: nn.Module) -> None:
    # small batches: keep the pretrained statistics of any BatchNorm
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _trunk_loss(trunk, coarse: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = trunk.upsample(coarse, labels.shape[-2:])
    return F.cross_entropy(logits, labels, ignore_index=VOID)


def _label_tensor(label: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(label.astype(np.int64))


def train_trunk(trunk: SegmentationTrunk, train_set: SegmentationDataset, val_set: SegmentationDataset | None,
                out_dir, *, config: TrunkTrainConfig | None = None, backbone_cache_dir=None,
                device="cpu", resume: bool = True, progress: bool = True, meta: dict | None = None) -> dict:
    """Fine-tune a trunk (new classifier for ``train_set.classes``) and keep the best on ``val_set``.

    Writes ``out_dir/last.pt`` (every epoch, for ``resume``) and ``out_dir/best.pt`` (best val
    mIoU; the last epoch when there is no validation set). Returns the training record.
    """
    config = config or TrunkTrainConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _seed_everything(config.seed)
    if trunk.num_classes != train_set.num_classes:
        trunk.replace_classifier(train_set.num_classes)
    trunk = trunk.to(device)
    params = list(trunk.head.parameters()) + list(trunk.classifier.parameters())
    if config.mode == "full":
        params = list(trunk.backbone.parameters()) + params
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    record, state = _resume(out_dir / "last.pt", TRUNK_FORMAT, opt, resume)
    if state is not None:
        trunk.load_state_dict(state["state_dict"])
    if record["epoch"] >= config.epochs and (out_dir / "best.pt").is_file():
        return record

    # data: labels (and flipped labels), inputs = cached backbone outputs or resized images
    bb_cache = None
    if config.mode == "head":
        if backbone_cache_dir is None:
            raise ValueError("mode='head' needs backbone_cache_dir")
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
    rng = _shuffle_rng(config.seed, shapes, config.batch_size, record["epoch"])
    for epoch in range(record["epoch"], config.epochs):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = config.lr * _lr_factor(epoch, config.epochs)
        trunk.train()
        if config.mode == "head":
            trunk.backbone.eval()
        _freeze_batchnorm(trunk)
        losses = []
        batches = _shape_batches(shapes, config.batch_size, True, rng)
        for batch in _progress(batches, f"trunk epoch {epoch + 1}/{config.epochs}", enabled=progress):
            labels = torch.stack([_label_tensor(items[i][1]) for i in batch]).to(device)
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
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
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
        _end_epoch(record, entry, epoch, out_dir, ckpt, {"state_dict": trunk.state_dict()}, opt, "trunk", progress)
    return record


def load_trunk_checkpoint(path, *, weights=None) -> tuple[SegmentationTrunk, dict]:
    """Rebuild a fine-tuned trunk from :func:`train_trunk`'s ``best.pt`` (``weights``: not needed)."""
    state = _load_state(path, TRUNK_FORMAT)
    trunk = build_trunk(state["trunk"], weights=weights, num_classes=state["num_classes"])
    trunk.load_state_dict(state["state_dict"])
    return trunk.eval(), state


@torch.no_grad()
def evaluate_baseline(trunk: SegmentationTrunk, dataset: SegmentationDataset, *, short_side: int | None = 257,
                      feature_cache: TensorCache | None = None, backbone_cache: TensorCache | None = None,
                      device="cpu", progress: bool = True, png_dir=None,
                      predictions: dict | None = None) -> ConfusionMatrix:
    """The trunk alone: coarse logits upsampled bilinearly to the native size, argmax."""
    cm = ConfusionMatrix(dataset.num_classes)
    trunk = trunk.to(device).eval()
    for sid in _progress(dataset.ids, f"eval baseline {trunk.name}", enabled=progress):
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
        cm.update(pred, sample.label)
        if predictions is not None:
            predictions[sid] = pred
        if png_dir is not None:
            write_palette_png(pred, Path(png_dir) / f"{sid}.png")
    return cm


# ------------------------------------------------------------------------------------ BI data
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


def _load_examples(dataset, superpixels: dict, feature_cache: TensorCache | None) -> list[BIExample]:
    out = []
    for sid in dataset.ids:
        s = dataset.load(sid)
        if sid not in superpixels:
            raise ValueError(f"no superpixels for image {sid}")
        spl = torch.from_numpy(np.asarray(superpixels[sid]).astype(np.int64))
        if tuple(spl.shape) != s.label.shape:
            raise ValueError(f"superpixels of {sid} are {tuple(spl.shape)}, image is {s.label.shape}")
        feats = feature_cache.load_tensor(sid).float() if feature_cache is not None else None
        out.append(BIExample(sid, image_to_tensor(s.image), _label_tensor(s.label), spl, feats))
    return out


# ----------------------------------------------------------------------------------- BI train
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
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


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
                                  align_corners=trunk.align_corners)
    if config.init == "trunk":
        head.start_from_trunk(trunk.classifier)
    return head


def _bi_forward(head, batch, device, trunk=None, short_side=None, finetune: str = "none"):
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


def train_bi(head: BilateralInceptionHead, train_set: SegmentationDataset, val_set: SegmentationDataset | None,
             superpixels: dict, out_dir, *, config: BITrainConfig | None = None,
             feature_cache: TensorCache | None = None, val_superpixels: dict | None = None,
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
    _seed_everything(config.seed)
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
    record, state = _resume(out_dir / "last.pt", BI_FORMAT, opt, resume)
    if state is not None:
        head.load_state_dict(state["state_dict"])
        if mode != "none" and state.get("trunk_state") is not None:
            trunk.load_state_dict(state["trunk_state"])
    if record["epoch"] >= config.epochs and (out_dir / "best.pt").is_file():
        return record
    examples = _load_examples(train_set, superpixels, None if mode == "full" else feature_cache)
    val_sp = val_superpixels if val_superpixels is not None else superpixels
    shapes = [(tuple(e.image.shape), None if e.features is None else tuple(e.features.shape)) for e in examples]
    rng = _shuffle_rng(config.seed, shapes, config.batch_size, record["epoch"])
    head_config = _head_config(head)
    for epoch in range(record["epoch"], config.epochs):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * _lr_factor(epoch, config.epochs)
        head.train()
        if trunk is not None:
            trunk.eval()
            if mode == "full":
                trunk.train()
            elif mode == "head":
                trunk.head.train()
            _freeze_batchnorm(trunk)
        losses = []
        batches = _shape_batches(shapes, config.batch_size, True, rng)
        for batch_idx in _progress(batches, f"BI epoch {epoch + 1}/{config.epochs}", enabled=progress):
            batch = collate_bi([examples[i] for i in batch_idx], head.num_classes)
            sp_logits, _ = _bi_forward(head, batch, device, trunk, config.short_side, mode)
            loss = histogram_cross_entropy(sp_logits, batch["histogram"].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
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
        _end_epoch(record, entry, epoch, out_dir, ckpt, weights, opt, "BI", progress)
    return record


def _head_config(head: BilateralInceptionHead) -> dict:
    return {"in_channels": head.in_channels, "num_classes": head.num_classes, "mid_channels": head.mid_channels,
            "bi6_spaces": list(head.bi6.spaces), "bi7_spaces": list(head.bi7.spaces),
            "dropout": head.dropout.p, "feature_scales": head.feature_scales, "align_corners": head.align_corners}


def load_bi_checkpoint(path) -> tuple[BilateralInceptionHead, dict]:
    """Rebuild a trained head from :func:`train_bi`'s ``best.pt``."""
    state = _load_state(path, BI_FORMAT)
    cfg = dict(state["head_config"])
    head = BilateralInceptionHead(cfg.pop("in_channels"), cfg.pop("num_classes"), cfg.pop("mid_channels"), **cfg)
    head.load_state_dict(state["state_dict"])
    return head.eval(), state


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
    sp_logits, _ = _bi_forward(head, batch, device, trunk, short_side, finetune)
    best = sp_logits.argmax(1)[0].cpu()  # (S,)
    return best[example.superpixels].numpy().astype(np.uint8)


@torch.no_grad()
def evaluate_bi(head: BilateralInceptionHead, dataset: SegmentationDataset, superpixels: dict, *,
                feature_cache: TensorCache | None = None, trunk: SegmentationTrunk | None = None,
                finetune: str = "none", short_side: int | None = 257, device="cpu", progress: bool = True,
                png_dir=None, predictions: dict | None = None) -> ConfusionMatrix:
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
    for sid in _progress(dataset.ids, "eval BI", enabled=progress):
        s = dataset.load(sid)
        if sid not in superpixels:
            raise ValueError(f"no superpixels for image {sid}")
        feats = None
        if finetune != "full" and feature_cache is not None and feature_cache.has(sid):
            feats = feature_cache.load_tensor(sid).float()
        if feats is None and trunk is None:
            raise ValueError(f"no cached features for image {sid} and no trunk to compute them")
        ex = BIExample(sid, image_to_tensor(s.image), _label_tensor(s.label),
                       torch.from_numpy(np.asarray(superpixels[sid]).astype(np.int64)), feats)
        pred = predict_bi(head, ex, trunk=trunk, short_side=short_side, finetune=finetune, device=device)
        cm.update(pred, s.label)
        if predictions is not None:
            predictions[sid] = pred
        if png_dir is not None:
            write_palette_png(pred, Path(png_dir) / f"{sid}.png")
    return cm


def timed(fn: Callable, *args, **kwargs):
    """``(result, seconds)`` of a call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
