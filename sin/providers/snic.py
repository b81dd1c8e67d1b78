"""``snic``: Simple Non-Iterative Clustering (Achanta & Suesstrunk, CVPR 2017).

A numba port of the authors' ``snic_mex.cpp`` (``FindSeeds`` + ``runSNIC``; see
``shared/specs/ers_snic.md`` part B): seeds on a regular grid, then one priority-queue
region growing pass in which every popped pixel joins its cluster, the cluster's running
sums (CIELAB colour and position) are updated *before* its 4-neighbours are scored, and every
still unlabelled 4-neighbour ``j`` is pushed with the squared distance

    d = ||mu_c(k) - c_j||^2 + invwt * ||mu_xy(k) - xy_j||^2,    invwt = m^2 K' / N,

evaluated, as in the mex, with a single late division ``(||sum_c - n c_j||^2 + invwt
||sum_xy - n xy_j||^2) / n^2``. Every pixel joins through a 4-neighbour already in its cluster,
so each superpixel is 4-connected by construction and every pixel is labelled (the grid graph
is connected); the mex's final sweep for unlabelled pixels is kept as a safety net only.

Differences from the mex (all deliberate, see also :func:`snic_seeds`):

* Colour conversion: :func:`skimage.color.rgb2lab` on the float RGB image instead of the mex's
  own ``rgbtolab`` on 8-bit values. Both are sRGB -> CIELAB (D65, L in [0, 100]); the mex uses
  slightly different constants (white point X=0.950456, Z=1.088754 vs skimage's 0.95047,
  1.08883; XYZ matrix to 7 vs 6 digits), which moves Lab values by at most ~0.011 (measured on
  all 8-bit grey levels and 10^5 random colours in ``benchmarks/snic_ers_check.py``): ties aside,
  labels are unaffected. For a 1-channel image the mex skips the conversion and puts the raw
  0..255 grey value in all three channels; here grey images are replicated to RGB by
  :class:`sin.providers.Provider` and converted like colour images (L only, a = b = 0), so the
  meaning of ``compactness`` on grey images differs from the mex (ours is more compact).
* Ties: the mex uses ``std::priority_queue`` (ties in an unspecified order); we break ties
  first-in-first-out by an insertion counter, so results are deterministic.
* A per-pixel "best pushed distance" map skips pushes that can never win (a smaller distance
  for the same pixel is already queued); this only removes dead queue entries and does not
  change the result.
* Degenerate sizes (the mex divides by zero or returns no seed): see :func:`snic_seeds`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from skimage.color import rgb2lab

from ..image import as_float_rgb, check_n_segments
from .params import Float
from .registry import register_provider

__all__ = ["snic", "snic_seeds", "snic_superpixels"]


def snic_seeds(height: int, width: int, n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Seed positions of SNIC's ``FindSeeds`` (row-major order): ``(ys, xs)`` int64 arrays.

    The mex rule: ``step = round(sqrt(N / K))``; if ``step - 1`` gives a product
    ``(W div step') * (H div step')`` closer to ``K``, use ``step - 1``. ``K' = xsteps * ysteps``
    seeds are placed row by row at ``halfstep + i * step`` (``halfstep`` = the *first* step div 2,
    as in the mex), skipping coordinates beyond ``dimension - halfstep`` and stopping after ``K'``.

    Parameters
    ----------
    height, width : int
        Image size (at least 2 pixels in total).
    n_segments : int
        Requested number of superpixels ``K`` (>= 1).

    Returns
    -------
    ys, xs : (K',) int64
        Seed rows and columns, all distinct, ``1 <= K' <= H * W``.

    Notes
    -----
    Deviations, all for sizes where the mex fails:

    * ``K`` is clamped to ``N = H * W`` (every pixel at most one seed; the mex's ``step`` would
      be 0 and divide by zero).
    * The ``step - 1`` rule is tried only when ``step > 1`` (the mex divides by zero).
    * If the grid is empty (an image thinner than ``step``, e.g. ``1 x N``) or the mex's
      row-major fill would leave slots unfilled (which the mex fills with pixel ``(0, 0)``,
      i.e. with duplicate seeds that yield empty labels), unfilled slots are dropped; if no
      seed remains, a fallback grid is used: ``ny = clip(ysteps, 1, H)`` rows and
      ``nx = clip(xsteps, 1, W)`` columns at cell centres, where a zero count along one axis is
      replaced by ``1`` and the other axis gets ``clip(round(K / n_other), 1, size)`` cells.
      So there is always at least one seed.
    """
    h, w = int(height), int(width)
    n = h * w
    k = min(int(n_segments), n)
    step = int(math.sqrt(n / k) + 0.5)  # >= 1 because n / k >= 1
    halfstep = step // 2  # the mex fixes halfstep before the step-1 adjustment
    xsteps, ysteps = w // step, h // step
    if step > 1:
        err1 = abs(xsteps * ysteps - k)
        err2 = abs((w // (step - 1)) * (h // (step - 1)) - k)
        if err2 < err1:
            step -= 1
            xsteps, ysteps = w // step, h // step
    numk = xsteps * ysteps
    ys, xs = [], []
    # the mex's fill: rows from halfstep, columns from halfstep, both bounded by
    # "coordinate <= dimension - halfstep", stopping after numk seeds (row-major)
    y = halfstep
    while y < h and len(ys) < numk:
        x = halfstep
        while x < w and len(ys) < numk:
            if y <= h - halfstep and x <= w - halfstep:
                ys.append(y)
                xs.append(x)
            x += step
        y += step
    if not ys:
        ny = min(max(ysteps, 1), h)
        nx = min(max(xsteps, 1), w)
        if ysteps == 0:
            nx = min(max(round(k / ny), 1), w)
        if xsteps == 0:
            ny = min(max(round(k / nx), 1), h)
        cy = ((np.arange(ny) + 0.5) * h / ny).astype(np.int64)
        cx = ((np.arange(nx) + 0.5) * w / nx).astype(np.int64)
        gy, gx = np.meshgrid(cy, cx, indexing="ij")
        return gy.ravel(), gx.ravel()
    return np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# numba core: binary min-heap on arrays, ordered by (distance, insertion counter)
# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def _heap_push(hd, hc, size, dist, counter):
    i = size
    hd[i] = dist
    hc[i] = counter
    while i > 0:
        p = (i - 1) >> 1
        if hd[i] < hd[p] or (hd[i] == hd[p] and hc[i] < hc[p]):
            hd[i], hd[p] = hd[p], hd[i]
            hc[i], hc[p] = hc[p], hc[i]
            i = p
        else:
            break
    return size + 1


@njit(cache=True)
def _heap_pop(hd, hc, size):
    """Remove the root; returns the new size (the root must have been read before)."""
    size -= 1
    hd[0] = hd[size]
    hc[0] = hc[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        best = left
        right = left + 1
        if right < size and (hd[right] < hd[left] or (hd[right] == hd[left] and hc[right] < hc[left])):
            best = right
        if hd[best] < hd[i] or (hd[best] == hd[i] and hc[best] < hc[i]):
            hd[i], hd[best] = hd[best], hd[i]
            hc[i], hc[best] = hc[best], hc[i]
            i = best
        else:
            break
    return size


@njit(cache=True)
def _snic_core(lab, seeds_y, seeds_x, invwt):
    h, w = lab.shape[0], lab.shape[1]
    n = h * w
    numk = seeds_y.shape[0]
    labels = np.full(n, -1, dtype=np.int32)
    # every labelled pixel pushes at most 4 neighbours: numk + 4 n entries in total
    cap = numk + 4 * n
    hd = np.empty(cap, dtype=np.float64)     # heap: distance
    hc = np.empty(cap, dtype=np.int64)       # heap: insertion counter (unique, FIFO ties)
    item_pix = np.empty(cap, dtype=np.int32)  # payload by counter
    item_lab = np.empty(cap, dtype=np.int32)
    best = np.full(n, np.inf)                # smallest distance queued per pixel
    sl = np.zeros(numk)
    sa = np.zeros(numk)
    sb = np.zeros(numk)
    sx = np.zeros(numk)
    sy = np.zeros(numk)
    sn = np.zeros(numk)
    size = 0
    counter = 0
    for k in range(numk):
        i = seeds_y[k] * w + seeds_x[k]
        item_pix[counter] = i
        item_lab[counter] = k
        best[i] = 0.0
        size = _heap_push(hd, hc, size, 0.0, counter)
        counter += 1
    dys = (0, -1, 0, 1)  # the mex's neighbour order: left, up, right, down
    dxs = (-1, 0, 1, 0)
    while size > 0:
        c = hc[0]
        size = _heap_pop(hd, hc, size)
        i = item_pix[c]
        if labels[i] >= 0:
            continue
        k = item_lab[c]
        labels[i] = k
        y = i // w
        x = i - y * w
        sl[k] += lab[y, x, 0]
        sa[k] += lab[y, x, 1]
        sb[k] += lab[y, x, 2]
        sx[k] += x
        sy[k] += y
        sn[k] += 1.0
        nk = sn[k]
        for p in range(4):
            yy = y + dys[p]
            xx = x + dxs[p]
            if yy < 0 or yy >= h or xx < 0 or xx >= w:
                continue
            ii = yy * w + xx
            if labels[ii] >= 0:
                continue
            dl = sl[k] - lab[yy, xx, 0] * nk
            da = sa[k] - lab[yy, xx, 1] * nk
            db = sb[k] - lab[yy, xx, 2] * nk
            dx = sx[k] - xx * nk
            dy = sy[k] - yy * nk
            d = ((dl * dl + da * da + db * db) + (dx * dx + dy * dy) * invwt) / (nk * nk)
            if d > best[ii]:  # a queued entry for ii with a smaller distance always wins
                continue
            best[ii] = d
            item_pix[counter] = ii
            item_lab[counter] = k
            size = _heap_push(hd, hc, size, d, counter)
            counter += 1
    # the mex's sweep for unlabelled pixels (cannot trigger: the 4-grid is connected and
    # every unlabelled neighbour of a labelled pixel is queued); kept as a safety net
    for i in range(n):
        if labels[i] < 0:
            if i % w > 0 and labels[i - 1] >= 0:
                labels[i] = labels[i - 1]
            elif i >= w and labels[i - w] >= 0:
                labels[i] = labels[i - w]
            else:
                labels[i] = 0
    return labels.reshape(h, w)


def snic(image, n_segments: int = 600, *, compactness: float = 20.0, channel_axis: int | None = -1,
         return_info: bool = False):
    """SNIC superpixels of an RGB (or grey) image.

    Parameters
    ----------
    image : array_like
        ``(H, W, 3)`` RGB (or grey / RGBA, see :func:`sin.image.as_float_rgb`), uint8 or float in
        [0, 1], at least 2 pixels.
    n_segments : int, optional
        Requested number of superpixels ``K``. The actual number ``K'`` follows the mex's seed
        grid (:func:`snic_seeds`), e.g. ``K' = 600`` for ``K = 600`` on 481 x 321, but it can be
        off by tens of percent for other ``K``/sizes; ``K' <= H * W`` always.
    compactness : float, optional
        ``m`` of the mex (demo default 20): the weight of the spatial term is
        ``invwt = m^2 K' / N`` in units of squared CIELAB distance.
    channel_axis : int or None, optional
        Colour axis (``None`` for a 2-D grey image).
    return_info : bool, optional
        Also return a dict with ``seeds`` (``(ys, xs)``), ``invwt`` and ``n_superpixels``.

    Returns
    -------
    labels : (H, W) int32
        Labels ``0..K'-1`` (label ``k`` grows from seed ``k``), each 4-connected.
    info : dict
        Only if ``return_info``.

    Raises
    ------
    ValueError
        Invalid image (see :func:`sin.image.as_float_rgb`), ``n_segments`` or ``compactness``.
    """
    img = as_float_rgb(image, channel_axis=channel_axis)
    k = check_n_segments(n_segments)
    compactness = float(compactness)
    if not np.isfinite(compactness) or compactness < 0:
        raise ValueError(f"compactness must be a finite number >= 0, got {compactness}")
    labels, info = _snic_labels(img, k, compactness)
    return (labels, info) if return_info else labels


def _snic_labels(img: np.ndarray, n_segments: int, compactness: float):
    h, w = img.shape[:2]
    # skimage's sRGB -> CIELAB (D65), L in [0, 100]; see the module docstring for how it differs
    # from the mex's own conversion
    lab = np.ascontiguousarray(rgb2lab(img.astype(np.float64)), dtype=np.float64)
    ys, xs = snic_seeds(h, w, n_segments)
    invwt = compactness * compactness * ys.size / float(h * w)
    labels = _snic_core(lab, ys, xs, invwt)
    return labels, {"seeds": (ys, xs), "invwt": invwt, "n_superpixels": int(ys.size)}


# max_pixels: SLIC, SNIC and FH took 45-90 s at 24 MP (issue 15); 12 MP stays under a minute
@register_provider(
    "snic", connected=True, connectivity="by construction", version="1", max_pixels=12_000_000,
    description="SNIC (Achanta & Suesstrunk 2017), numba port of the authors' snic_mex, CIELAB, m=20",
    params={"compactness": Float(0, help="m: weight of the spatial distance")})
def snic_superpixels(image: np.ndarray, n_segments: int, *, compactness: float = 20.0) -> np.ndarray:
    """Provider entry point: ``image`` is a validated ``(H, W, 3)`` float32 RGB image in [0, 1].

    See :func:`snic` for the parameters and the deviations from the original code.
    """
    compactness = float(compactness)
    if not np.isfinite(compactness) or compactness < 0:
        raise ValueError(f"compactness must be a finite number >= 0, got {compactness}")
    return _snic_labels(image, int(n_segments), compactness)[0]
