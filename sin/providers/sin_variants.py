"""SIN weight variants stored as a delta on the shipped weights, and the named variants.

A fine-tuned SIN that changed only part of the network (end-to-end training through Bilateral
Inception trains the decoder: 0.6 M of 1.8 M parameters) is stored as that part alone, with the
sha256 of the shipped weights file it applies to: 2.4 MB instead of 7.1 MB, small enough to ship.
:func:`merged_weights_file` rebuilds the full network once and writes it to the cache
(``sin.paths.cache_root() / "weights"``, named by both digests), so the ordinary ``sin`` machinery
(:func:`sin.superpixels`, its predictor cache keyed by file content) runs it unchanged.

Named variants are registered providers: ``sin_msrc21`` is SIN fine-tuned end to end through BI on
MSRC-21 (``results/semseg/README.md``); the registry records its file's sha256 and refuses a file with
another (a corrupted or replaced download). A variant registers only when its file is present.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import DEFAULT_WEIGHTS, atomic_torch_save, load_model, load_torch_file, save_weights
from ..inference import superpixels
from ..model import SINNet
from ..paths import cache_root
from .registry import DEFAULT_MAX_PIXELS, WeightsInfo, file_sha256, register_provider

__all__ = ["DELTA_FORMAT", "save_weights_delta", "load_weights_delta", "merged_weights_file", "SINVariant",
           "register_sin_variant", "VARIANTS"]

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
    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise ValueError(f"{path} has sha256 {file_sha256(path)[:16]}..., the registry records "
                         f"{expected_sha256[:16]}...: a corrupted or replaced weights file")
    obj = load_torch_file(path, "SIN weights delta")
    if not isinstance(obj, dict) or obj.get("format") != DELTA_FORMAT or not isinstance(obj.get("state_dict"), dict):
        raise ValueError(f"{path} is not a SIN weights delta ({DELTA_FORMAT})")
    return obj


def merged_weights_file(path, *, expected_sha256: str | None = None, base=None) -> Path:
    """The full weights file of a delta (built once, in the cache; keyed by both files' sha256)."""
    delta = load_weights_delta(path, expected_sha256=expected_sha256)
    base = Path(base) if base is not None else DEFAULT_WEIGHTS
    if not base.is_file():
        raise FileNotFoundError(f"the base SIN weights of {Path(path).name} are missing: {base}")
    if file_sha256(base) != delta["base_sha256"]:
        raise ValueError(f"{Path(path).name} applies to weights with sha256 {delta['base_sha256'][:16]}..., "
                         f"{base} has {file_sha256(base)[:16]}...")
    out = cache_root() / "weights" / f"sin_{delta['base_sha256'][:12]}_{file_sha256(path)[:12]}.pt"
    if out.is_file():
        return out
    model = load_model(base)
    state = model.state_dict()
    unknown = set(delta["state_dict"]) - set(state)
    if unknown:
        raise ValueError(f"{Path(path).name} has tensors SIN does not have: {sorted(unknown)[:3]}")
    state.update(delta["state_dict"])
    model.load_state_dict(state)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, out, meta={"merged_from": [base.name, Path(path).name], **delta.get("meta", {})})
    return out


# ----------------------------------------------------------------------------- named variants
#: code the variants' output depends on (the sin provider's, plus this module)
VARIANT_CODE = ("sin.providers.sin_variants", "sin.providers.sin_provider", "sin.inference", "sin.model",
                "sin.fast_model", "sin.interpolation", "sin.geometry", "sin.image", "sin.checkpoint",
                "sin.connectivity")


class SINVariant:
    """The provider function of a named variant: ``sin`` with the variant's weights delta.

    ``weights=None`` is the registered file, checked against its recorded sha256; another file
    (e.g. a re-trained one) is used as given.
    """

    def __init__(self, name: str, filename: str, sha256: str):
        self.name, self.filename, self.sha256 = name, filename, sha256

    def default_file(self) -> Path:
        return DEFAULT_WEIGHTS.parent / self.filename

    def __call__(self, image, n_segments: int, *, weights=None, device="cpu", precision="auto"):
        if weights is None:
            full = merged_weights_file(self.default_file(), expected_sha256=self.sha256)
        else:
            full = merged_weights_file(weights)
        return superpixels(image, n_segments, weights=full, device=device, precision=precision)

    def __reduce__(self):  # spawn workers rebuild it from the registry's arguments
        return (SINVariant, (self.name, self.filename, self.sha256))


#: name -> SINVariant of every registered variant
VARIANTS: dict[str, SINVariant] = {}


def register_sin_variant(name: str, filename: str, sha256: str, *, source: str, description: str,
                         overwrite: bool = False) -> SINVariant:
    """Register ``name`` as SIN with the weights delta ``sin/weights/<filename>`` (sha256 recorded)."""
    from .sin_provider import resolved_params

    fn = SINVariant(name, filename, sha256)
    info = WeightsInfo(param="weights", default=fn.default_file, source=f"{source} (sha256 {sha256})",
                       licence="same licence as this toolkit")
    register_provider(name, fn, connected=True, connectivity="by construction", extra=True,
                      description=description, weights=info, code=VARIANT_CODE, version="1",
                      resolve_params=resolved_params, max_pixels=DEFAULT_MAX_PIXELS.get("sin"), overwrite=overwrite)
    VARIANTS[name] = fn
    return fn


# ----------------------------------------------------------------------------- the shipped variants
#: name -> (delta file in ``sin/weights``, its sha256, where it comes from, one-line description).
#: Regenerate with the commands in ``results/semseg/README.md`` (then update the sha256 here).
SHIPPED_VARIANTS = {
    "sin_msrc21": ("sin_msrc21_delta.pt", "be5ec46698aa67c4914f4442b9a19eb5ccff4fe5202b3c757e8ed0d27e1017d7",
                   "SIN's decoder trained end to end through a Bilateral Inception head on MSRC-21 train, "
                   "the seed selected on val (results/semseg/README.md)",
                   "SIN fine-tuned for MSRC-21 semantic segmentation (end to end through BI)"),
}

for _name, (_file, _sha, _source, _description) in SHIPPED_VARIANTS.items():
    if (DEFAULT_WEIGHTS.parent / _file).is_file():  # a variant registers only when its file is present
        register_sin_variant(_name, _file, _sha, source=_source, description=_description)
