"""Where work runs: local worker processes, this process, or a Dask cluster (``concurrent.futures``).

* :func:`process_pool`: spawn workers that cap their threads (:func:`limit_threads`: torch,
  OpenCV, numba) and exit when this process dies.
* :class:`SerialExecutor`: each call in the calling thread (``processes=1``).
* :func:`open_executor`: one of those, or a Dask cluster's executor
  (``distributed.Client("tcp://HOST:PORT").get_executor()``; optional extra
  ``pip install "sin-superpixels[dask]"``), closed on exit.
* Command lines: :func:`add_executor_args` (``--processes N`` / ``--scheduler tcp://HOST:PORT``)
  and :func:`executor_from_args`.

What runs there, and how results and failures come back, is :mod:`sin.parallel`'s (which
re-exports all of these).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager

import numpy as np

__all__ = ["SerialExecutor", "add_executor_args", "executor_from_args", "limit_threads", "open_executor",
           "process_pool", "scheduler_address"]


# ------------------------------------------------------------------------------------------ workers
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


_LIMITED: list = []


def _limit_worker_threads(threads: int | None) -> None:
    """:func:`limit_threads` once per worker process (Dask workers have no initializer); never in
    the main process, whose settings belong to the caller."""
    if threads and multiprocessing.parent_process() is not None and _LIMITED != [threads]:
        limit_threads(threads)
        _LIMITED[:] = [threads]


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
    _LIMITED[:] = [threads]


def _check_processes(processes) -> int:
    if processes is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) or processes < 1:
        raise ValueError(f"processes must be a positive int (or None for all cores), got {processes!r}")
    return int(processes)


def process_pool(processes: int | None = 2, *, threads: int = 1, mp_context: str = "spawn") -> ProcessPoolExecutor:
    """A process pool whose workers run :func:`limit_threads` first and exit when this process dies.

    Starting workers costs seconds (each imports torch), so reuse one pool for many calls
    (``executor=``); close it with ``shutdown()`` or a ``with`` block.
    """
    return ProcessPoolExecutor(max_workers=_check_processes(processes), mp_context=multiprocessing.get_context(mp_context),
                               initializer=_init_worker, initargs=(threads,))


class SerialExecutor(Executor):
    """An executor that runs each call in the calling thread (what ``processes=1`` means)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: B036 - handed to the caller through the future
            fut.set_exception(exc)
        return fut


# ------------------------------------------------------------------------------------------ command lines
_ADDRESS = re.compile(r"^(?:(tcp|tls|ws|wss|ucx)://)?(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def scheduler_address(text: str) -> str:
    """argparse type: a Dask scheduler address ``tcp://HOST:PORT`` (``HOST:PORT`` means tcp);
    refused in one line when the optional ``distributed`` package is missing."""
    m = _ADDRESS.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected a Dask scheduler address tcp://HOST:PORT, got {text!r}")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise argparse.ArgumentTypeError('--scheduler needs Dask: pip install "sin-superpixels[dask]" '
                                         "(the distributed package is not installed)") from None
    return text.strip() if m.group(1) else f"tcp://{text.strip()}"


def add_executor_args(parser: argparse.ArgumentParser, *, processes: int = 2):
    """Add ``--processes N`` and ``--scheduler tcp://HOST:PORT`` (exclusive) to a command line;
    :func:`executor_from_args` opens what they ask for."""
    from .argtypes import positive_int

    group = parser.add_mutually_exclusive_group()
    group.add_argument("--processes", type=positive_int, default=processes, metavar="N",
                       help=f"local worker processes, one thread each (1: run in this process; default {processes})")
    group.add_argument("--scheduler", type=scheduler_address, default=None, metavar="tcp://HOST:PORT",
                       help="run on a Dask distributed cluster instead (optional extra: "
                            'pip install "sin-superpixels[dask]"); its workers must see the input files')
    return group


@contextmanager
def open_executor(processes: int | None = 2, scheduler: str | None = None, *, threads: int = 1,
                  mp_context: str = "spawn") -> Iterator[Executor]:
    """``with open_executor(...) as ex:`` a Dask cluster's executor (``scheduler``), a
    :class:`SerialExecutor` (``processes=1``) or a :func:`process_pool`; closed on exit."""
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise ValueError('--scheduler needs Dask: pip install "sin-superpixels[dask]" '
                             "(the distributed package is not installed)") from None
        try:
            client = Client(scheduler, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {' '.join(str(exc).split())}") from None
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
        return
    if _check_processes(processes) == 1:
        yield SerialExecutor()
        return
    with process_pool(processes, threads=threads, mp_context=mp_context) as pool:
        yield pool


def executor_from_args(args: argparse.Namespace):
    """:func:`open_executor` for the flags of :func:`add_executor_args` (a context manager)."""
    return open_executor(getattr(args, "processes", 1), getattr(args, "scheduler", None))
