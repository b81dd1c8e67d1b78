"""``fastslic``: fast-slic (Kim 2019, github.com/Algy/fast-slic), an optional extra.

fast-slic is a SIMD (AVX2) SLIC in CIELAB with subsampled assignment updates; on a 481 x 321
image it is about 10x faster than scikit-image's SLIC at the same count. It is registered only
when the package imports (``pip install cython numpy && pip install --no-build-isolation
fast-slic``, or ``make install``, which does this); otherwise ``fastslic`` is simply absent from
``available_providers()``.

* Count: like our ``slic``, fast-slic returns fewer superpixels than requested on textured
  images (39 of 600 on uniform noise) because its connectivity step absorbs small pieces, so
  ``calibrate=True`` re-runs it with the request scaled by the observed ratio until the count is
  within ``tolerance`` (at most ``max_rounds`` runs, the closest result is kept). If that
  fails (the count is not monotone in the request there), one more run without the size filter
  (``min_size_factor=0``, which keeps the requested count) is tried.
* Connectivity: fast-slic's own post-processing (``min_size_factor``) relabels every fragment;
  we verified 4-connectivity on 900 fuzzed images (noise, blocks, patterns; 1-2000 superpixels,
  compactness 1-40) and a property test keeps checking it (``tests/sin/providers/test_fastslic.py``), so no
  second pass is run here.
* Safety: the C++ code crashes (SIGFPE) when asked for more superpixels than pixels and its
  labels are int16, so the request is clamped to ``min(H * W, 32767)``.
* Threads: ``num_threads=1`` by default (reproducible timings, no contention with a torch
  thread pool); ``-1`` uses every core.
* Parameter ranges (found in subprocesses): ``subsample_stride=0`` kills the process with SIGFPE
  and the stride is a uint8 (256 and above raise OverflowError), so it is 1..255.
"""

from __future__ import annotations

import numpy as np

from .params import Bool, Float, Int
from .registry import register_provider

try:  # optional third-party package: the provider exists only where it imports
    from fast_slic import Slic as _SlicPortable

    try:
        from fast_slic.avx2 import SlicAvx2 as _SlicFast
    except ImportError:  # built without AVX2 (or not an x86 CPU): the portable build
        _SlicFast = _SlicPortable
except ImportError:  # pragma: no cover - depends on the environment
    _SlicFast = None

#: fast-slic's labels are int16.
MAX_COMPONENTS = 32767


def _fastslic_superpixels(image: np.ndarray, n_segments: int, *, compactness=10.0, max_num_iter=10,
                          min_size_factor=0.25, subsample_stride=3, calibrate=True, tolerance=0.1,
                          max_rounds=4, num_threads=1) -> np.ndarray:
    """fast-slic (AVX2 where available) with a count close to ``n_segments``; 4-connected labels."""
    h, w = image.shape[:2]
    rgb = image
    if rgb.dtype != np.uint8:  # the provider interface hands float RGB in [0, 1]
        rgb = np.round(rgb * 255.0).astype(np.uint8)
    rgb = np.ascontiguousarray(rgb[..., :3])
    limit = min(h * w, MAX_COMPONENTS)
    target = min(n_segments, limit)

    def run(request, msf):
        model = _SlicFast(num_components=max(1, min(limit, int(round(request)))), compactness=compactness,
                          min_size_factor=msf, subsample_stride=subsample_stride, num_threads=num_threads)
        labels = model.iterate(rgb, max_iter=max_num_iter)
        count = int(labels.max()) + 1
        return labels, count, abs(count / target - 1.0)

    request = target
    best, best_err = None, np.inf
    for _ in range(max_rounds if calibrate else 1):
        labels, count, err = run(request, min_size_factor)
        if err < best_err:
            best, best_err = labels, err
        if err <= tolerance or request >= limit:
            break
        request = min(request * target / count, limit)
    if calibrate and best_err > tolerance and min_size_factor > 0:
        # the count is not monotone in the request when the size filter swallows most clusters
        # (uniform noise: 600 -> 39, 2000 -> 1166); without the filter fast-slic keeps the count
        labels, _, err = run(target, 0.0)
        if err < best_err:
            best = labels
    return best.astype(np.int32)


if _SlicFast is not None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        _PKG_VERSION = version("fast-slic")
    except PackageNotFoundError:  # pragma: no cover - imported from a source tree
        _PKG_VERSION = "unknown"
    # the package's version and build enter the fingerprint (its code is not in this repository)
    register_provider("fastslic", _fastslic_superpixels, connected=True, connectivity="post-processing",
                      extra=True, version=f"1;fast-slic {_PKG_VERSION};{_SlicFast.__name__}",
                      description="fast-slic (AVX2 SLIC), optional package, count calibrated",
                      params={"compactness": Float(0, low_open=True, help="colour vs space weight"),
                              "max_num_iter": Int(1, 1000, help="k-means iterations per run"),
                              "min_size_factor": Float(0, 1, help="segments below this fraction of the mean size "
                                                                  "are merged"),
                              "subsample_stride": Int(1, 255, help="assignment update stride (0 crashes)"),
                              "calibrate": Bool(help="re-run until the count is within tolerance"),
                              "tolerance": Float(0, help="accepted relative count error"),
                              "max_rounds": Int(1, 50, help="most runs when calibrating"),
                              "num_threads": Int(-1, 1024, help="threads (-1: every core)")})
