"""Label maps (or any per-image work) for many images, on any ``concurrent.futures.Executor``.

>>> from sin.parallel import label_maps
>>> from sin.providers import LabelCache
>>> maps = label_maps("slic", ["a.jpg", "b.jpg"], 600, cache=LabelCache(), processes=2)

One runner for every "images -> label maps" loop of the toolkit (the CLI's ``segment``, the BI
pipeline, the benchmark tables):

* **Images** are arrays, paths (read by :func:`sin.io.read_image` in the worker) or zero-argument
  callables such as :func:`image_source` ``(dataset.load_image, id)``: workers load their own
  pixels instead of receiving them. ``n_segments`` is one count, one per image, several per
  image, or a function of the loaded image (e.g. a count rule that depends on its size).
* **Caching:** with ``cache=`` a :class:`~sin.providers.LabelCache` (its ``root`` and
  ``recompute`` travel to the workers), each worker reuses the stored map of these very pixels or
  stores the one it computes. A run that was killed therefore loses nothing: run it again and
  only the missing maps are computed. Maps of downscaled images (``downscale=True`` above the size
  limit) are not stored: the cache holds full-size maps only.
* **Executors:** ``executor=None`` starts local worker processes (:func:`process_pool`: spawn,
  one thread each, they exit when this process dies), ``processes=1`` runs here, and any
  ``concurrent.futures.Executor`` works, including a Dask cluster's
  ``distributed.Client("tcp://HOST:PORT").get_executor()`` (optional extra:
  ``pip install "sin-superpixels[dask]"``; the workers must see the image paths). Work is
  submitted lazily, a bounded window ahead of the workers; results come back in input order
  (:func:`label_maps`) or as they finish (:func:`iter_label_maps`).
* **Failures:** ``errors="raise"`` stops at the first image that fails with an
  :class:`ItemError` naming it (its cause chained); ``errors="collect"`` puts a :class:`Failure`
  in its place and goes on. Any exception of the provider or of ``then`` counts, also from
  user code; a worker that dies (killed, out of memory, a crash in native code) fails the images
  it held.
* **Command lines** get the same choice through :func:`add_executor_args` (``--processes N`` /
  ``--scheduler tcp://HOST:PORT``) and :func:`executor_from_args`.

The executors themselves (pools, :class:`SerialExecutor`, :func:`open_executor`, the flags) live
in :mod:`sin.executors`; every public name is importable from here as well.

Functions and providers travel to workers by pickling: they must be importable (top-level), and
a script that starts local workers must do so under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import numbers
import os
import pickle
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, NamedTuple

import numpy as np

from .executors import (  # noqa: F401  (re-exported: one import for the runner and where it runs)
    SerialExecutor,
    _check_processes,
    _limit_worker_threads,
    add_executor_args,
    executor_from_args,
    limit_threads,
    open_executor,
    process_pool,
    scheduler_address,
)
from .image import ImageTooLarge, format_pixels

__all__ = ["Failure", "ImageSource", "ImageTooLarge", "ItemError", "SerialExecutor", "Segmentation",
           "add_executor_args", "drop_image", "executor_from_args", "format_pixels", "image_source",
           "iter_label_maps", "label_maps", "limit_threads", "open_executor", "parallel_map", "process_pool"]


# ------------------------------------------------------------------------------------------ failures
@dataclass(frozen=True)
class Failure:
    """One item that failed (``errors="collect"``): its position, what it was, and why."""

    index: int
    item: str  #: the item described (a path, ``array (H, W, 3) uint8``, an image source's name)
    error: str  #: ``"ExceptionType: message"`` on one line
    exception: BaseException | None = field(default=None, repr=False, compare=False)  #: where it could travel

    def __str__(self) -> str:
        return f"{self.item}: {self.error}"


class ItemError(RuntimeError):
    """An item failed (``errors="raise"``); the message names it, the cause is chained when it could
    travel back from the worker, and :attr:`failure` holds the details."""

    def __init__(self, message: str, failure: Failure):
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class _Raised:
    """An exception caught where the work ran, in a form that always travels back."""

    type: str
    message: str
    exception: BaseException | None


def _pickles(obj) -> bool:
    try:
        pickle.loads(pickle.dumps(obj))
    except Exception:
        return False
    return True


def _guarded(fn: Callable, item, keep: bool = False):
    """``fn(item)``, or a :class:`_Raised` for any exception (also ``SystemExit`` from user code):
    one item's failure never breaks the pool or the run. ``keep``: the exception object stays
    in this process (else it is kept only if it pickles)."""
    try:
        return fn(item)
    except (Exception, SystemExit) as exc:
        return _Raised(type(exc).__name__, " ".join(str(exc).split()), exc if keep or _pickles(exc) else None)


def _describe(item) -> str:
    if isinstance(item, tuple):
        return ", ".join(_describe(x) for x in item)
    if isinstance(item, np.ndarray):
        return f"array {item.shape} {item.dtype}"
    if isinstance(item, os.PathLike):
        return os.fspath(item)
    text = str(item) if isinstance(item, ImageSource) else repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


def _failure(index: int, item, outcome) -> Failure:
    if isinstance(outcome, _Raised):
        return Failure(index, _describe(item), f"{outcome.type}: {outcome.message}", outcome.exception)
    # the future itself failed: the worker is gone (killed, out of memory, a crash in native code)
    name = type(outcome).__name__
    if name in ("BrokenProcessPool", "KilledWorker"):
        return Failure(index, _describe(item), f"{name}: the worker process died (killed, out of memory or a crash "
                                               "in native code) before this item was done", outcome)
    return Failure(index, _describe(item), f"{name}: {' '.join(str(outcome).split())}", outcome)


# ------------------------------------------------------------------------------------------ the core loop
def _capacity(executor) -> int:
    n = getattr(executor, "_max_workers", None)
    if n is None and getattr(executor, "_client", None) is not None:  # distributed.ClientExecutor
        try:
            n = sum(executor._client.nthreads().values())
        except Exception:
            n = None
    return int(n) if n else 8


def _imap(fn: Callable, items: Iterable, executor: Executor | None, window: int | None = None) -> Iterator:
    """``(index, item, outcome)`` as items finish; ``outcome`` is ``fn(item)``, a :class:`_Raised` or
    the exception of a future that failed. ``executor=None``: here, one item after the other. At
    most ``window`` items are submitted ahead (items are pulled lazily)."""
    if executor is None or isinstance(executor, SerialExecutor):
        for i, item in enumerate(items):
            yield i, item, _guarded(fn, item, keep=True)
        return
    source = enumerate(items)
    window = window or min(2 * _capacity(executor) + 2, 256)  # bounded: items may hold files open (segment)
    pending: dict = {}
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < window:
                nxt = next(source, None)
                if nxt is None:
                    exhausted = True
                else:
                    pending[executor.submit(_guarded, fn, nxt[1])] = nxt
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f][0]):
                i, item = pending.pop(fut)
                exc = fut.exception()
                yield i, item, (exc if exc is not None else fut.result())
    finally:
        for fut in pending:  # the consumer stopped early (errors="raise", fail-fast, Ctrl-C)
            fut.cancel()


def _run(fn: Callable, items: Iterable, *, executor, processes, threads, mp_context, window=None) -> Iterator:
    """:func:`_imap` on ``executor``, or on a pool of ``processes`` started (and shut down) here."""
    if executor is not None:
        yield from _imap(fn, items, executor, window)
        return
    n = _check_processes(processes)
    if isinstance(items, Sequence):
        n = min(n, max(1, len(items)))
    if n == 1:
        yield from _imap(fn, items, None)
        return
    pool = process_pool(n, threads=threads, mp_context=mp_context)
    try:
        yield from _imap(fn, items, pool, window)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _collect(outcomes: Iterator, n: int | None, errors: str, what: str, progress: bool, desc: str | None,
             fn_name: str, paired: bool = False) -> list:
    """Results in input order from ``(index, item, outcome)`` (``paired``: items are ``(image, counts)``)."""
    from tqdm.auto import tqdm

    results: dict = {}
    with tqdm(total=n, desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        try:
            for i, item, outcome in outcomes:
                if isinstance(outcome, (_Raised, BaseException)):
                    fail = _failure(i, item[0] if paired else item, outcome)
                    if errors == "raise":
                        raise ItemError(f"{fn_name} failed on {what} {i} ({fail.item}): {fail.error}",
                                        fail) from fail.exception
                    outcome = fail
                results[i] = outcome
                bar.update(1)
        finally:
            outcomes.close()
    return [results[i] for i in range(len(results))]


def _check_errors(errors: str) -> None:
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', got {errors!r}")


def parallel_map(fn: Callable, items: Iterable, *, processes: int | None = 2, threads: int = 1,
                 desc: str | None = None, progress: bool = True, mp_context: str = "spawn",
                 executor: Executor | None = None, errors: str = "raise") -> list:
    """``[fn(item) for item in items]`` in ``processes`` worker processes (or on ``executor``), in order.

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
    desc, progress : optional
        Progress-bar label; show a tqdm bar.
    mp_context : str, optional
        Multiprocessing start method (``"spawn"``, ``"forkserver"`` or ``"fork"``).
    executor : concurrent.futures.Executor, optional
        An existing executor (:func:`process_pool`, a Dask ``ClientExecutor``, ...); it is left
        open, and ``processes``, ``threads``, ``mp_context`` are ignored.
    errors : {"raise", "collect"}, optional
        Stop at the first failing item (:class:`ItemError`, pending work cancelled), or put a
        :class:`Failure` in its place and go on.

    Returns
    -------
    list
        ``fn(item)`` (or a :class:`Failure`) for every item, in input order.
    """
    _check_errors(errors)
    items = list(items)
    _check_processes(processes)
    outcomes = _run(fn, items, executor=executor, processes=processes, threads=threads, mp_context=mp_context)
    return _collect(outcomes, len(items), errors, "item", progress, desc, getattr(fn, "__name__", repr(fn)))


# ------------------------------------------------------------------------------------------ images
@dataclass(frozen=True)
class ImageSource:
    """A picklable recipe for one image, run where the work runs: ``fn(*args, **kwargs)`` -> array.

    Make one with :func:`image_source`. Its ``name`` names the image in failures and progress.
    """

    fn: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    name: str | None = None

    def __call__(self) -> np.ndarray:
        return self.fn(*self.args, **self.kwargs)

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        args = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{getattr(self.fn, '__qualname__', self.fn)}({', '.join(args)})"


def image_source(fn: Callable, *args, name: str | None = None, **kwargs) -> ImageSource:
    """An image that a worker loads itself: ``fn(*args, **kwargs)`` must return the image array.

    ``fn`` must pickle (a top-level function, or a method of a small picklable object such as a
    dataset that holds paths), e.g. ``image_source(read_image, path, dtype=np.float32)`` or
    ``image_source(voc.load_image, "2007_000032", name="voc/2007_000032")``.
    """
    if not callable(fn):
        raise ValueError(f"image_source needs a callable, got {type(fn).__name__}")
    return ImageSource(fn, args, dict(kwargs), name)


class Segmentation(NamedTuple):
    """What ``then`` receives in the worker for each (image, count)."""

    source: Any  #: the image as given (``None`` for arrays: they are not sent back)
    image: np.ndarray | None  #: the loaded pixels (``None`` after :func:`drop_image`)
    labels: np.ndarray  #: ``(H, W)`` int32 label map
    n_segments: int  #: the requested count
    seconds: float  #: provider seconds (as stored, for a cached map)
    cached: bool  #: the map came from the label cache
    downscaled: bool  #: computed on a reduced copy (``downscale=True`` above the size limit)


def drop_image(seg: Segmentation) -> Segmentation:
    """A ``then`` that returns the whole record without the pixels (labels, seconds, cached, ...)."""
    return seg._replace(image=None)


def _default_limit(provider) -> int | None:
    """The provider's registered pixel limit (``python -m sin providers`` lists them)."""
    spec = getattr(provider, "spec", None)
    return getattr(spec, "max_pixels", getattr(provider, "max_pixels", None))


@dataclass(frozen=True)
class _Job:
    """What a worker needs besides the image and its counts (small: no pixels)."""

    provider: Any
    cache: Any
    call: dict  # max_pixels / downscale, as the caller gave them
    then: Callable | None
    reader: Callable | None
    threads: int | None


def _load(source, reader) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    if isinstance(source, (str, os.PathLike)):
        from .io import read_image

        return (reader or read_image)(source)
    if callable(source):
        image = source()
        if not isinstance(image, np.ndarray):
            raise ValueError(f"the image source returned a {type(image).__name__}, not an image array")
        return image
    raise ValueError(f"an image is an array, a path or a zero-argument callable, got {type(source).__name__}")


def _segment(job: _Job, item):
    """One ``(image, counts)`` item: load the image, then each count (cached or computed), then ``job.then``."""
    from .image import check_n_segments

    source, sizes = item
    _limit_worker_threads(job.threads)
    image = _load(source, job.reader)
    sizes = sizes(image) if callable(sizes) else sizes
    several = isinstance(sizes, (list, tuple))
    out = []
    for k in (sizes if several else [sizes]):
        k = check_n_segments(k)
        labels, seconds, cached, small = _labels(job, image, k)
        seg = Segmentation(None if isinstance(source, np.ndarray) else source, image, labels, k, seconds, cached, small)
        out.append(job.then(seg) if job.then is not None else labels)
    return out if several else out[0]


def _labels(job: _Job, image: np.ndarray, k: int) -> tuple[np.ndarray, float, bool, bool]:
    provider = job.provider
    limit = job.call.get("max_pixels", _default_limit(provider))
    h, w = np.shape(image)[:2]
    if limit is not None and h * w > limit:
        if not job.call.get("downscale"):
            raise ImageTooLarge(provider.name, h, w, limit)
        t0 = time.perf_counter()  # a reduced copy's map: never stored under the full image's key
        labels = provider(image, k, max_pixels=limit, downscale=True)
        return labels, time.perf_counter() - t0, False, True
    hit = job.cache.load(provider, image, k) if job.cache is not None else None
    if hit is not None:
        return hit[0], hit[1], True, False
    t0 = time.perf_counter()
    labels = provider(image, k, **({"max_pixels": job.call["max_pixels"]} if "max_pixels" in job.call else {}))
    seconds = time.perf_counter() - t0
    if job.cache is not None:
        job.cache.save(provider, image, k, labels, seconds)
    return labels, seconds, False, False


def _sizes_per_image(n_segments, images):
    """Pair every image with its count(s): one value for all, one entry per image, or a callable."""
    from .image import check_n_segments

    if callable(n_segments) or isinstance(n_segments, (numbers.Number, str, bytes)):
        if not callable(n_segments):
            n_segments = check_n_segments(n_segments)  # 40.7 or "many": refused here, before any work
        pairs = ((img, n_segments) for img in images)
        return list(pairs) if isinstance(images, Sequence) else pairs  # a list: its length picks the pool size
    per_image = list(n_segments)
    for entry in per_image:
        for k in (entry if isinstance(entry, (list, tuple)) else [entry]):
            check_n_segments(k)
    per_image = [tuple(e) if isinstance(e, list) else e for e in per_image]
    if isinstance(images, Sequence) and len(per_image) != len(images):
        raise ValueError(f"n_segments has {len(per_image)} entries for {len(images)} images: give one count, "
                         "one entry per image (a count or a tuple of counts), or a function of the image")
    return list(zip(images, per_image)) if isinstance(images, Sequence) else zip(images, per_image)


def _check_image_items(images: Sequence) -> None:
    for img in images:
        if isinstance(img, (str, os.PathLike)) and not os.path.isfile(img):
            raise FileNotFoundError(f"image not found: {os.fspath(img)}")
        if not isinstance(img, (np.ndarray, str, os.PathLike)) and not callable(img):
            raise ValueError(f"an image is an array, a path or a zero-argument callable, got {type(img).__name__}")


def _label_outcomes(provider, images, n_segments, *, cache, executor, processes, threads, mp_context, then,
                    reader, window=None, **call) -> Iterator:
    from .providers import LabelCache, get_provider

    unknown = sorted(set(call) - {"max_pixels", "downscale"})
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}")
    provider = get_provider(provider)
    if cache is not None and not isinstance(cache, LabelCache):
        cache = LabelCache(cache)
    job = _Job(provider, cache, dict(call), then, reader, threads)
    return _run(partial(_segment, job), _sizes_per_image(n_segments, images), executor=executor,
                processes=processes, threads=threads, mp_context=mp_context, window=window)


def iter_label_maps(provider, images: Iterable, n_segments=600, *, cache=None, executor: Executor | None = None,
                    processes: int | None = None, threads: int = 1, mp_context: str = "spawn", then=None,
                    reader: Callable | None = None, window: int | None = None, **call) -> Iterator:
    """Like :func:`label_maps`, but yields ``(index, result)`` as images finish (completion order),
    pulling ``images`` lazily (at most ``window`` ahead of the workers); ``result`` is a
    :class:`Failure` for an image that failed. Closing the iterator cancels pending work."""
    outcomes = _label_outcomes(provider, images, n_segments, cache=cache, executor=executor, processes=processes,
                               threads=threads, mp_context=mp_context, then=then, reader=reader, window=window,
                               **call)
    try:
        for i, (source, _), outcome in outcomes:
            yield i, outcome if not isinstance(outcome, (_Raised, BaseException)) else _failure(i, source, outcome)
    finally:
        outcomes.close()


def label_maps(provider, images: Iterable, n_segments=600, *, cache=None, executor: Executor | None = None,
               processes: int | None = None, threads: int = 1, mp_context: str = "spawn", progress: bool = True,
               errors: str = "raise", then: Callable | None = None, reader: Callable | None = None,
               desc: str | None = None, **call) -> list:
    """Superpixel label maps of many images with one provider, through the label cache, on any executor.

    Parameters
    ----------
    provider : str, callable or Provider
        Anything :func:`sin.get_provider` accepts; it is pickled to the workers.
    images : iterable
        Arrays, image paths (read in the worker by ``reader``) or zero-argument callables
        returning an array (:func:`image_source`).
    n_segments : int, sequence or callable, optional
        One count for every image; or one entry per image, each a count or a tuple of counts
        (several maps of that image); or a picklable function ``f(image) -> count or tuple``
        evaluated in the worker.
    cache : LabelCache, path or None, optional
        Reuse and store maps in this :class:`~sin.providers.LabelCache` (settings included), or
        in ``LabelCache(path)``; ``None``: compute every map, store nothing.
    executor : concurrent.futures.Executor, optional
        Where to run (left open): :func:`process_pool`, :class:`SerialExecutor`, a Dask
        ``Client(...).get_executor()``, ... ``None``: a pool of ``processes`` started here.
    processes : int or None, optional
        Worker processes when ``executor`` is None; 1: in this process; ``None``: one per core.
    threads : int, optional
        torch / OpenCV / numba threads per worker process.
    mp_context : str, optional
        Start method of the local pool.
    progress : bool, optional
        Show a tqdm bar.
    errors : {"raise", "collect"}, optional
        Stop at the first failing image (:class:`ItemError` naming it), or put a
        :class:`Failure` in its place and go on.
    then : callable, optional
        A picklable ``then(seg: Segmentation) -> value`` run in the worker after each map (e.g.
        scoring it against ground truth there); its value replaces the label map in the results.
        :func:`drop_image` returns the record (seconds, cached, ...) without the pixels.
    reader : callable, optional
        ``reader(path) -> array`` for path items (default :func:`sin.io.read_image`, uint8).
    desc : str, optional
        Progress-bar label.
    max_pixels, downscale : optional
        The provider's size policy (see :class:`sin.providers.Provider`); above the limit without
        ``downscale`` an image fails with :class:`ImageTooLarge`.

    Returns
    -------
    list
        Per image, in input order: its ``(H, W)`` int32 label map (a list of maps for a tuple of
        counts), or ``then``'s value(s), or a :class:`Failure` (``errors="collect"``).

    Raises
    ------
    ValueError
        Unknown provider or parameter, bad ``n_segments``, ``processes`` or ``errors``.
    FileNotFoundError
        An image path does not exist (checked before any work starts).
    ItemError
        ``errors="raise"`` and an image failed.
    """
    from .providers import get_provider

    _check_errors(errors)
    _check_processes(processes)
    provider = get_provider(provider)
    if not isinstance(images, Sequence):
        images = list(images)
    _check_image_items(images)
    if desc is None:
        desc = f"{provider.spec_string()} k={n_segments}" if isinstance(n_segments, (int, np.integer)) \
            else provider.spec_string()
    outcomes = _label_outcomes(provider, images, n_segments, cache=cache, executor=executor, processes=processes,
                               threads=threads, mp_context=mp_context, then=then, reader=reader, **call)
    return _collect(outcomes, len(images), errors, "image", progress, desc, provider.spec_string(), paired=True)
