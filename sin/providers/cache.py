"""The one on-disk cache of superpixel label maps, shared by every benchmark and downstream method.

Layout: ``<root>/<provider.tag>/k<n_segments>/<image digest>.npz``, where the tag is the
provider's name and :attr:`~sin.providers.Provider.fingerprint` (parameters, version, weights
sha256) and the image digest covers the pixels (:func:`image_digest`). A map is therefore stored
once whoever asks for it (a benchmark, BI, the CLI) and reused only for the same pixels: another
copy of a dataset, an edited image, new weights, a changed parameter or a new provider version
can never return a stale map. Each file also records the digest it was made from, checked on
load.

>>> from sin.providers import LabelCache, get_provider
>>> cache = LabelCache()                      # $SIN_CACHE_DIR or <repo>/cache (see sin.paths)
>>> labels, seconds = cache.labels(get_provider("slic"), image, 600, image_id="12003")
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from ..fingerprint import array_digest
from ..io import atomic_write
from ..paths import cache_root
from .registry import Provider, get_provider

__all__ = ["LabelCache", "image_digest"]


def image_digest(image: np.ndarray) -> str:
    """Digest of an image's pixels, shape and dtype (what a cached map must have been made from)."""
    return array_digest(image, 32)


class LabelCache:
    """Label maps keyed by provider fingerprint, requested count and image content.

    Parameters
    ----------
    root : path, optional
        Cache folder; default ``sin.paths.cache_root() / "labels"``.
    recompute : bool, optional
        Ignore stored maps (they are overwritten with fresh ones).
    """

    def __init__(self, root=None, *, recompute: bool = False):
        self.root = Path(root) if root is not None else cache_root() / "labels"
        self.recompute = recompute

    def path(self, provider: Provider, n_segments: int, image) -> Path:
        """Where the map of ``image`` (an array, or its :func:`image_digest`) lives."""
        d = image if isinstance(image, str) else image_digest(image)
        return self.root / provider.tag / f"k{int(n_segments)}" / f"{d}.npz"

    def load(self, provider: Provider, image: np.ndarray, n_segments: int) -> tuple[np.ndarray, float] | None:
        """``(labels, seconds)`` if a map of these very pixels is stored, else ``None``."""
        if self.recompute:
            return None
        path = self.path(provider, n_segments, image)
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                labels, seconds, digest = z["labels"].astype(np.int32), float(z["seconds"]), str(z["image"])
        except Exception:  # half-written by a killed run or unreadable: recompute
            return None
        if digest != image_digest(image) or labels.shape != tuple(np.shape(image)[:2]):
            return None
        return labels, seconds

    def save(self, provider: Provider, image: np.ndarray, n_segments: int, labels: np.ndarray,
             seconds: float) -> Path:
        """Store a map atomically (uint16 when it fits: maps compress to a few kB)."""
        path = self.path(provider, n_segments, image)
        small = labels.astype(np.uint16) if labels.max(initial=0) < 65536 else labels.astype(np.int32)

        def _write(tmp):
            with open(tmp, "wb") as f:
                np.savez_compressed(f, labels=small, seconds=np.float64(seconds),
                                    image=np.str_(image_digest(image)))

        atomic_write(path, _write)
        return path

    def labels(self, provider, image: np.ndarray, n_segments: int, image_id: str | None = None, *,
               group: str | None = None) -> tuple[np.ndarray, float]:
        """The provider's labels for ``image`` (cached, or computed and stored) and the seconds
        the provider took when they were computed.

        ``provider`` is anything :func:`~sin.providers.get_provider` accepts. ``image_id`` and
        ``group`` are accepted for compatibility and ignored: the image's pixels name the file.
        """
        provider = get_provider(provider)
        hit = self.load(provider, image, n_segments)
        if hit is not None:
            return hit
        with warnings.catch_warnings():
            from ..checkpoint import UntrainedWarning

            warnings.simplefilter("ignore", UntrainedWarning)  # the caller records which weights ran
            t0 = time.perf_counter()
            labels = provider(image, n_segments)
            seconds = time.perf_counter() - t0
        self.save(provider, image, n_segments, labels, seconds)
        return labels, seconds

    def __repr__(self) -> str:
        return f"LabelCache({str(self.root)!r})"
