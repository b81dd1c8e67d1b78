"""Training SIN on BSDS500 (``python -m sin train``).

As in the paper (``../shared/specs/sin.md`` section 5): train + val images, every human
annotation a separate sample (1633 samples), random crops and joint horizontal/vertical flips,
Adam (0.9, 0.999) with L2 weight decay 4e-4 on weights only, step-halving of the learning rate.

The whole training set lives as tensors on the training device and every augmentation
(crop, flip, optional rescale) runs there, so a GPU is never waiting for a data loader.

Presets
-------
``paper``
    The paper/code schedule: 225x225 crops, batch 4, lr 5e-5 halved at 200k, 300k iterations.
    About 3 h on an RTX 2080Ti; impossible on 2 CPU cores (~0.1 s per sample here).
``cpu``
    A useful model on 2 CPU cores in about 2 hours (the shipped weights) (see :data:`PRESETS` for the choices and
    ``results/training/README.md`` for what they gave).
``distill-small``
    The small SIN (width 0.5, one convolution per encoder level, about a sixth of the shipped
    network's multiply-adds) trained by distillation from a teacher SIN (``--teacher``, default
    the shipped weights) plus the ground-truth loss, bf16 autocast (see :data:`PRESETS` and
    ``results/small_sin/README.md``). Train it on BSDS500 train minus a held-out list
    (``--splits train --holdout sin/data/small_sin_holdout.txt``) and select its snapshot on
    the held-out images.
``tiny``
    A few steps on tiny crops, for tests.

Distillation: with ``distill_weight > 0`` the loss is :func:`sin.loss.sin_loss` on the ground
truth plus ``distill_weight`` times :func:`sin.loss.distill_loss`, a KL term between the teacher's
and the student's decisions at every inserted position of every step. The teacher runs as a
:class:`~sin.fast_model.FastSIN` (its logit differences only, in bf16 with ``amp``); its sha256 is
stored in the checkpoint, and a resume with another teacher is refused.

Checkpoints (``<out>/checkpoint.pt``, atomic) hold model, optimizer, iteration and every RNG
state, so ``--resume`` continues exactly where the run stopped; ``<out>/log.csv`` gets one row
per logged step (its ``seconds`` add up over resumed segments). A finished run can be extended:
resume it with a larger ``--iterations`` and, optionally, learning-rate milestones after its
checkpoint; anything that already shaped the weights must stay as it was. With ``torchrun --nproc_per_node N -m sin train ...`` the run uses
DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0 writes all outputs.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .argtypes import number as _number
from .checkpoint import DEFAULT_WEIGHTS, atomic_torch_save, load_model, load_torch_file, save_weights
from .fingerprint import arrays_digest, file_sha256, hasher
from .geometry import network_size
from .inference import normalize_image
from .io import remove_stale_temporaries
from .loss import distill_loss, sin_loss
from .model import SINNet, channel_plan

__all__ = ["TrainConfig", "PRESETS", "TrainingSet", "train", "add_train_parser", "load_bsds500_training",
           "bsds500_training_identity"]


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (every field is a CLI flag)."""

    crop: int = 225                  #: crop side; rounded down to 16n-15 (225 -> 15x15 seeds)
    batch_size: int = 4
    lr: float = 5e-5
    iterations: int = 300_000
    milestones: tuple = (200_000,)   #: lr is multiplied by ``gamma`` at each
    gamma: float = 0.5
    warmup: int = 0                  #: linear lr warm-up steps
    weight_decay: float = 4e-4       #: coupled L2 on parameters named *weight (as the code)
    loss: str = "probabilities"      #: "probabilities" (original double softmax) or "logits" (clean CE);
    # the original won at equal budget (results/training/loss_comparison.md), so it is the default
    scale_aug: tuple | None = None   #: (min, max) random rescale before cropping, or None
    checkpoint_every: int = 1000
    snapshot_every: int = 1000       #: keep a weights-only snapshot every N steps (for ASA-vs-steps)
    log_every: int = 20
    seed: int = 0
    threads: int | None = None
    amp: bool = False                #: autocast (bf16 on CPU, fp16 on CUDA)
    width: float = 1.0               #: channel multiplier of the trained network (sin.model.channel_plan)
    depth: int = 2                   #: convolutions per encoder level: 2 (the original) or 1
    distill_weight: float = 0.0      #: weight of the KL term to a teacher's decisions (needs a teacher)
    distill_temperature: float = 1.0  #: softening T of the distillation term

    def __post_init__(self):
        if self.crop < 17:
            raise ValueError(f"crop must be >= 17 (two seeds per side), got {self.crop}")
        for name in ("batch_size", "iterations", "checkpoint_every", "snapshot_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        # gamma <= 0 or > 1 would turn a learning-rate *decay* into a sign flip (gradient ascent) or growth
        if not (isinstance(self.gamma, (int, float)) and 0 < self.gamma <= 1):
            raise ValueError(f"gamma (learning-rate factor at each milestone) must be in (0, 1], got {self.gamma!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a non-negative number, got {self.weight_decay!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be a positive integer or None, got {self.threads!r}")
        channel_plan(self.width, self.depth)  # ValueError for a width/depth SINNet cannot build
        self.width, self.depth = float(self.width), int(self.depth)
        if not (isinstance(self.distill_weight, (int, float)) and math.isfinite(self.distill_weight)
                and self.distill_weight >= 0):
            raise ValueError(f"distill_weight must be a non-negative number, got {self.distill_weight!r}")
        if not (isinstance(self.distill_temperature, (int, float)) and math.isfinite(self.distill_temperature)
                and self.distill_temperature > 0):
            raise ValueError(f"distill_temperature must be a positive number, got {self.distill_temperature!r}")
        if self.loss not in ("logits", "probabilities"):
            raise ValueError(f"loss must be 'logits' or 'probabilities', got {self.loss!r}")
        self.milestones = tuple(int(m) for m in self.milestones)  # ints: the original code's
        # string milestones never matched the iteration counter and silently disabled decay
        if self.scale_aug is not None:
            lo, hi = self.scale_aug
            if not 0 < lo <= hi:
                raise ValueError(f"scale_aug must be (min, max) with 0 < min <= max, got {self.scale_aug}")
            self.scale_aug = (float(lo), float(hi))

    @property
    def net_crop(self) -> int:
        n = (self.crop + 15) // 16
        return network_size(n, n)[0]


#: Why the ``cpu`` preset looks like this: a 145x145 batch of 8 costs ~0.42 s on 2 idle cores
#: (~0.7 s with 1 thread), so 15.5k steps (124k samples, ~1 h 50 min) fit the 2.5 h budget,
#: against the paper's 1.2M samples. Smaller crops (145x145, 10x10 seeds) give ~2.4x more samples
#: per second than 225x225 at the same pixel throughput. A 20x larger learning rate than the
#: paper's (1e-3, warm-up, five halvings) reached after 500 steps the validation ASA that 2e-4
#: reached after 1000 (results/training/loss_comparison.md); quality stopped rising at a constant
#: learning rate and rose after each halving (results/training/snapshots.md), hence the late
#: halvings. Random rescaling (0.6-1.5x) shows the network the scales at which inference resizes
#: images for 200-1200 superpixels (the paper trains at native scale only).
#: The ``distill-small`` preset: the ``cpu`` preset's crops, batch, augmentation and learning rate
#: for a width-0.5, depth-1 student (the width/depth that reach about 2x fast-slic's time at
#: 481x321, K=600: ``results/small_sin/README.md``), KL to the teacher with weight 1 (the terms are
#: normalised alike), bf16 autocast; halvings placed as the ``cpu`` run's over a shorter
#: schedule (what about 2.5 h of one shared core allows).
DISTILL_SMALL = TrainConfig(crop=145, batch_size=8, lr=1e-3, iterations=16_000, milestones=(6_000, 9_500, 12_000, 14_500),
                            warmup=300, scale_aug=(0.6, 1.5), width=0.5, depth=1, distill_weight=1.0, amp=True,
                            snapshot_every=500, checkpoint_every=250)

PRESETS = {
    "paper": TrainConfig(),
    "cpu": TrainConfig(crop=145, batch_size=8, lr=1e-3, iterations=15_500,
                       milestones=(3_500, 5_250, 6_300, 11_500, 13_500), warmup=300, scale_aug=(0.6, 1.5)),
    "distill-small": DISTILL_SMALL,
    "tiny": TrainConfig(crop=33, batch_size=2, lr=1e-3, iterations=4, milestones=(3,), checkpoint_every=2,
                        snapshot_every=2, log_every=1),
}


class TrainingSet:
    """Images and segmentations as device tensors, with on-device augmentation.

    Parameters
    ----------
    images : list of (H, W, 3) uint8 arrays
    segmentations : list of lists of (H, W) integer arrays
        One list of human annotations per image; every annotation is one sample.
    device : torch.device
    identity : dict, optional
        What the data is (e.g. :func:`bsds500_training_identity`: dataset root and a fingerprint
        of its files); stored in checkpoints so that ``--resume`` refuses a different training
        set. Default: ``{"fingerprint": <digest of the pixels and labels>}``.
    """

    def __init__(self, images, segmentations, device="cpu", *, identity: dict | None = None):
        if len(images) != len(segmentations) or not images:
            raise ValueError("need one (non-empty) list of segmentations per image")
        self.device = torch.device(device)
        self.images, self.labels, self.samples = [], [], []
        for i, (img, segs) in enumerate(zip(images, segmentations)):
            img = np.asarray(img)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"training image {i} must be (H, W, 3) uint8, got {img.dtype} {img.shape}")
            self.images.append(torch.tensor(img).permute(2, 0, 1).contiguous().to(self.device))
            stack = []
            for seg in segs:
                seg = np.asarray(seg)
                if seg.shape != img.shape[:2]:
                    raise ValueError(f"segmentation of image {i} has shape {seg.shape}, image {img.shape[:2]}")
                stack.append(torch.from_numpy(seg.astype(np.int32)))
            if not stack:
                raise ValueError(f"image {i} has no segmentation")
            self.labels.append(torch.stack(stack).to(self.device))
            self.samples.extend((i, t) for t in range(len(stack)))
        if identity is None:  # the content: each image, then its segmentations as int32 (one at a time)
            content = (a for img, segs in zip(images, segmentations)
                       for a in (np.asarray(img), *(np.asarray(seg, dtype=np.int32) for seg in segs)))
            identity = {"fingerprint": arrays_digest(content, 32)}
        self.identity = dict(identity)

    def __len__(self) -> int:
        return len(self.samples)

    def batch(self, size: int, crop: int, generator: torch.Generator, scale_aug=None):
        """A random batch ``(images float (B,3,c,c) in [0,1], labels int64 (B,c,c))``.

        All randomness comes from ``generator`` (a CPU generator, so runs are reproducible and
        resumable on any device).
        """
        pick = torch.randint(len(self.samples), (size,), generator=generator).tolist()
        flips = torch.rand((size, 2), generator=generator).tolist()
        scales = torch.rand((size,), generator=generator).tolist()
        offs = torch.rand((size, 2), generator=generator).tolist()
        xs, ys = [], []
        for b, k in enumerate(pick):
            i, t = self.samples[k]
            img, lab = self.images[i].float() / 255.0, self.labels[i][t]
            h, w = img.shape[-2:]
            s = 1.0
            if scale_aug is not None:
                lo, hi = scale_aug
                s = math.exp(math.log(lo) + scales[b] * (math.log(hi) - math.log(lo)))
            s = max(s, crop / min(h, w))  # the crop must fit
            if s != 1.0:
                size_hw = (max(crop, round(h * s)), max(crop, round(w * s)))
                img = F.interpolate(img[None], size=size_hw, mode="bilinear", align_corners=False,
                                    antialias=s < 1)[0]
                lab = F.interpolate(lab[None, None].float(), size=size_hw, mode="nearest-exact")[0, 0].to(lab.dtype)
                h, w = size_hw
            y0 = int(offs[b][0] * (h - crop + 1))
            x0 = int(offs[b][1] * (w - crop + 1))
            img = img[:, y0:y0 + crop, x0:x0 + crop]
            lab = lab[y0:y0 + crop, x0:x0 + crop]
            if flips[b][0] < 0.5:  # vertical flip, then horizontal, jointly (original order)
                img, lab = img.flip(-2), lab.flip(-2)
            if flips[b][1] < 0.5:
                img, lab = img.flip(-1), lab.flip(-1)
            xs.append(img)
            ys.append(lab)
        return torch.stack(xs).clamp_(0, 1), torch.stack(ys).long()


def _kept_indices(ds, limit, exclude) -> list[int]:
    n = len(ds) if limit is None else min(limit, len(ds))
    return [k for k in range(n) if ds.ids[k] not in exclude]


def _checked_exclude(datasets, exclude) -> frozenset:
    """``exclude`` as a set of ids, every one of which is an image of ``datasets`` (a typo in a
    held-out list would otherwise silently train on the image it meant to hold out)."""
    exclude = frozenset(str(i) for i in (exclude or ()))
    known = {i for ds in datasets for i in ds.ids}
    unknown = sorted(exclude - known)
    if unknown:
        raise ValueError(f"held-out ids not among the training images ({', '.join(ds.split for ds in datasets)}): "
                         f"{unknown[:5]}{'...' if len(unknown) > 5 else ''}")
    return exclude


def load_bsds500_training(root=None, splits=("train", "val"), limit: int | None = None, exclude=None):
    """BSDS500 images and all their annotations for training (train + val, as the paper).

    Returns ``(images, segmentations, ids)``. Unlike the original preprocessing, images are
    not cropped to 320x480 and annotations with more than 50 segments are kept intact (the
    original merged segments 51+ into segment 0 only because it stored labels as uint8 PNG).
    ``exclude``: image ids left out (a held-out list; each must be an image of ``splits``).
    ``limit`` counts the first N images of each split before the exclusion.
    """
    from .datasets.bsds500 import BSDS500

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    # open (and so check) every split before decoding a single image: a missing split or
    # ground-truth file must fail in a second, not after minutes of loading
    datasets = [BSDS500(root, split=split) for split in splits]
    exclude = _checked_exclude(datasets, exclude)
    images, segs, ids = [], [], []
    for ds in datasets:
        for k in _kept_indices(ds, limit, exclude):
            image_id, image, gts = ds[k]
            images.append(image)
            segs.append(gts)
            ids.append(image_id)
    return images, segs, ids


def bsds500_training_identity(root=None, splits=("train", "val"), limit: int | None = None, exclude=None) -> dict:
    """What :func:`load_bsds500_training` would load, without decoding it: the dataset root and a
    sha256 over the relative paths and sizes of its image and ground-truth files.

    Recorded in training checkpoints; ``--resume`` refuses a checkpoint made on other data. With
    ``exclude`` (held-out ids) the files of those images are left out of the fingerprint and the
    sorted ids are recorded as ``"excluded"`` (without, the identity is what it always was).
    """
    from .datasets.bsds500 import BSDS500

    datasets = [BSDS500(root, split=split) for split in splits]
    exclude = _checked_exclude(datasets, exclude)
    h = hasher()
    root_path = None
    n_images = 0
    for ds in datasets:
        root_path = ds.root
        kept = _kept_indices(ds, limit, exclude)
        for k in kept:
            for f in (ds.image_path(k), ds.ground_truth_path(k)):
                h.update(f"{f.relative_to(ds.root).as_posix()}\t{f.stat().st_size}\n".encode())
        n_images += len(kept)
    identity = {"root": str(Path(root_path).resolve()) if root_path else None, "splits": list(splits),
                "limit": limit, "images": n_images, "fingerprint": h.hexdigest()}
    if exclude:
        identity["excluded"] = sorted(exclude)
    return identity


def _param_groups(model, weight_decay):
    # as the original: L2 decay on every parameter whose name contains "weight" (BN gamma too)
    decay = [p for n, p in model.named_parameters() if "weight" in n]
    no_decay = [p for n, p in model.named_parameters() if "weight" not in n]
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def _lr_at(cfg: TrainConfig, it: int) -> float:
    lr = cfg.lr * (cfg.gamma ** sum(it >= m for m in cfg.milestones))
    if cfg.warmup and it < cfg.warmup:
        lr *= (it + 1) / cfg.warmup
    return lr


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def run_files(out_dir) -> list[Path]:
    """The files of a training run in ``out_dir`` (checkpoint, log, weights, snapshots)."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    named = [out / n for n in ("checkpoint.pt", "log.csv", "weights.pt")]
    return [p for p in named if p.exists()] + sorted(out.glob("step_*.pt"))


def prepare_run_dir(out_dir, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Check (and create) a run folder before any work starts.

    An existing run is never silently replaced: without ``resume`` a folder holding
    ``checkpoint.pt``, ``log.csv``, ``weights.pt`` or ``step_*.pt`` is refused unless
    ``overwrite`` (which deletes those files first, so no stale snapshot survives). Both ``resume``
    and ``overwrite`` also delete the temporaries a save killed mid-write left behind
    (:func:`sin.io.remove_stale_temporaries`).
    """
    out = Path(out_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if resume:
        if not (out / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"--resume: training checkpoint not found: {out / 'checkpoint.pt'}")
        remove_stale_temporaries(out, legacy=True)  # half-written saves of a killed run (kill -9)
        return out
    existing = run_files(out)
    if existing:
        if not overwrite:
            names = ", ".join(p.name for p in existing[:4]) + (", ..." if len(existing) > 4 else "")
            raise ValueError(f"--out {out} already holds a training run ({names}); pass --resume to continue "
                             "it or --overwrite to delete it and start over")
        for p in existing:
            p.unlink()
    if overwrite:
        remove_stale_temporaries(out, legacy=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out {out} is not a writable folder ({exc.strerror or exc})") from None
    return out


_CHECKPOINT_KEYS = ("model", "optimizer", "iteration", "config", "rng")


def teacher_identity(teacher) -> dict | None:
    """``{"path", "sha256"}`` of a teacher weights file (``None`` for no teacher); the sha256 is
    what a resumed run must match."""
    if teacher is None:
        return None
    path = Path(teacher)
    if not path.is_file():
        raise FileNotFoundError(f"--teacher: SIN weights file not found: {path}")
    return {"path": str(path.resolve()), "sha256": file_sha256(path)}


def _check_teacher(cfg: TrainConfig, teacher) -> None:
    if cfg.distill_weight > 0 and teacher is None:
        raise ValueError(f"distill_weight {cfg.distill_weight} needs a teacher (a SIN weights file)")
    if cfg.distill_weight == 0 and teacher is not None:
        raise ValueError("a teacher was given but distill_weight is 0: set --distill-weight")


def _load_teacher(teacher, device, dtype):
    from .fast_model import FastSIN

    return FastSIN.from_model(load_model(teacher).to(device)).to(device, dtype)


def train(cfg: TrainConfig, data: TrainingSet, out_dir, *, resume: bool = False, overwrite: bool = False,
          device="cpu", progress: bool = True, on_step=None, teacher=None) -> SINNet:
    """Train a SIN network; returns the trained model (eval mode).

    Writes ``checkpoint.pt`` (resumable), ``log.csv``, ``step_<k>.pt`` snapshots and the final
    ``weights.pt`` (inference weights, loadable by :func:`sin.checkpoint.load_model`) to ``out_dir``.

    ``out_dir`` must not hold a run already unless ``resume`` (continue it; the checkpoint must
    come from the same configuration, the same training data, ``data.identity``, and the same
    teacher) or ``overwrite`` (delete its files and start over): see :func:`prepare_run_dir`.

    ``teacher``: a SIN weights file (any width) whose decisions the network learns with weight
    ``cfg.distill_weight`` (required exactly when that weight is positive).
    """
    from tqdm import tqdm

    _check_teacher(cfg, teacher)
    teacher_id = teacher_identity(teacher)
    device = torch.device(device)
    world, rank = _dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite) if rank == 0 else Path(out_dir)
    torch.manual_seed(cfg.seed)
    model = SINNet(width=cfg.width, depth=cfg.depth).to(device).train()
    optim = torch.optim.Adam(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    start = 0
    ckpt_path = out / "checkpoint.pt"
    if resume:
        ckpt = load_torch_file(ckpt_path, "--resume: training checkpoint", weights_only=False, map_location=device)
        if not isinstance(ckpt, dict) or not all(k in ckpt for k in _CHECKPOINT_KEYS):
            found = sorted(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
            hint = " (these are inference weights, not a training checkpoint)" if isinstance(ckpt, dict) and \
                "state_dict" in ckpt else ""
            raise ValueError(f"--resume: {ckpt_path} is not a training checkpoint{hint}: expected keys "
                             f"{list(_CHECKPOINT_KEYS)}, found {found}")
        start = int(ckpt["iteration"])
        _check_resumable(ckpt["config"], cfg, start, ckpt_path)
        _check_same_data(ckpt.get("data"), getattr(data, "identity", None), ckpt_path)
        _check_same_teacher(ckpt.get("teacher"), teacher_id, ckpt_path)
        model.load_state_dict(ckpt["model"])
        optim.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["rng"]["data"][rank] if isinstance(ckpt["rng"]["data"], list) else ckpt["rng"]["data"])
        torch.random.set_rng_state(ckpt["rng"]["torch"])
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    log_path = out / "log.csv"
    elapsed_before = _truncate_log(log_path, start, distill=teacher is not None) if rank == 0 else 0.0
    crop = cfg.net_crop
    amp_dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
    teacher_net = None
    if teacher is not None:  # decisions only, in the autocast dtype: soft targets need no fp32
        teacher_net = _load_teacher(teacher, device, amp_dtype if cfg.amp else torch.float32)
    running_kd = []
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    bar = tqdm(total=cfg.iterations, initial=start, desc="train SIN", unit="it",
               disable=not progress or rank != 0, dynamic_ncols=True)
    # ``seconds`` in the log is training wall time summed over every resumed segment
    t_start, running = time.perf_counter() - elapsed_before, []
    for it in range(start, cfg.iterations):
        lr = _lr_at(cfg, it)
        for g in optim.param_groups:
            g["lr"] = lr
        x, y = data.batch(cfg.batch_size, crop, gen, cfg.scale_aug)
        x = normalize_image(x)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=cfg.amp):
            logits = net(x)
        logits = [lg.float() for lg in logits]
        loss = sin_loss(logits, y, on_probabilities=cfg.loss == "probabilities")
        if teacher_net is not None:
            with torch.no_grad():
                target = teacher_net.scores(x.to(teacher_net.enc_w[0].dtype))
            kd = distill_loss(logits, target, temperature=cfg.distill_temperature)
            running_kd.append(kd.item())
            loss = loss + cfg.distill_weight * kd
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at iteration {it}; lower the learning rate")
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()
        running.append(loss.item())
        done = it + 1
        bar.update(1)
        if rank == 0:
            if done % cfg.log_every == 0 or done == cfg.iterations:
                extra = [float(np.mean(running_kd))] if teacher_net is not None else []
                _append_log(log_path, done, float(np.mean(running)), lr, time.perf_counter() - t_start, *extra)
                bar.set_postfix(loss=f"{np.mean(running):.4f}", lr=f"{lr:.2e}")
                running, running_kd = [], []
            if done % cfg.snapshot_every == 0:
                save_weights(model, out / f"step_{done:07d}.pt",
                             meta={"iteration": done, **_meta(cfg, data, teacher_id)})
        if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
            _save_checkpoint(ckpt_path, model, optim, gen, cfg, done, world, rank, getattr(data, "identity", None),
                             teacher_id)
        if on_step is not None:
            on_step(done, loss.item())
    bar.close()
    if rank == 0:
        save_weights(model, out / "weights.pt", meta={"iteration": cfg.iterations, **_meta(cfg, data, teacher_id)})
    if world > 1:
        torch.distributed.barrier()
    return model.eval()


def _check_resumable(saved: dict, cfg: TrainConfig, start: int, path) -> None:
    """A resumed run may only be *extended*: more iterations and learning-rate milestones after the
    checkpoint. Everything that already shaped the weights must match, or the result would not be
    the run the log describes."""
    # thread count and logging cadences do not shape the weights, so they may change freely
    operational = ("threads", "checkpoint_every", "snapshot_every", "log_every")
    saved = {**_ADDED_FIELDS, **saved}  # checkpoints written before these fields existed had their defaults
    saved = {k: v for k, v in saved.items() if k not in operational}
    now = {k: v for k, v in asdict(cfg).items() if k not in operational}
    if cfg.iterations < start:
        raise ValueError(f"--resume: {path} is at iteration {start}, past the requested {cfg.iterations}")
    past_saved = sorted(int(m) for m in saved.pop("milestones") if int(m) <= start)
    past_now = sorted(m for m in now.pop("milestones") if m <= start)
    if past_saved != past_now:
        raise ValueError(f"--resume: milestones up to iteration {start} were {past_saved}, "
                         f"the new configuration has {past_now}; only later milestones may change")
    saved.pop("iterations"), now.pop("iterations")
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
    now = {k: tuple(v) if isinstance(v, list) else v for k, v in now.items()}
    diff = {k: (saved.get(k), now[k]) for k in now if saved.get(k) != now[k]}
    if diff:
        raise ValueError(f"--resume: {path} was written with a different configuration "
                         f"(saved vs requested): {diff}")


#: TrainConfig fields added after checkpoints were first written, with the value those runs had
_ADDED_FIELDS = {"width": 1.0, "depth": 2, "distill_weight": 0.0, "distill_temperature": 1.0}


def _check_same_teacher(saved: dict | None, now: dict | None, path) -> None:
    """A resumed distillation must learn from the teacher it started with (same file content)."""
    saved_sha = (saved or {}).get("sha256")
    now_sha = (now or {}).get("sha256")
    if saved_sha != now_sha:
        def what(t):
            return f"{t['path']} (sha256 {t['sha256'][:12]})" if t else "no teacher"
        raise ValueError(f"--resume: {path} was trained with {what(saved)} as teacher, the request has "
                         f"{what(now)}; resume with the same --teacher")


def _check_same_data(saved: dict | None, now: dict | None, path) -> None:
    """A resumed run must train on the data its checkpoint was trained on."""
    if not saved or not now:  # checkpoints from before the data was recorded: nothing to compare
        return
    if saved.get("fingerprint") != now.get("fingerprint"):
        where = lambda d: d.get("root") or "arrays"  # noqa: E731
        raise ValueError(f"--resume: {path} was trained on other data ({where(saved)}, {saved.get('images', '?')} "
                         f"images, fingerprint {str(saved.get('fingerprint'))[:12]}) than the requested "
                         f"({where(now)}, {now.get('images', '?')} images, fingerprint "
                         f"{str(now.get('fingerprint'))[:12]}); resume with the same --data/--splits/--limit/--holdout")


def _meta(cfg, data=None, teacher_id=None):
    meta = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
            "torch": str(torch.__version__)}
    identity = getattr(data, "identity", None)
    if identity and identity.get("excluded"):  # what the network never saw (its held-out images)
        meta["data"] = identity
    if teacher_id is not None:
        meta["teacher"] = teacher_id
    return meta


def _save_checkpoint(path, model, optim, gen, cfg, iteration, world, rank, data_identity=None, teacher_id=None):
    state = gen.get_state()
    if world > 1:  # every rank's data stream must resume exactly: gather the generator states
        states = [torch.empty_like(state) for _ in range(world)]
        torch.distributed.all_gather_object(states, state)
        state = states
    if rank == 0:
        atomic_torch_save({"model": model.state_dict(), "optimizer": optim.state_dict(),
                           "iteration": iteration, "config": asdict(cfg), "data": data_identity,
                           "teacher": teacher_id,
                           "rng": {"data": state, "torch": torch.random.get_rng_state()}}, path)


def _truncate_log(path: Path, iteration: int, distill: bool = False) -> float:
    """Keep log rows up to ``iteration`` (a resumed run rewrites what came after its checkpoint);
    returns the wall time logged up to there, so the resumed run's clock continues from it.
    A distillation run logs its KL term (already inside ``loss``) in a fifth column."""
    if not path.exists() or iteration == 0:
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(["iteration", "loss", "lr", "seconds"] + (["distill"] if distill else []))
        return 0.0
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= iteration]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(keep)
    return float(keep[-1][3]) if len(keep) > 1 else 0.0


def _append_log(path: Path, iteration, loss, lr, seconds, *extra) -> None:
    with open(path, "a", newline="") as f:
        csv.writer(f).writerow([iteration, f"{loss:.6f}", f"{lr:.3e}", f"{seconds:.1f}"] + [f"{v:.6f}" for v in extra])


def add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train SIN on BSDS500",
        description="Train SIN on BSDS500 train+val (every annotation a sample). "
                    "Presets: paper (the paper's schedule, GPU), cpu (15.5k steps, ~2 h on 2 cores), "
                    "distill-small (a width-0.5 SIN distilled from the shipped one; use with --splits train "
                    "--holdout sin/data/small_sin_holdout.txt), tiny (tests).",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--data", default=None,
                   help="BSDS500 root (images/, groundTruth/); default $SIN_BSDS500, $SIN_DATA_ROOT/BSDS500 "
                        "or ../shared/data/BSDS500")
    p.add_argument("--splits", nargs="+", default=["train", "val"], help="BSDS500 splits to train on")
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, log.csv, weights.pt)")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true",
                     help="continue from <out>/checkpoint.pt (same configuration and training data); a finished "
                          "run can be extended with a larger --iterations and --milestones added after its checkpoint")
    run.add_argument("--overwrite", action="store_true",
                     help="<out> holds an earlier run: delete its checkpoint, log, weights and step_*.pt snapshots "
                          "and start over (without --resume or --overwrite an existing run is refused)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=_number(int, "--limit", low=1), default=None,
                   help="use only the first N images per split")
    p.add_argument("--holdout", type=Path, default=None, metavar="FILE",
                   help="image ids (one a line) left out of training, e.g. sin/data/small_sin_holdout.txt: the "
                        "images on which snapshots are selected")
    p.add_argument("--teacher", type=Path, default=None, metavar="WEIGHTS",
                   help="SIN weights to distill from (default with a positive --distill-weight: the shipped weights)")
    p.add_argument("--width", type=_number(float, "--width", low=0, low_open=True), default=None,
                   help="channel multiplier of the network (1: the shipped SIN; 16 * width must be an integer)")
    p.add_argument("--depth", type=int, choices=(1, 2), default=None, help="convolutions per encoder level")
    p.add_argument("--distill-weight", type=_number(float, "--distill-weight", low=0), default=None,
                   help="weight of the KL term to the teacher's decisions (0: no distillation)")
    p.add_argument("--distill-temperature", type=_number(float, "--distill-temperature", low=0, low_open=True),
                   default=None)
    for f in ("crop", "batch_size", "iterations", "checkpoint_every", "snapshot_every", "log_every", "threads"):
        flag = "--" + f.replace("_", "-")
        p.add_argument(flag, type=_number(int, flag, low=17 if f == "crop" else 1), default=None)
    for f in ("warmup", "seed"):
        flag = "--" + f.replace("_", "-")
        p.add_argument(flag, type=_number(int, flag, low=0), default=None)
    p.add_argument("--lr", type=_number(float, "--lr", low=0, low_open=True), default=None)
    p.add_argument("--gamma", type=_number(float, "--gamma", low=0, low_open=True, high=1), default=None,
                   help="learning-rate factor at each milestone, in (0, 1]")
    p.add_argument("--weight-decay", type=_number(float, "--weight-decay", low=0), default=None)
    p.add_argument("--milestones", type=_number(int, "--milestones", low=1), nargs="*", default=None)
    p.add_argument("--loss", choices=["logits", "probabilities"], default=None,
                   help="cross-entropy on softmax probabilities (original code, default: it trained better "
                        "at equal budget) or clean cross-entropy on logits")
    p.add_argument("--scale-aug", type=_number(float, "--scale-aug", low=0, low_open=True), nargs=2, default=None,
                   metavar=("MIN", "MAX"))
    p.add_argument("--no-scale-aug", action="store_true")
    p.add_argument("--amp", action="store_true", help="mixed precision (autocast)")
    p.set_defaults(func=_cmd_train)


def _check_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"--device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here (use --device cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available here")
    return device


def _cmd_train(args) -> int:
    # expected failures (bad arguments, data, folders, disk) end with one line and exit code 2;
    # everything is checked before the dataset is decoded
    try:
        return _run_train(args)
    except (ValueError, OSError, FloatingPointError) as exc:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename is not None:  # e.g. disk full, permission denied
            text = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
        print(f"error: {' '.join(text.split())}", file=sys.stderr)
        return 2


def _run_train(args) -> int:
    cfg = PRESETS[args.preset]
    changes = {}
    for f in ("crop", "batch_size", "iterations", "warmup", "checkpoint_every", "snapshot_every", "log_every",
              "seed", "threads", "lr", "gamma", "weight_decay", "loss", "width", "depth", "distill_weight",
              "distill_temperature"):
        v = getattr(args, f)
        if v is not None:
            changes[f] = v
    if args.milestones is not None:
        changes["milestones"] = tuple(args.milestones)
    if args.scale_aug is not None:
        changes["scale_aug"] = tuple(args.scale_aug)
    if args.no_scale_aug:
        changes["scale_aug"] = None
    if args.amp:
        changes["amp"] = True
    cfg = replace(cfg, **changes)  # TrainConfig validates the combination
    device = _check_device(args.device)
    teacher = args.teacher
    if teacher is None and cfg.distill_weight > 0:
        teacher = DEFAULT_WEIGHTS
    _check_teacher(cfg, teacher)
    teacher_id = teacher_identity(teacher)
    if teacher is not None:  # a broken or foreign file fails now, not after the data is decoded
        load_model(teacher)
    exclude = None
    if args.holdout is not None:
        from .datasets import read_id_list

        exclude = read_id_list(args.holdout)
    identity = bsds500_training_identity(args.data, tuple(args.splits), args.limit, exclude)  # checks the data
    if args.resume:  # a checkpoint from other data, settings or teacher is refused before loading anything
        _precheck_resume(args.out, cfg, identity, teacher_id)
    else:
        if not args.overwrite:  # refuse an existing run, or an unwritable --out, before loading the data
            prepare_run_dir(args.out)
    images, segs, ids = load_bsds500_training(args.data, tuple(args.splits), args.limit, exclude)
    data = TrainingSet(images, segs, device=device, identity=identity)
    held = f", {len(exclude)} held out" if exclude else ""
    kd = f", distilled from {Path(teacher).name} (weight {cfg.distill_weight:g})" if teacher is not None else ""
    print(f"training on {len(ids)} images / {len(data)} samples ({', '.join(args.splits)}{held}), "
          f"width {cfg.width:g}, depth {cfg.depth}, crop {cfg.net_crop}, batch {cfg.batch_size}, "
          f"{cfg.iterations} iterations, loss on {cfg.loss}{kd}")
    train(cfg, data, args.out, resume=args.resume, overwrite=args.overwrite, device=device, teacher=teacher)
    print(f"weights written to {args.out / 'weights.pt'}")
    return 0


def _precheck_resume(out, cfg: TrainConfig, identity: dict, teacher_id: dict | None = None) -> None:
    path = prepare_run_dir(out, resume=True) / "checkpoint.pt"
    ckpt = load_torch_file(path, "--resume: training checkpoint", weights_only=False)
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in _CHECKPOINT_KEYS):
        hint = " (these are inference weights, not a training checkpoint)" if isinstance(ckpt, dict) and \
            "state_dict" in ckpt else ""
        raise ValueError(f"--resume: {path} is not a training checkpoint{hint}")
    _check_resumable(ckpt["config"], cfg, int(ckpt["iteration"]), path)
    _check_same_data(ckpt.get("data"), identity, path)
    _check_same_teacher(ckpt.get("teacher"), teacher_id, path)
