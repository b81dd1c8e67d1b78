"""Run a superpixel provider (or any function) over many images in parallel processes.

>>> from sin.providers import run_provider
>>> labels = run_provider("slic", ["a.jpg", "b.jpg"], n_segments=600, processes=2)

Workers are separate processes (``concurrent.futures.ProcessPoolExecutor``, ``spawn`` start
method by default: safe with torch and OpenCV threads, and on every OS). Each worker limits
torch / OpenCV / numba to ``threads`` threads so that ``processes x threads`` stays within the
machine. Results come back in input order; a tqdm bar shows progress. Functions given to
:func:`parallel_map` must be importable top-level functions (they are pickled by name), and
a script that starts workers must do so under ``if __name__ == "__main__":`` (spawned workers
re-import the main module).

Workers die with their parent: each one watches its parent process and exits within about
half a second when it is gone (e.g. ``kill -9`` of a benchmark), instead of finishing its
queue as an orphan holding hundreds of MB.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["limit_threads", "parallel_map", "process_pool", "run_provider"]


def limit_threads(threads: int = 1) -> None:
    """Cap the intra-op threads of torch, OpenCV and numba in this process."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for libraries initialised later
    try:
        import torch

        torch.set_num_threads(threads)
    except Exception:  # pragma: no cover - torch is a dependency, but never fail a worker for it
        pass
    try:
        import cv2

        cv2.setNumThreads(threads)
    except Exception:  # pragma: no cover
        pass
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except Exception:  # pragma: no cover
        pass


def _watch_parent(interval: float = 0.5) -> None:
    """Exit this (worker) process soon after its parent process dies.

    A daemon thread polls ``os.getppid()``: when the parent dies the worker is re-parented
    (to init or a subreaper) and the id changes. Polling is used rather than Linux's
    ``PR_SET_PDEATHSIG``, which fires when the parent *thread* that started the worker exits
    (pools start workers from whichever thread submits work) and exists only on Linux.
    """
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)  # no cleanup: the results have nobody to go to

    threading.Thread(target=watch, name="sin-watch-parent", daemon=True).start()


def _init_worker(threads: int = 1) -> None:
    _watch_parent()
    limit_threads(threads)


def _check_processes(processes) -> int:
    if processes is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) or processes < 1:
        raise ValueError(f"processes must be a positive int (or None for all cores), got {processes!r}")
    return int(processes)


def process_pool(processes: int | None = 2, *, threads: int = 1, mp_context: str = "spawn") -> ProcessPoolExecutor:
    """A process pool whose workers run :func:`limit_threads` first and exit when this process dies.

    Starting workers costs seconds (each imports torch), so reuse one pool for many calls of
    :func:`parallel_map` / :func:`run_provider` (``executor=``); close it with ``shutdown()``
    or a ``with`` block.
    """
    return ProcessPoolExecutor(max_workers=_check_processes(processes), mp_context=multiprocessing.get_context(mp_context),
                               initializer=_init_worker, initargs=(threads,))


def parallel_map(fn: Callable, items: Iterable, *, processes: int | None = 2, threads: int = 1,
                 desc: str | None = None, progress: bool = True, mp_context: str = "spawn",
                 executor: ProcessPoolExecutor | None = None) -> list:
    """``[fn(item) for item in items]`` in ``processes`` worker processes, in order.

    Parameters
    ----------
    fn : callable
        A top-level (picklable) function of one argument.
    items : iterable
        Picklable arguments.
    processes : int or None, optional
        Worker processes; 1 runs in this process (no pool); ``None``: one per CPU core.
    threads : int, optional
        Threads per worker for torch / OpenCV / numba (see :func:`limit_threads`).
    desc : str, optional
        Progress-bar label.
    progress : bool, optional
        Show a tqdm progress bar.
    mp_context : str, optional
        Multiprocessing start method (``"spawn"``, ``"forkserver"`` or ``"fork"``).
    executor : concurrent.futures.Executor, optional
        An existing pool to use (e.g. :func:`process_pool`); it is left open. Then
        ``processes``, ``threads`` and ``mp_context`` are ignored.

    Returns
    -------
    list
        ``fn(item)`` for every item, in input order.

    Raises
    ------
    RuntimeError
        ``fn`` failed on some item: the message names the item's position, the original
        exception is chained. Pending work is cancelled.
    """
    from tqdm.auto import tqdm

    items = list(items)
    processes = _check_processes(processes)
    results: list = [None] * len(items)
    bar = tqdm(total=len(items), desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        if executor is None and (processes == 1 or len(items) <= 1):
            for i, item in enumerate(items):
                try:
                    results[i] = fn(item)
                except Exception as exc:
                    raise RuntimeError(f"{_name(fn)} failed on item {i} ({_describe(item)}): {exc}") from exc
                bar.update(1)
            return results
        if executor is not None:
            _collect(executor, fn, items, results, bar)
        else:
            with process_pool(min(processes, len(items)), threads=threads, mp_context=mp_context) as pool:
                _collect(pool, fn, items, results, bar)
        return results
    finally:
        bar.close()


def _collect(pool, fn, items, results, bar) -> None:
    futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for fut in sorted(done, key=futures.get):
            i = futures[fut]
            exc = fut.exception()
            if exc is not None:
                for p in pending:
                    p.cancel()
                raise RuntimeError(f"{_name(fn)} failed on item {i} ({_describe(items[i])}): {exc}") from exc
            results[i] = fut.result()
            bar.update(1)


def _name(fn) -> str:
    return getattr(fn, "__name__", repr(fn))


def _describe(item) -> str:
    if isinstance(item, tuple):
        return ", ".join(_describe(x) for x in item)
    if isinstance(item, np.ndarray):
        return f"array {item.shape} {item.dtype}"
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


def _provider_job(job):
    # runs in a worker: read the image there (paths are cheaper to send than pixels)
    provider, image, n_segments, cache_root = job
    from ..io import read_image
    from .cache import LabelCache

    if isinstance(image, (str, os.PathLike)):
        img, image_id = read_image(image), Path(image).stem
    else:
        img, image_id = image, None
    if cache_root is None:
        return provider(img, n_segments)
    return LabelCache(cache_root).labels(provider, img, n_segments, image_id)[0]


def run_provider(provider, images: Sequence, n_segments: int = 600, *, processes: int | None = 2,
                 threads: int = 1, progress: bool = True, mp_context: str = "spawn",
                 executor: ProcessPoolExecutor | None = None, cache=None, **params) -> list[np.ndarray]:
    """Superpixels of many images with one provider, in parallel processes.

    Parameters
    ----------
    provider : str, callable or Provider
        Anything :func:`sin.providers.get_provider` accepts (``"slic"``, ``"slic:compactness=20"``,
        ``"package.module:function"``, ...). Functions must be importable for the workers.
    images : sequence of array_like or path
        Images (anything the provider accepts) or image file paths (read in the workers).
    n_segments : int, optional
        Requested number of superpixels for every image.
    processes, threads, progress, mp_context, executor
        See :func:`parallel_map`.
    cache : LabelCache, path or None, optional
        Reuse and store label maps in this :class:`~sin.providers.LabelCache` (or its root).
    **params
        Provider parameters (e.g. ``compactness=20`` for SLIC, ``weights=...`` for SIN).

    Returns
    -------
    list of (H, W) int32 ndarray
        Label maps, in the order of ``images``.

    Raises
    ------
    ValueError
        Unknown provider or parameter (checked before any work starts), bad ``n_segments`` or
        ``processes``.
    FileNotFoundError
        An image path does not exist (checked before any work starts).
    RuntimeError
        The provider failed on some image (the message names it; the cause is chained).
    """
    from ..image import check_n_segments
    from .registry import get_provider

    provider = get_provider(provider, **params)  # fail fast, listing the available providers
    k = check_n_segments(n_segments)
    images = list(images)
    for img in images:
        if isinstance(img, (str, os.PathLike)) and not Path(img).is_file():
            raise FileNotFoundError(f"image not found: {img}")
    root = None if cache is None else str(getattr(cache, "root", cache))
    jobs = [(provider, img, k, root) for img in images]
    return parallel_map(_provider_job, jobs, processes=processes, threads=threads,
                        desc=f"{provider.name} K={k}", progress=progress, mp_context=mp_context, executor=executor)
