"""``seeds`` and ``lsc``: OpenCV-contrib (``cv2.ximgproc``) superpixels, as extras.

Neither guarantees 4-connected regions natively (SEEDS exchanges boundary blocks, LSC's own
post-processing absorbs small pieces only), so 4-connectivity is enforced afterwards with
:func:`sin.connectivity.enforce_connectivity`. Both need images of at least 16x16 pixels and
clamp the requested count into a safe range (see :func:`_safe_count`).

Needs ``opencv-contrib-python(-headless)``. ``pysodmetrics`` pulls the plain OpenCV wheel,
which shadows ``cv2.ximgproc`` if installed after contrib; the Makefile reinstalls contrib last.
"""

from __future__ import annotations

import numpy as np

from ..connectivity import enforce_connectivity
from .registry import register_provider


def _ximgproc():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 is a dependency
        raise ImportError("seeds/lsc need opencv-contrib-python-headless") from exc
    if not hasattr(cv2, "ximgproc"):
        raise ImportError(
            "cv2.ximgproc is missing: plain opencv shadows opencv-contrib. Run "
            "`pip uninstall -y opencv-python-headless && pip install --force-reinstall --no-deps "
            "opencv-contrib-python-headless`"
        )
    return cv2


#: OpenCV's SEEDS and LSC crash (SIGFPE) or hang on images whose short side is below this, or
#: when the superpixel step exceeds the short side; found by fuzzing in subprocesses.
MIN_SIDE = 16


def _safe_count(h: int, w: int, n_segments: int, name: str, max_step: float = 1.0) -> int:
    """Clamp the request into the range where the OpenCV implementations are safe.

    The step ``sqrt(H*W/K)`` must fit in ``max_step`` times the short side
    (``K >= H*W / (max_step * min(H, W))^2``) and superpixels must average at least 16 pixels
    (``K <= H*W / 16``).
    """
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"{name} (OpenCV) needs images of at least {MIN_SIDE}x{MIN_SIDE} pixels, got {h}x{w}")
    lo = int(np.ceil(h * w / (max_step * min(h, w)) ** 2))
    hi = max(lo, (h * w) // 16)
    return int(min(max(n_segments, lo), hi))


def _to_lab8(image: np.ndarray):
    cv2 = _ximgproc()
    return cv2.cvtColor(np.round(image * 255).astype(np.uint8), cv2.COLOR_RGB2Lab)


@register_provider("seeds", connected=True, connectivity="post-processing", extra=True,
                   description="SEEDS (Van den Bergh et al. 2012), OpenCV-contrib")
def seeds_superpixels(image, n_segments, *, num_levels=4, prior=2, histogram_bins=5, num_iterations=10):
    cv2 = _ximgproc()
    h, w = image.shape[:2]
    # SEEDS segfaults for steps from ~0.4 of the short side up (e.g. 54x21 with K=9; found by the
    # contract test); 0.35 never crashed in 2000 forked runs near that boundary
    k = _safe_count(h, w, n_segments, "seeds", max_step=0.35)
    seeds = cv2.ximgproc.createSuperpixelSEEDS(w, h, 3, k, num_levels, prior, histogram_bins, False)
    seeds.iterate(_to_lab8(image), num_iterations)
    labels, _ = enforce_connectivity(seeds.getLabels())
    return labels


@register_provider("lsc", connected=True, connectivity="post-processing", extra=True,
                   description="Linear Spectral Clustering (Li & Chen 2015), OpenCV-contrib")
def lsc_superpixels(image, n_segments, *, ratio=0.075, num_iterations=10):
    cv2 = _ximgproc()
    h, w = image.shape[:2]
    # LSC dies with SIGFPE when the region size nears the short side (e.g. 41x18 with K=3); a step of
    # at most half the short side never crashed in 2000 forked runs of small K
    k = _safe_count(h, w, n_segments, "lsc", max_step=0.5)
    region = max(2, int(round(np.sqrt(h * w / k))))
    # OpenCV's multi-threaded LSC is racy: with several threads the same image gave different labels
    # (up to 60 % of pixels; found by the contract test). One thread is deterministic.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        lsc = cv2.ximgproc.createSuperpixelLSC(_to_lab8(image), region, ratio)
        lsc.iterate(num_iterations)
        lsc.enforceLabelConnectivity(max(1, region * region // 4))
        raw = lsc.getLabels()
    finally:
        cv2.setNumThreads(threads)
    labels, _ = enforce_connectivity(raw)
    return labels
