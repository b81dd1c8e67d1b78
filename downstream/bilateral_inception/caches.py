"""What the BI pipeline stores per image: trunk features and backbone outputs, and their keys.

Superpixels are not cached here: they come from the one label-map cache of the toolkit,
:class:`sin.providers.LabelCache` (keyed by the provider's fingerprint and each image's pixels).
A feature cache lives in a folder whose name is a digest of everything that changes its content
(:func:`feature_cache_key`): the trunk's name and weights, the input size, flips, the dataset's
images and the code that computes the features.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from sin.checkpoint import atomic_torch_save, load_torch_file
from sin.fingerprint import config_digest, source_digest, state_digest

from .datasets import SegmentationDataset
from .loop import progress_bar
from .preprocess import image_to_tensor, resize_for_trunk, trunk_input_size
from .trunks import SegmentationTrunk

__all__ = [
    "config_fingerprint",
    "code_version",
    "module_fingerprint",
    "dataset_fingerprint",
    "feature_cache_key",
    "TensorCache",
    "CacheUnion",
    "cache_backbone",
    "cache_features",
]

#: Output version of the feature / backbone caches (trunk input geometry, the trunks' forward).
#: Bump it when a cached tensor for some image would change; comments and docstrings need none.
FEATURE_VERSION = "1"


def config_fingerprint(obj) -> str:
    """12 hex digits of a JSON-able object (sorted keys): :func:`sin.fingerprint.config_digest`."""
    return config_digest(obj, 12)


def code_version(modules: Sequence[str]) -> str:
    """12 hex digits of the source files of ``modules`` (for code without an explicit version)."""
    return source_digest(modules, 12)


def module_fingerprint(module: torch.nn.Module) -> str:
    """12 hex digits of a module's state (:func:`sin.fingerprint.state_digest`)."""
    return state_digest(module, 12)


def dataset_fingerprint(dataset: SegmentationDataset) -> str:
    """12 hex digits of a split's images: name, ids and each image file's path, size and mtime.

    Another copy of the data, an edited image or a different id list gives another key (the
    label files do not enter: features depend on the images only).
    """
    parts = [dataset.name, list(dataset.ids)]
    image_path = getattr(dataset, "image_path", None)
    for sid in dataset.ids:
        if image_path is None:
            parts.append(None)
            continue
        p = Path(image_path(sid)).resolve()
        try:
            st = p.stat()
            parts.append([str(p), st.st_size, st.st_mtime_ns])
        except OSError:
            parts.append([str(p), None])
    return config_fingerprint(parts)


def feature_cache_key(kind: str, trunk_name: str, trunk_weights: str, short_side: int | None, *,
                      flips: bool = False, dataset: SegmentationDataset | None = None) -> str:
    """Folder name of a cache: ``<kind>_<trunk>_<digest>``.

    The digest covers ``trunk_weights`` (a content hash of the weights file, or e.g. ``"random"``),
    the input ``short_side``, ``flips``, the dataset split's images
    (:func:`dataset_fingerprint`) and the output version (:data:`FEATURE_VERSION`).
    """
    key = {"kind": kind, "trunk": trunk_name, "weights": trunk_weights, "short_side": short_side,
           "flips": bool(flips), "version": FEATURE_VERSION,
           "dataset": None if dataset is None else [dataset.name, getattr(dataset, "split", None),
                                                    dataset_fingerprint(dataset)]}
    return f"{kind}_{trunk_name}_{config_fingerprint(key)}"


class TensorCache:
    """One ``.pt`` file per key under ``root``, written atomically."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def save_tensor(self, key: str, tensor: torch.Tensor) -> None:
        atomic_torch_save(tensor.detach().cpu().contiguous(), self.path(key))

    def load_tensor(self, key: str) -> torch.Tensor:
        try:
            return load_torch_file(self.path(key), "cache file")
        except ValueError as exc:
            raise ValueError(f"{exc}; delete it to recompute") from None

    def __repr__(self) -> str:
        return f"TensorCache({str(self.root)!r})"


class CacheUnion:
    """Several caches read as one (e.g. the train, val and test splits' feature folders)."""

    def __init__(self, caches: Sequence[TensorCache]):
        self.caches = list(caches)

    def has(self, key: str) -> bool:
        return any(c.has(key) for c in self.caches)

    def load_tensor(self, key: str) -> torch.Tensor:
        for c in self.caches:
            if c.has(key):
                return c.load_tensor(key)
        raise KeyError(f"{key} is in none of {self.caches}")

    def __repr__(self) -> str:
        return f"CacheUnion({self.caches!r})"


@torch.no_grad()
def cache_backbone(trunk: SegmentationTrunk, dataset: SegmentationDataset, cache_dir, *, short_side: int | None = 257,
                   flips: bool = False, device="cpu", progress: bool = True) -> TensorCache:
    """Backbone outputs (float16) of every image (and of its mirror image with ``flips``)."""
    cache = TensorCache(cache_dir)
    trunk = trunk.to(device).eval()
    for sid in progress_bar(dataset.ids, f"backbone {trunk.name}", enabled=progress):
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
                   backbone_cache=None, device="cpu", progress: bool = True) -> TensorCache:
    """Trunk features (float16) of every image; from cached backbone outputs when given."""
    cache = TensorCache(cache_dir)
    trunk = trunk.to(device).eval()
    for sid in progress_bar(dataset.ids, f"features {trunk.name}", enabled=progress):
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
