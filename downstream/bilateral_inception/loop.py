"""The generic epoch loop pieces shared by trunk and BI training: checkpoints, resume, shuffles.

A run folder holds ``last.pt`` (every epoch: weights, optimizer, torch RNG, record) and
``best.pt`` (the epoch with the best val mIoU). A resumed run draws the same batches and dropout
masks as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sin.checkpoint import atomic_torch_save, load_torch_file

__all__ = ["progress_bar", "save_state", "load_state", "resume_state", "shuffle_rng", "end_epoch",
           "seed_everything", "shape_batches", "lr_factor", "freeze_batchnorm", "optimizer_step"]


def progress_bar(iterable, desc: str, total: int | None = None, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not enabled, mininterval=5.0, unit="img")


def optimizer_step(opt, loss: torch.Tensor) -> float:
    """One gradient step on ``loss``; returns its value."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def save_state(path, obj) -> None:
    atomic_torch_save(obj, path)


def load_state(path, fmt: str) -> dict:
    obj = load_torch_file(path, "checkpoint")  # weights_only: a checkpoint never needs to run code
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise ValueError(f"{path} is not a {fmt} checkpoint")
    return obj


def resume_state(last: Path, fmt: str, opt, resume: bool) -> tuple[dict, dict | None]:
    """The run record and, when ``resume`` finds ``last``, its checkpoint (optimizer and torch RNG
    already restored, so dropout masks continue as in an uninterrupted run; the caller restores
    its modules from the returned state)."""
    record = {"history": [], "best_miou": -1.0, "best_epoch": -1, "epoch": 0, "seconds": 0.0}
    if not (resume and last.is_file()):
        return record, None
    state = load_state(last, fmt)
    opt.load_state_dict(state["optimizer"])
    if state.get("rng") is not None:
        torch.set_rng_state(state["rng"])
    return state["record"], state


def shuffle_rng(seed: int, shapes: Sequence, batch_size: int, epochs_done: int) -> random.Random:
    """The batch-shuffling RNG, advanced past ``epochs_done`` epochs so that a resumed run draws
    the same batches as an uninterrupted one."""
    rng = random.Random(seed)
    for _ in range(epochs_done):
        shape_batches(shapes, batch_size, True, rng)
    return rng


def end_epoch(record: dict, entry: dict, epoch: int, out_dir: Path, ckpt: dict, weights: dict, opt, tag: str,
              progress: bool) -> None:
    """Log the epoch in ``record``, save ``best.pt`` when val mIoU improved and ``last.pt`` always."""
    record["history"].append(entry)
    record["epoch"] = epoch + 1
    record["seconds"] += entry["seconds"]
    score = entry.get("val_miou", float(epoch))
    if score > record["best_miou"]:
        record["best_miou"], record["best_epoch"] = score, epoch + 1
        save_state(out_dir / "best.pt", {**ckpt, **weights, "record": record})
    save_state(out_dir / "last.pt", {**ckpt, **weights, "optimizer": opt.state_dict(), "record": record,
                                     "rng": torch.get_rng_state()})
    if progress:
        print(f"[{tag}] epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                        for k, v in entry.items() if k != "epoch"), flush=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def shape_batches(shapes: Sequence, batch_size: int, shuffle: bool, rng: random.Random) -> list[list[int]]:
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


def lr_factor(epoch: int, epochs: int) -> float:
    """Cosine decay over the epochs (per-epoch granularity)."""
    return 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))



def freeze_batchnorm(module: nn.Module) -> None:
    # small batches: keep the pretrained statistics of any BatchNorm
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
