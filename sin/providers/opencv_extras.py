"""``seeds`` and ``lsc``: OpenCV-contrib (``cv2.ximgproc``) superpixels, as extras.

Neither guarantees 4-connected regions natively (SEEDS exchanges boundary blocks, LSC's own
post-processing absorbs small pieces only), so 4-connectivity is enforced afterwards with
:func:`sin.connectivity.enforce_connectivity`. Both need images of at least 16x16 pixels and
clamp the requested count into a safe range (see :func:`_safe_count`).

Parameter ranges, found by running OpenCV 4.8-5.1 in subprocesses: SEEDS segfaults for
``num_levels`` above 32 (its ``1 << (levels - 1)`` overflows an int) and for ``histogram_bins`` below
1; its histograms take ``bins**3`` floats per block of the finest level, so many levels with many
bins can ask for tens of GB (refused up front, see :func:`_seeds_histogram_bytes`). ``prior`` is
documented as 0..5 (larger values are clamped by OpenCV). LSC runs with any ``ratio`` but its
sign does not matter (distances are squared) and 0 drops the spatial term, so only ``ratio > 0``
is meaningful; with 0 iterations it returns a single region.

Needs ``opencv-contrib-python(-headless)``. ``pysodmetrics`` pulls the plain OpenCV wheel,
which shadows ``cv2.ximgproc`` if installed after contrib; the Makefile reinstalls contrib last.
"""

from __future__ import annotations

import numpy as np

from ..connectivity import enforce_connectivity
from .params import Float, Int
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


#: Largest histogram memory SEEDS may allocate (bytes); see :func:`_seeds_histogram_bytes`.
SEEDS_MAX_HISTOGRAM_BYTES = 4 << 30


def _seeds_histogram_bytes(h: int, w: int, k: int, num_levels: int, histogram_bins: int) -> int:
    """The histogram memory OpenCV's SEEDS allocates (its ``initialize``, redone in Python): one
    ``bins**3`` histogram (padded to 64 bytes) per block of every level, 2x2 blocks per parent."""
    k = max(k, 10)
    levels = max(num_levels, 2)
    nsh = max(1, int(np.sqrt(k * h / w)))
    nsw = max(1, nsh * w // h)
    while levels > 1 and (w / nsw / (1 << (levels - 1)) < 1 or h / nsh / (1 << (levels - 1)) < 1):
        levels -= 1
    bw, bh = int(np.ceil(w / nsw / (1 << (levels - 1)))), int(np.ceil(h / nsh / (1 << (levels - 1))))
    blocks = total = (w // bw) * (h // bh)
    for _ in range(levels - 1):
        blocks //= 4
        total += blocks
    return total * (-(-histogram_bins ** 3 // 16) * 16) * 4


# max_pixels: SEEDS 12 MP, LSC 4 MP (the limits of the earlier central table, set after issue 15)
@register_provider("seeds", connected=True, connectivity="post-processing", extra=True, version="1",
                   max_pixels=12_000_000, description="SEEDS (Van den Bergh et al. 2012), OpenCV-contrib",
                   params={"num_levels": Int(1, 32, help="block levels (OpenCV raises 1 to 2)"),
                           "prior": Int(0, 5, help="shape smoothing term (0: off)"),
                           "histogram_bins": Int(1, 16, help="colour histogram bins per channel"),
                           "num_iterations": Int(0, 1000, help="pixel-level iterations")})
def seeds_superpixels(image, n_segments, *, num_levels=4, prior=2, histogram_bins=5, num_iterations=10):
    cv2 = _ximgproc()
    h, w = image.shape[:2]
    # SEEDS segfaults for steps from ~0.4 of the short side up (e.g. 54x21 with K=9; found by the
    # contract test); 0.35 never crashed in 2000 forked runs near that boundary
    k = _safe_count(h, w, n_segments, "seeds", max_step=0.35)
    need = _seeds_histogram_bytes(h, w, k, num_levels, histogram_bins)
    if need > SEEDS_MAX_HISTOGRAM_BYTES:
        raise ValueError(f"seeds: num_levels={num_levels} with histogram_bins={histogram_bins} needs "
                         f"{need / 2**30:.1f} GB of histograms for a {h}x{w} image (limit "
                         f"{SEEDS_MAX_HISTOGRAM_BYTES / 2**30:.0f} GB); use fewer levels or bins")
    seeds = cv2.ximgproc.createSuperpixelSEEDS(w, h, 3, k, num_levels, prior, histogram_bins, False)
    seeds.iterate(_to_lab8(image), num_iterations)
    labels, _ = enforce_connectivity(seeds.getLabels())
    return labels


@register_provider("lsc", connected=True, connectivity="post-processing", extra=True, version="1",
                   max_pixels=4_000_000, description="Linear Spectral Clustering (Li & Chen 2015), OpenCV-contrib",
                   params={"ratio": Float(0, low_open=True, help="compactness: weight of the spatial term"),
                           "num_iterations": Int(1, 1000, help="clustering iterations")})
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
