"""The one on-disk cache of superpixel label maps, shared by every benchmark and downstream method.

Layout: ``<root>/<provider.tag>/k<n_segments>/<image digest>.npz``, where the tag is the
provider's name and :attr:`~sin.providers.Provider.fingerprint` (parameters, version, weights
sha256) and the image digest covers the pixels (:func:`image_digest`). A map is therefore stored
once whoever asks for it (a benchmark, BI, the CLI) and reused only for the same pixels: another
copy of a dataset, an edited image, new weights, a changed parameter or a new provider version
can never return a stale map.

What comes out is checked before it is served: the file must record the digest of these pixels
and hold a label map that meets the provider contract (an integer ``(H, W)`` map of the image's
shape, labels exactly ``0..K-1``, every region 4-connected where the provider declares it);
anything else is recomputed and rewritten, with a :class:`LabelCacheWarning` naming the file.
A request the provider would refuse (a bad ``n_segments`` or parameter, an image above its size
limit) is refused before the look-up, with the provider's error.

User providers that did not declare their identity (see :mod:`sin.providers.registry`) are kept
in memory for the current process only, never written to disk.

>>> from sin.providers import LabelCache, get_provider
>>> cache = LabelCache()                      # $SIN_CACHE_DIR or <repo>/cache (see sin.paths)
>>> labels, seconds = cache.labels(get_provider("slic"), image, 600, image_id="12003")
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..connectivity import is_4connected
from ..fingerprint import array_digest
from ..image import check_n_segments
from ..io import atomic_write
from ..paths import cache_root
from .provider import Provider
from .registry import get_provider

__all__ = ["LabelCache", "LabelCacheWarning", "image_digest"]

#: label maps of undeclared user providers kept per LabelCache (in memory, this process only)
MEMORY_ENTRIES = 64


class LabelCacheWarning(UserWarning):
    """A stored label map was damaged (unreadable, wrong digest, broken label contract) and is recomputed."""


def image_digest(image: np.ndarray) -> str:
    """Digest of an image's pixels, shape and dtype (what a cached map must have been made from)."""
    return array_digest(image, 32)


def _contract_problem(labels: np.ndarray, shape, connected: bool) -> str | None:
    """Why a stored map breaks the label contract, or ``None`` (cheap: one bincount, one labelling)."""
    if labels.ndim != 2 or labels.shape != tuple(shape):
        return f"shape {labels.shape} for an image of {tuple(shape)[:2]}"
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        return f"{labels.dtype} labels (not integers)"
    if labels.size == 0:
        return "an empty map"
    if labels.min() < 0:
        return f"negative labels (min {labels.min()})"
    if not (np.bincount(labels.ravel().astype(np.int64)) > 0).all():
        return "labels that are not contiguous 0..K-1"
    if connected and not is_4connected(labels):
        return "a region that is not 4-connected"
    return None


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
        self._memory: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __reduce__(self):  # to worker processes: the settings travel, the in-memory maps stay here
        return (LabelCache, (self.root,), {"recompute": self.recompute})

    def __setstate__(self, state: dict) -> None:
        self.recompute = state["recompute"]

    def path(self, provider: Provider, n_segments: int, image) -> Path:
        """Where the map of ``image`` (an array, or its :func:`image_digest`) lives."""
        d = image if isinstance(image, str) else image_digest(image)
        return self.root / provider.tag / f"k{check_n_segments(n_segments)}" / f"{d}.npz"

    def load(self, provider: Provider, image: np.ndarray, n_segments: int) -> tuple[np.ndarray, float] | None:
        """``(labels, seconds)`` if a valid map of these very pixels is stored, else ``None``
        (a damaged one is reported with a :class:`LabelCacheWarning`)."""
        if self.recompute:
            return None
        provider = get_provider(provider)
        if not provider.persistent:
            with self._lock:
                hit = self._memory.get(self._memory_key(provider, image, n_segments))
            return None if hit is None else (hit[0].copy(), hit[1])
        path = self.path(provider, n_segments, image)
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                labels, seconds, digest = z["labels"], float(z["seconds"]), str(z["image"])
        except Exception as exc:  # half-written by a killed run, truncated, not an npz
            return self._damaged(path, f"unreadable ({type(exc).__name__})")
        if digest != image_digest(image):
            return self._damaged(path, "made from other pixels")
        why = _contract_problem(labels, np.shape(image)[:2], provider.connected)
        if why is not None:
            return self._damaged(path, why)
        return labels.astype(np.int32), seconds

    @staticmethod
    def _damaged(path: Path, why: str) -> None:
        warnings.warn(f"label cache file {path} is damaged ({why}): recomputing it", LabelCacheWarning, stacklevel=3)
        return None

    def save(self, provider: Provider, image: np.ndarray, n_segments: int, labels: np.ndarray,
             seconds: float) -> Path | None:
        """Store a map atomically (uint16 when it fits: maps compress to a few kB); in memory only
        (returns ``None``) for a provider whose identity holds for this process only."""
        provider = get_provider(provider)
        if not provider.persistent:
            with self._lock:
                self._memory[self._memory_key(provider, image, n_segments)] = (np.array(labels, np.int32), seconds)
                while len(self._memory) > MEMORY_ENTRIES:
                    self._memory.popitem(last=False)
            return None
        path = self.path(provider, n_segments, image)
        small = labels.astype(np.uint16) if labels.max(initial=0) < 65536 else labels.astype(np.int32)

        def _write(tmp):
            with open(tmp, "wb") as f:
                np.savez_compressed(f, labels=small, seconds=np.float64(seconds),
                                    image=np.str_(image_digest(image)))

        atomic_write(path, _write)
        return path

    @staticmethod
    def _memory_key(provider: Provider, image, n_segments) -> tuple:
        return provider.fingerprint, check_n_segments(n_segments), image_digest(image)

    def labels(self, provider, image: np.ndarray, n_segments: int, image_id: str | None = None, *,
               group: str | None = None) -> tuple[np.ndarray, float]:
        """The provider's labels for ``image`` (cached, or computed and stored) and the seconds
        the provider took when they were computed.

        ``provider`` is anything :func:`~sin.providers.get_provider` accepts. ``image_id`` and
        ``group`` are accepted for compatibility and ignored: the image's pixels name the file.

        Raises
        ------
        ValueError
            What the provider would refuse (a bad ``n_segments``, an image above its size
            limit), before the look-up: a stored map never answers a request the provider refuses.
        """
        provider = get_provider(provider)
        provider.check_request(np.shape(image), n_segments)
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
