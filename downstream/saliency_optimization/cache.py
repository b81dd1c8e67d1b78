"""On-disk cache of 8-bit Saliency Optimization maps, keyed like the label-map cache.

A map is stored as ``<root>/<provider tag>/k<K>-so<key>/<image digest>.png``: the provider's
fingerprint tag (method, parameters, version, weights), the requested superpixel count, the SO
key (:meth:`.protocol.SOProtocol.map_key`: SO's constants and :data:`.core.SO_VERSION`) and the
digest of the image's pixels (:func:`sin.providers.image_digest`), as
:class:`sin.providers.LabelCache` keys label maps. The same image under another name or in
another dataset copy is the same entry; other pixels are another entry. Every PNG also records
the digest and the run's numbers (superpixel count, seconds) as text chunks, and what is read
back is checked (an 8-bit map of the image's size, made from these pixels) before it is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from sin.io import atomic_write

__all__ = ["SOMapCache"]


class SOMapCache:
    """8-bit SO maps by provider, superpixel count, SO key and image digest.

    Parameters
    ----------
    root : path, optional
        Cache folder; default ``sin.paths.cache_root() / "saliency"``.
    recompute : bool, optional
        Ignore stored maps (they are overwritten).
    """

    def __init__(self, root=None, *, recompute: bool = False):
        from sin.paths import cache_root

        self.root = Path(root) if root is not None else cache_root() / "saliency"
        self.recompute = recompute

    def path(self, provider, n_segments: int, key: str, image) -> Path:
        """Where the map of ``image`` (an array, or its :func:`~sin.providers.image_digest`) lives."""
        from sin.providers import image_digest

        digest = image if isinstance(image, str) else image_digest(image)
        return self.root / provider.tag / f"k{int(n_segments)}-so{key}" / f"{digest}.png"

    def load(self, provider, n_segments: int, key: str, image, *, digest: str | None = None):
        """``(map, info)`` if a valid map of these pixels is stored, else ``None``.

        ``info`` holds the PNG's text chunks (strings). A file that is unreadable, half-written,
        of another size or dtype, or made from other pixels counts as absent.
        """
        from sin.providers import image_digest

        if self.recompute:
            return None
        digest = digest or image_digest(image)
        path = self.path(provider, n_segments, key, digest)
        try:
            with Image.open(path) as im:
                im.load()
                q, info = np.asarray(im), dict(im.text)
        except Exception:  # absent, or half-written by a killed run: recompute
            return None
        if q.dtype != np.uint8 or q.shape != tuple(np.shape(image)[:2]) or info.get("image_digest") != digest:
            return None
        return q, info

    def save(self, provider, n_segments: int, key: str, image, q: np.ndarray, info: dict, *,
             digest: str | None = None) -> Path:
        """Store the 8-bit map ``q`` of ``image`` atomically, with ``info`` (and the digest) as text."""
        from sin.providers import image_digest

        digest = digest or image_digest(image)
        q = np.asarray(q)
        if q.dtype != np.uint8 or q.shape != tuple(np.shape(image)[:2]):
            raise ValueError(f"an SO map must be a uint8 array of the image's size {np.shape(image)[:2]}, "
                             f"got {q.dtype} {q.shape}")
        path = self.path(provider, n_segments, key, digest)
        meta = PngImagePlugin.PngInfo()
        for k, v in {**info, "image_digest": digest}.items():
            meta.add_text(k, str(v))
        atomic_write(path, lambda tmp: Image.fromarray(q).save(tmp, format="PNG", pnginfo=meta))
        return path

    def __repr__(self) -> str:
        return f"SOMapCache({str(self.root)!r})"
