"""Loading and saving SIN weights (ours and the original code's), with clear errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .io import atomic_write
from .model import BASE_CHANNELS, SINNet, channel_plan, convert_original_state_dict

__all__ = ["DEFAULT_WEIGHTS", "load_model", "load_torch_file", "save_weights", "atomic_torch_save", "UntrainedWarning",
           "infer_architecture"]

#: Weights shipped inside the package, trained by ``python -m sin train`` (see results/training).
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "sin_bsds500.pt"

_FORMAT = "sin-weights-v1"


class UntrainedWarning(UserWarning):
    """Raised (as a warning) when SIN runs with randomly initialised weights."""


def atomic_torch_save(obj, path) -> None:
    """``torch.save`` through :func:`sin.io.atomic_write` (never half-written): a temporary next to
    ``path``, then a rename. Temporaries of this path left by a writer killed mid-save (``kill -9``)
    are deleted first, so they do not pile up over resumed runs."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp), clean_stale=True)


def load_torch_file(path, what: str, *, weights_only: bool = True, map_location="cpu", hint: str = ""):
    """``torch.load`` a local file with errors that name it.

    Raises ``FileNotFoundError`` ("<what> not found: <path>" plus ``hint``) when the file is
    missing and ``ValueError`` ("cannot read <what> <path>: corrupted or not a torch file") when
    it cannot be unpickled; checking what the object holds is the caller's job.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}{hint}")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # pickle, zip and truncation errors differ between torch versions
        raise ValueError(f"cannot read {what} {path}: corrupted or not a torch file "
                         f"({type(exc).__name__}: {_torch_error_detail(exc)})") from None


def _torch_error_detail(exc: Exception) -> str:
    """The cause in torch's message, on one line, without its advice to load with
    ``weights_only=False`` (arbitrary code execution: never the fix for a broken weights file)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
        text = text.split("Please use", 1)[0].split("Check the documentation", 1)[0]
    elif "weights_only" in text:
        text = "not a plain tensor file"
    return " ".join(text.split()) or type(exc).__name__


def save_weights(model: SINNet, path, meta: dict | None = None) -> None:
    """Save inference weights (``state_dict``, architecture and metadata) atomically.

    The architecture (``batch_norm``, ``width``, ``depth`` of :class:`~sin.model.SINNet`) is
    recorded, so :func:`load_model` rebuilds a network of the right size from the file alone.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    arch = getattr(model, "architecture", {"batch_norm": model.batch_norm})
    atomic_torch_save({"format": _FORMAT, "batch_norm": model.batch_norm, "architecture": dict(arch),
                       "state_dict": state, "meta": dict(meta or {})}, path)


def infer_architecture(state: dict) -> dict:
    """``{"batch_norm", "width", "depth"}`` of the :class:`~sin.model.SINNet` a state dict comes from,
    read from its tensors (files written before the architecture was recorded, original checkpoints)."""
    first = state.get("conv0a.0.weight")
    if not isinstance(first, torch.Tensor) or first.ndim != 4:
        raise ValueError("no 'conv0a.0.weight' convolution: not a SIN state dict")
    return {"batch_norm": "conv0a.1.running_mean" in state, "width": first.shape[0] / BASE_CHANNELS,
            "depth": 2 if any(k.startswith("conv0b.") for k in state) else 1}


def _architecture(obj: dict, state: dict, source: str) -> dict:
    """The architecture a weights file records (checked against its tensors), else the inferred one."""
    inferred = infer_architecture(state)
    recorded = obj.get("architecture") if isinstance(obj.get("architecture"), dict) else None
    if recorded is None:
        return inferred
    arch = {"batch_norm": bool(recorded.get("batch_norm", True)), "width": float(recorded.get("width", 1.0)),
            "depth": int(recorded.get("depth", 2))}
    try:
        channel_plan(arch["width"], arch["depth"])
    except ValueError as exc:
        raise ValueError(f"SIN weights {source} record an invalid architecture {recorded}: {exc}") from None
    if arch != inferred:
        raise ValueError(f"SIN weights {source} record the architecture {arch} but their tensors are those of "
                         f"{inferred}: a damaged or hand-edited file")
    return arch


def _untrained(seed: int = 0, width: float = 1.0, depth: int = 2) -> SINNet:
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = SINNet(width=width, depth=depth)
    finally:
        torch.random.set_rng_state(gen_state)
    model.trained = False
    return model.eval()


def load_model(weights=None, *, map_location="cpu", width: float | None = None,
               depth: int | None = None) -> SINNet:
    """Build a :class:`~sin.model.SINNet` in eval mode with the given weights.

    Parameters
    ----------
    weights : str, path, dict or None
        ``None``: the shipped weights (:data:`DEFAULT_WEIGHTS`); if they are absent, an
        untrained network (seeded, with an :class:`UntrainedWarning`). ``"untrained"``: the
        seeded random network, silently. A path: a file written by :func:`save_weights`, a
        training checkpoint of ``python -m sin train``, or an original ``yuanqqq/SIN``
        checkpoint (``{'state_dict': ...}``, converted by
        :func:`~sin.model.convert_original_state_dict`). A dict: a state dict. The network's
        width and depth come from the file (recorded by :func:`save_weights`, else read from the
        tensor shapes), so the shipped SIN and a small one load through the same call.
    width, depth : optional
        The architecture the caller expects; ``None`` accepts the file's. A file of another
        architecture raises ``ValueError``. (``"untrained"`` builds a network of this size.)

    Raises
    ------
    FileNotFoundError
        The weights file does not exist.
    ValueError
        The file is not a readable torch checkpoint, its tensors do not match the network
        (missing or unexpected keys, wrong shapes), or its architecture is not ``width``/``depth``.
    """
    if isinstance(weights, str) and weights == "untrained":
        return _untrained(width=1.0 if width is None else width, depth=2 if depth is None else depth)
    if weights is None:
        if not DEFAULT_WEIGHTS.exists():
            warnings.warn(
                f"no shipped SIN weights at {DEFAULT_WEIGHTS}: running an UNTRAINED network "
                "(superpixels are valid but not image-adaptive); train with `python -m sin train`",
                UntrainedWarning, stacklevel=2,
            )
            return _untrained()
        weights = DEFAULT_WEIGHTS
    source = "state dict"
    if isinstance(weights, dict):
        obj = weights
    else:
        source = str(weights)
        obj = load_torch_file(weights, "SIN weights file", map_location=map_location)
    if not isinstance(obj, dict):
        raise ValueError(f"SIN weights {source} hold a {type(obj).__name__}, expected a dict")
    if "model" in obj and isinstance(obj["model"], dict):  # a training checkpoint
        obj = obj["model"]
    state = convert_original_state_dict(obj)
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"SIN weights {source} do not contain a state dict of tensors")
    try:
        arch = _architecture(obj, state, source)
        channel_plan(arch["width"], arch["depth"])
    except ValueError as exc:
        raise ValueError(f"SIN weights {source} do not match the network: {exc}") from None
    for name, want in (("width", width), ("depth", depth)):
        if want is not None and float(want) != float(arch[name]):
            raise ValueError(f"SIN weights {source} hold a network of {name} {arch[name]:g}, expected {want:g} "
                             f"(architecture of the file: width {arch['width']:g}, depth {arch['depth']})")
    model = SINNet(**arch)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"SIN weights {source} do not match the network: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    bad = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
           if state[k].shape != v.shape]
    if bad:
        raise ValueError(f"SIN weights {source} have wrong tensor shapes: {bad[:5]}")
    model.load_state_dict(state)
    bad_values = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad_values:
        raise ValueError(f"SIN weights {source} contain NaN/inf in {bad_values[:5]}")
    model.trained = True
    return model.eval()
