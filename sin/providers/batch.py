"""Run a superpixel provider over many images in parallel: :func:`run_provider`.

>>> from sin.providers import run_provider
>>> labels = run_provider("slic", ["a.jpg", "b.jpg"], n_segments=600, processes=2)

Kept for existing callers; the runner itself is :func:`sin.parallel.label_maps` (any executor,
a Dask cluster included, image sources, per-image counts, collected failures), and the pool,
:func:`parallel_map` and :func:`limit_threads` live in :mod:`sin.parallel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor

import numpy as np

from ..parallel import limit_threads, label_maps, parallel_map, process_pool

__all__ = ["limit_threads", "parallel_map", "process_pool", "run_provider"]


def run_provider(provider, images: Sequence, n_segments: int = 600, *, processes: int | None = 2,
                 threads: int = 1, progress: bool = True, mp_context: str = "spawn",
                 executor: Executor | None = None, cache=None, **params) -> list[np.ndarray]:
    """Superpixels of many images with one provider, in parallel processes.

    :func:`sin.parallel.label_maps` with the provider's parameters given as keywords
    (``compactness=20`` for SLIC, ``weights=...`` for SIN) and two local processes by default.
    ``cache``: a :class:`~sin.providers.LabelCache` (used with its settings) or its root.
    Failures raise :class:`sin.parallel.ItemError` (a ``RuntimeError``) naming the image.
    """
    from .registry import get_provider

    provider = get_provider(provider, **params)  # fail fast, listing the available providers
    return label_maps(provider, images, n_segments, cache=cache, executor=executor, processes=processes,
                      threads=threads, mp_context=mp_context, progress=progress)
