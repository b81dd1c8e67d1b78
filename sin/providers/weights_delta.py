"""SIN weights stored as a delta on the shipped weights.

A fine-tuned SIN that changed only part of the network (end-to-end training through Bilateral
Inception trains the decoder: 0.6 M of 1.8 M parameters) is stored as that part alone, with the
sha256 of the shipped weights file it applies to: 2.4 MB instead of 7.1 MB, small enough to ship.
:func:`merged_weights_file` rebuilds the full network once and writes it to the cache
(``sin.paths.cache_root() / "weights"``, named by both digests) with a record of its own sha256,
checked on every use (a damaged or replaced merged file is rebuilt, with a warning), so the
ordinary ``sin`` machinery (:func:`sin.superpixels`, its predictor cache keyed by file content)
runs it unchanged.

Named deltas are weights tags of the ``sin`` provider (``sin:weights=msrc21``, registered in
:mod:`sin.providers.sin_provider`); a delta file given as a path (``sin:weights=PATH``) works too
(:func:`full_weights_file`).
"""

from __future__ import annotations

import threading
import warnings
import zipfile
from pathlib import Path

import torch

from ..checkpoint import DEFAULT_WEIGHTS, atomic_torch_save, load_model, load_torch_file, save_weights
from ..fingerprint import file_sha256
from ..io import atomic_write
from ..model import SINNet
from ..paths import cache_root

__all__ = ["DELTA_FORMAT", "full_weights_file", "is_weights_delta", "load_weights_delta", "merged_weights_file",
           "save_weights_delta"]

DELTA_FORMAT = "sin-weights-delta-v1"
#: the part of SIN a decoder-only fine-tuning changes
DECODER_PREFIXES = ("deconv", "pred_mask")


def save_weights_delta(model: SINNet, path, *, base=None, prefixes=DECODER_PREFIXES, meta: dict | None = None) -> None:
    """Write the tensors of ``model`` whose names start with ``prefixes`` and record the sha256 of
    the ``base`` weights file (default: the shipped weights) they apply to. Raises ``ValueError``
    when ``model`` differs from ``base`` outside ``prefixes`` (the delta would lose it)."""
    base = Path(base) if base is not None else DEFAULT_WEIGHTS
    ref = load_model(base).state_dict()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    outside = [k for k, v in state.items() if not k.startswith(tuple(prefixes)) and not torch.equal(v, ref[k])]
    if outside:
        raise ValueError(f"the model differs from {base.name} outside {prefixes}: {outside[:3]}...")
    delta = {k: v for k, v in state.items() if k.startswith(tuple(prefixes))}
    atomic_torch_save({"format": DELTA_FORMAT, "base_sha256": file_sha256(base), "base_name": base.name,
                       "batch_norm": model.batch_norm, "state_dict": delta, "meta": dict(meta or {})}, path)


def load_weights_delta(path, *, expected_sha256: str | None = None) -> dict:
    """The delta file's content, after checking its format and (optionally) its sha256."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SIN weights delta not found: {path}")
    _check_sha256(path, expected_sha256)
    obj = load_torch_file(path, "SIN weights delta")
    if not isinstance(obj, dict) or obj.get("format") != DELTA_FORMAT or not isinstance(obj.get("state_dict"), dict):
        raise ValueError(f"{path} is not a SIN weights delta ({DELTA_FORMAT})")
    return obj


def _check_sha256(path: Path, expected: str | None) -> str:
    sha = file_sha256(path)
    if expected is not None and sha != expected:
        raise ValueError(f"{path} has sha256 {sha[:16]}..., the registry records "
                         f"{expected[:16]}...: a corrupted or replaced weights file")
    return sha


_BASE_OF: dict = {}  # delta sha256 -> sha256 of the base weights it applies to (read once per file)
_IS_DELTA: dict = {}  # file sha256 -> whether it is a delta
_LOCK = threading.Lock()


def merged_weights_file(path, *, expected_sha256: str | None = None, base=None) -> Path:
    """The full weights file of a delta, built once in the cache (named by both files' sha256)
    and checked against its recorded sha256 on every use (rebuilt, with a warning, when it was
    damaged or replaced)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SIN weights delta not found: {path}")
    sha = _check_sha256(path, expected_sha256)
    with _LOCK:
        base_sha = _BASE_OF.get(sha)
    if base_sha is None:
        base_sha = load_weights_delta(path)["base_sha256"]
        with _LOCK:
            _BASE_OF[sha] = base_sha
    base = Path(base) if base is not None else DEFAULT_WEIGHTS
    if not base.is_file():
        raise FileNotFoundError(f"the base SIN weights of {path.name} are missing: {base}")
    if file_sha256(base) != base_sha:
        raise ValueError(f"{path.name} applies to weights with sha256 {base_sha[:16]}..., "
                         f"{base} has {file_sha256(base)[:16]}...")
    out = cache_root() / "weights" / f"sin_{base_sha[:12]}_{sha[:12]}.pt"
    record = out.with_name(out.name + ".sha256")
    if out.is_file() and record.is_file():
        if file_sha256(out) == record.read_text().strip():
            return out
        warnings.warn(f"{out}: the merged weights do not match their recorded sha256 (damaged or replaced): "
                      "rebuilding them", stacklevel=2)
    delta = load_weights_delta(path)
    model = load_model(base)
    state = model.state_dict()
    unknown = set(delta["state_dict"]) - set(state)
    if unknown:
        raise ValueError(f"{path.name} has tensors SIN does not have: {sorted(unknown)[:3]}")
    state.update(delta["state_dict"])
    model.load_state_dict(state)
    save_weights(model, out, meta={"merged_from": [base.name, path.name], **delta.get("meta", {})})
    digest = file_sha256(out)
    atomic_write(record, lambda tmp: Path(tmp).write_text(digest + "\n"))
    return out


def is_weights_delta(path) -> bool:
    """Whether ``path`` is a weights delta (read from the torch archive's pickle, not loaded)."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
            return name is not None and DELTA_FORMAT.encode() in z.read(name)
    except (OSError, zipfile.BadZipFile):
        return False


def full_weights_file(weights):
    """``weights`` as :func:`sin.superpixels` takes it: a delta file becomes its merged full file;
    anything else (a full weights file, ``None``, ``"untrained"``, a state dict) is returned as is."""
    if not isinstance(weights, (str, Path)) or not Path(weights).is_file():
        return weights
    sha = file_sha256(weights)
    with _LOCK:
        delta = _IS_DELTA.get(sha)
    if delta is None:
        delta = is_weights_delta(weights)
        with _LOCK:
            _IS_DELTA[sha] = delta
    return merged_weights_file(weights) if delta else weights
