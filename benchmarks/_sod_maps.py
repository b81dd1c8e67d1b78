"""The work of ``benchmarks.sod_table`` in the worker: one image's SO maps and their scores.

:func:`sin.parallel.label_maps` loads the image (:func:`read_pair`, with its mask), asks
:func:`row_counts` for the superpixels of every table row (the SIN paper preset's count rule),
makes or loads each label map through the label cache, and hands it to :class:`SOMapScores`:
the SO map from the SO-map cache (or made and stored) and its scores against the mask. All of it
is top-level and picklable, for spawned workers and Dask clusters alike.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from downstream.saliency_optimization import SIN_PAPER, saliency_optimization
from downstream.saliency_optimization.cache import SOMapCache
from downstream.saliency_optimization.datasets import read_mask
from downstream.saliency_optimization.evaluate import image_scores, quantize_map
from sin.io import read_image
from sin.providers import image_digest

__all__ = ["SOMapScores", "read_pair", "row_counts"]

#: This worker's CPU clock (``time.process_time``; one thread per worker): the mark is set when
#: an image's counts are computed and after each map's scores, so the CPU seconds between two
#: marks are those of one label map (made or loaded by the runner) and its SO map.
_CPU = {"mark": 0.0, "read": 0.0}


def read_pair(image_path, mask_path) -> tuple[np.ndarray, np.ndarray]:
    """``(image, mask)`` of one dataset item; a mask of another size is refused."""
    c0 = time.process_time()
    image, gt = read_image(image_path), read_mask(mask_path)
    if gt.shape != image.shape[:2]:
        raise ValueError(f"mask is {gt.shape[0]}x{gt.shape[1]} but the image is {image.shape[0]}x{image.shape[1]}")
    _CPU["read"] += time.process_time() - c0
    return image, gt


def row_counts(sizes: tuple, image: np.ndarray) -> tuple:
    """The superpixels every table row requests for ``image`` (the preset's count rule)."""
    _CPU["mark"] = time.process_time()
    return tuple(SIN_PAPER.n_segments(image.shape[0], image.shape[1], size) for size in sizes)


@dataclasses.dataclass(frozen=True)
class SOMapScores:
    """``then`` of the runner: the SO map of one label map (from the SO-map cache, or made and
    stored) and its scores against the mask (runs in the worker, next to the label map)."""

    provider: Any  # a Provider: it pickles by name and parameters
    so_params: str
    key: str  # SIN_PAPER.map_key(so_params)
    map_root: str
    recompute: bool = False

    def __call__(self, seg) -> dict:
        c0 = time.process_time()
        prov, k, image = self.provider, seg.n_segments, seg.image
        maps = SOMapCache(self.map_root, recompute=self.recompute)
        digest = image_digest(image)
        hit = maps.load(prov, k, self.key, image, digest=digest)
        if hit is not None:
            q, info = hit
        else:
            # CPU seconds (process_time, single-threaded worker) next to wall seconds: on a
            # shared machine wall time measures the neighbours, CPU time the work
            c1, t0 = time.process_time(), time.perf_counter()
            q = quantize_map(saliency_optimization(image, seg.labels, so_params=self.so_params))
            t_so, c2 = time.perf_counter() - t0, time.process_time()
            info = {"n_requested": k, "n_superpixels": int(seg.labels.max()) + 1, "provider": prov.spec_string(),
                    "provider_seconds": f"{seg.seconds:.4f}", "so_seconds": f"{t_so:.4f}",
                    "provider_cpu_seconds": f"{c0 - _CPU['mark']:.4f}", "so_cpu_seconds": f"{c2 - c1:.4f}"}
            maps.save(prov, k, self.key, image, q, info, digest=digest)
        rec = image_scores(q, seg.source.truth())
        rec.update(n_requested=int(info["n_requested"]), n_superpixels=int(info["n_superpixels"]),
                   provider_s=float(info["provider_seconds"]), so_s=float(info["so_seconds"]),
                   provider_cpu_s=float(info.get("provider_cpu_seconds", "nan")),
                   so_cpu_s=float(info.get("so_cpu_seconds", "nan")),
                   path=str(maps.path(prov, k, self.key, digest)), computed=hit is None)
        end = time.process_time()  # this map, and the image's reading on its first map
        rec["cpu_s"], _CPU["mark"], _CPU["read"] = end - _CPU["mark"] + _CPU["read"], end, 0.0
        return rec
