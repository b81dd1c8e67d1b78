"""Thread settings that degrade gracefully when other processes share the CPU.

PyTorch here uses GNU OpenMP (``libgomp``; ``torch.__config__.parallel_info()``). Every
convolution is a parallel region that ends in a barrier, so the slowest thread sets the pace:
with as many threads as cores and one core taken by another process, one SIN thread gets half a
core and every layer waits for it, and threads that *spin* at the barrier take CPU from the
thread they wait for. Two settings help, and both must be in place before the OpenMP runtime
starts (i.e. before ``import torch`` in a fresh process):

* ``OMP_WAIT_POLICY=PASSIVE``: idle threads sleep instead of spinning (libgomp; Intel's
  runtime reads ``KMP_BLOCKTIME=0`` for the same thing, set too, harmless for libgomp).
* fewer threads than busy-free cores. On a shared machine (CI, a notebook server, several
  benchmark workers) one thread per process is the robust choice; give a process all cores
  only when it has the machine to itself.

What a library user should do: ``import sin.threads; sin.threads.configure()`` at the very top
of a script (before torch is imported), or export ``OMP_WAIT_POLICY=PASSIVE`` and set
``torch.set_num_threads(n)``; in a pool of worker processes use one thread per worker
(:func:`sin.providers.batch.limit_threads`). The measurement is ``python -m benchmarks.sin_speed
--neighbour`` (``results/sin_speed.md``).
"""

from __future__ import annotations

import os
import sys

__all__ = ["configure", "openmp_runtime"]

#: Environment set by :func:`configure` unless the user already set it.
PASSIVE_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def configure(threads: int | None = None, *, passive: bool = True) -> dict:
    """Set the OpenMP wait policy (before torch starts) and, optionally, torch's thread count.

    Parameters
    ----------
    threads : int, optional
        ``torch.set_num_threads(threads)`` (and ``OMP_NUM_THREADS`` for libraries initialised
        later). ``None`` leaves the count alone.
    passive : bool, optional
        Put :data:`PASSIVE_ENV` into ``os.environ`` where not already set. It only takes effect
        if the OpenMP runtime has not started yet; the returned dict says whether it had.

    Returns
    -------
    dict
        ``wait_policy`` (what is in the environment now), ``applied_before_torch`` (False when
        torch was already imported, so the policy may not apply to its threads), ``threads``.
    """
    torch_loaded = "torch" in sys.modules
    if passive:
        for key, value in PASSIVE_ENV.items():
            os.environ.setdefault(key, value)
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
    return {"wait_policy": os.environ.get("OMP_WAIT_POLICY", "default (active spin, libgomp)"),
            "applied_before_torch": not torch_loaded, "threads": threads}


def openmp_runtime() -> str:
    """Which OpenMP runtime torch links (``"GNU libgomp"``, ``"Intel libiomp"`` or ``"unknown"``)."""
    try:
        with open(f"/proc/{os.getpid()}/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    if "libiomp" in maps:
        return "Intel libiomp"
    if "libgomp" in maps:
        return "GNU libgomp"
    return "unknown"
