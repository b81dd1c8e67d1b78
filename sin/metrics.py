"""Superpixel quality metrics, as computed by the superpixel-benchmark (Stutz et al.).

Every metric follows ``lib_eval/evaluation.cpp`` of ``davidstutz/superpixel-benchmark``
(specification: ``../shared/specs/metrics.md``), vectorised with numpy/scipy:

========================  ==========  =====================================================
function                  column      what
========================  ==========  =====================================================
achievable_seg...accuracy ``asa``     fraction of pixels labelled right by the best GT label per superpixel
undersegmentation_error   ``ue``      the benchmark's ``ue`` = ``1 - asa``
np_undersegmentation_...  ``ue_np``   Neubert & Protzel UE (the "UE" of Stutz et al.)
levin_undersegmentation.  ``ue_levin`` Levinshtein (TurboPixels) UE, averaged over GT label *slots*
oversegmentation_error    ``oe``      fraction of GT pixels outside the best superpixel per segment
boundary_recall_precision ``rec``/``pre`` boundary recall and the benchmark's asymmetric precision
compactness               ``co``      Schick et al., area-weighted isoperimetric quotient
explained_variation       ``ev``      fraction of colour variance explained by superpixel means
========================  ==========  =====================================================

plus the benchmark's other per-image numbers (``sse_rgb``, ``sse_xy``, ``mde``, ``icv``, ``cd``,
``sp``, ``sp_size``, ``sp_size_variation``), :func:`evaluate` (one row per (image, GT) pair,
columns named as in the benchmark's ``results.csv``) and :func:`aggregate`.

Conventions
-----------
* Label maps are 2-D arrays of non-negative integers (any values: they are compacted
  internally, so a label of 10**9 costs no memory; negative labels raise ``ValueError``).
* Boundary pixels are "either side" 4-neighbour boundaries: a pixel is a boundary pixel when
  one of its (up to four) in-image neighbours has a different label, so boundaries are two
  pixels thick.
* The boundary tolerance is a *square* window of radius
  ``r = round(0.0025 * sqrt(H**2 + W**2))`` (1 on BSDS500, 2 on NYUv2), clipped to the image.
* Colour metrics use 8-bit values. The benchmark reads images with OpenCV (BGR order); we take
  RGB. ``ev``, ``sse_rgb`` and ``icv`` sum over channels, so the channel order does not change
  them.
* Sums are accumulated in float64 (the benchmark uses float32); differences are in the 6th-7th
  significant digit.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from .image import as_uint8_rgb, check_labels

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "METRIC_COLUMNS",
    "achievable_segmentation_accuracy",
    "aggregate",
    "boundary_pixels",
    "boundary_precision",
    "boundary_recall",
    "boundary_recall_precision",
    "boundary_tolerance",
    "compactness",
    "contour_density",
    "evaluate",
    "explained_variation",
    "intra_cluster_variation",
    "levin_undersegmentation_error",
    "mean_distance_to_edge",
    "np_undersegmentation_error",
    "number_of_superpixels",
    "oversegmentation_error",
    "sum_of_squared_error_rgb",
    "sum_of_squared_error_xy",
    "superpixel_size_stats",
    "undersegmentation_error",
]

#: Metric columns of :func:`evaluate`, in the order of the benchmark's ``results.csv``
#: (its ``reg`` column is left out: the benchmark computes it with ``W = rows``, a bug).
METRIC_COLUMNS = ("ue", "oe", "rec", "pre", "ue_np", "ue_levin", "asa", "sse_rgb", "sse_xy",
                  "co", "ev", "mde", "icv", "cd", "sp", "sp_size", "sp_size_variation")

#: Metrics where larger is better ("worst" GT = minimum).
HIGHER_IS_BETTER = frozenset({"rec", "pre", "asa", "co", "ev"})
#: Error metrics ("worst" GT = maximum).
LOWER_IS_BETTER = frozenset({"ue", "oe", "ue_np", "ue_levin", "sse_rgb", "sse_xy", "mde", "icv"})

#: Default boundary tolerance as a fraction of the image diagonal (``evaluation.h``).
DEFAULT_TOLERANCE_FRACTION = 0.0025

# Dense contingency tables up to this many cells; beyond, a sort-based sparse table.
_DENSE_TABLE_CELLS = 1 << 23


# --------------------------------------------------------------------------------------------
# validation and compaction
# --------------------------------------------------------------------------------------------

def _check_map(labels, what: str, shape=None) -> np.ndarray:
    arr = check_labels(labels, shape, what=what)
    if arr.dtype == np.uint64 and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{what} has label values beyond the int64 range")
    return arr


def _check_pair(labels, gt) -> tuple[np.ndarray, np.ndarray]:
    labels = _check_map(labels, "labels")
    gt = _check_map(gt, "ground truth", None)
    if gt.shape != labels.shape:
        raise ValueError(f"ground truth shape {gt.shape} does not match the superpixel labels {labels.shape}")
    return labels, gt


def _compact(arr: np.ndarray) -> tuple[np.ndarray, int]:
    """Map the values present to ``0..K-1`` (ascending), without a ``max + 1`` sized array
    when the values are sparse (e.g. padding labels of 100000 or 10**9)."""
    flat = arr.ravel()
    vmax = int(flat.max())
    if vmax < 4 * flat.size + 1024:  # lookup table: O(N + max), no sort
        present = np.zeros(vmax + 1, dtype=bool)
        present[flat] = True
        if present.all():  # already contiguous 0..K-1 (every provider's output): no gather
            return arr.astype(np.intp, copy=False), vmax + 1
        lut = np.cumsum(present, dtype=np.intp) - 1
        return lut[flat].reshape(arr.shape), int(lut[-1]) + 1
    uniq, inv = np.unique(flat, return_inverse=True)
    return inv.reshape(arr.shape).astype(np.intp), int(uniq.size)


@dataclass(frozen=True)
class _Overlap:
    """Sparse intersection matrix ``n_ij = |G_i ∩ S_j|`` (non-zero entries only)."""

    gi: np.ndarray        # GT segment (compact index) of each non-zero entry
    sj: np.ndarray        # superpixel (compact index) of each entry
    nij: np.ndarray       # |G_i ∩ S_j| > 0
    sp_sizes: np.ndarray  # |S_j|, (Ks,)
    gt_sizes: np.ndarray  # |G_i|, (Kg,)
    gt_slots: int         # max GT label + 1 (the benchmark sizes its arrays by it)
    n: int                # number of pixels

    @classmethod
    def of(cls, labels: np.ndarray, gt: np.ndarray) -> _Overlap:
        s, ks = _compact(labels)
        g, kg = _compact(gt)
        return cls.from_indices(s.ravel(), ks, g.ravel(), kg, gt_slots=int(gt.max()) + 1)

    @classmethod
    def from_indices(cls, s: np.ndarray, ks: int, g: np.ndarray, kg: int, gt_slots: int) -> _Overlap:
        """From compact (flat) superpixel indices ``s`` (``0..ks-1``) and GT indices ``g``."""
        combined = g * ks + s
        if kg * ks <= max(_DENSE_TABLE_CELLS, 4 * combined.size):
            counts = np.bincount(combined, minlength=kg * ks)
            cells = np.flatnonzero(counts)
            nij = counts[cells]
        else:
            cells, nij = np.unique(combined, return_counts=True)
        return cls(gi=cells // ks, sj=cells % ks, nij=nij.astype(np.int64),
                   sp_sizes=np.bincount(s, minlength=ks), gt_sizes=np.bincount(g, minlength=kg),
                   gt_slots=gt_slots, n=int(s.size))

    def max_over_gt(self) -> np.ndarray:
        """``max_i n_ij`` for every superpixel j."""
        out = np.zeros(self.sp_sizes.size, dtype=np.int64)
        np.maximum.at(out, self.sj, self.nij)
        return out

    def max_over_superpixels(self) -> np.ndarray:
        """``max_j n_ij`` for every GT segment i."""
        out = np.zeros(self.gt_sizes.size, dtype=np.int64)
        np.maximum.at(out, self.gi, self.nij)
        return out

    def asa(self) -> float:
        return float(self.max_over_gt().sum()) / self.n

    def ue(self) -> float:
        # (1/N) sum_j min_i (|S_j| - n_ij); the minimum over *all* i (empty intersections
        # included) is |S_j| - max_i n_ij, hence ue = 1 - asa exactly.
        return float((self.sp_sizes - self.max_over_gt()).sum()) / self.n

    def oe(self) -> float:
        return float((self.gt_sizes - self.max_over_superpixels()).sum()) / self.n

    def ue_np(self) -> float:
        rest = self.sp_sizes[self.sj] - self.nij
        return float(np.minimum(self.nij, rest).sum()) / self.n

    def ue_levin(self) -> float:
        covered = np.bincount(self.gi, weights=self.sp_sizes[self.sj].astype(np.float64),
                              minlength=self.gt_sizes.size)
        per_segment = (covered - self.gt_sizes) / self.gt_sizes  # every compact segment is non-empty
        # The benchmark divides by the number of label *slots* (max GT label + 1), empty ones
        # included: 1-based GT maps add an empty slot 0 to the denominator.
        return float(per_segment.sum()) / self.gt_slots


# --------------------------------------------------------------------------------------------
# region metrics
# --------------------------------------------------------------------------------------------

def achievable_segmentation_accuracy(labels, gt) -> float:
    """Achievable segmentation accuracy ``ASA = (1/N) sum_j max_i |G_i ∩ S_j|``.

    The accuracy of the best segmentation that can be made of superpixels (each superpixel
    given its majority GT label). Column ``asa``.

    Parameters
    ----------
    labels : (H, W) array_like of int
        Superpixel labels (non-negative; any values).
    gt : (H, W) array_like of int
        Ground-truth segmentation.

    Returns
    -------
    float
        In ``(0, 1]``; 1 when every superpixel lies inside one GT segment.

    Raises
    ------
    ValueError
        Not 2-D integer maps, negative labels, empty or mismatched shapes.
    """
    return _Overlap.of(*_check_pair(labels, gt)).asa()


def undersegmentation_error(labels, gt) -> float:
    """The benchmark's ``ue``: ``(1/N) sum_j min_i |S_j - G_i|``, which equals ``1 - ASA``.

    This is *not* the UE reported by Stutz et al. (that is :func:`np_undersegmentation_error`).
    Parameters, errors: as :func:`achievable_segmentation_accuracy`.
    """
    return _Overlap.of(*_check_pair(labels, gt)).ue()


def np_undersegmentation_error(labels, gt) -> float:
    """Neubert & Protzel undersegmentation error (column ``ue_np``).

    ``UE_NP = (1/N) sum_i sum_{j: n_ij > 0} min(n_ij, |S_j| - n_ij)``: every superpixel that
    straddles a GT boundary is charged its smaller part. Parameters, errors: as
    :func:`achievable_segmentation_accuracy`.
    """
    return _Overlap.of(*_check_pair(labels, gt)).ue_np()


def levin_undersegmentation_error(labels, gt) -> float:
    """Levinshtein et al. (TurboPixels) undersegmentation error (column ``ue_levin``).

    ``UE_Levin = (1/M) sum_{i: |G_i| > 0} (sum_{j: n_ij > 0} |S_j| - |G_i|) / |G_i|`` with
    ``M = max(gt) + 1`` label slots, empty slots included, exactly as the benchmark (so the
    value depends on the GT's label *values*: a 1-based GT has an empty slot 0). Parameters,
    errors: as :func:`achievable_segmentation_accuracy`.
    """
    return _Overlap.of(*_check_pair(labels, gt)).ue_levin()


def oversegmentation_error(labels, gt) -> float:
    """Oversegmentation error ``OE = (1/N) sum_i (|G_i| - max_j n_ij)`` (column ``oe``).

    Parameters, errors: as :func:`achievable_segmentation_accuracy`.
    """
    return _Overlap.of(*_check_pair(labels, gt)).oe()


# --------------------------------------------------------------------------------------------
# boundary metrics
# --------------------------------------------------------------------------------------------

def boundary_pixels(labels) -> np.ndarray:
    """Boolean map of 4-connected boundary pixels ("either side": two pixels thick).

    A pixel is a boundary pixel when at least one of its up to four in-image neighbours has a
    different label (the benchmark's ``is4ConnectedBoundaryPixel``).
    """
    lab = _check_map(labels, "labels")
    b = np.zeros(lab.shape, dtype=bool)
    dv = lab[1:, :] != lab[:-1, :]
    b[1:, :] |= dv
    b[:-1, :] |= dv
    dh = lab[:, 1:] != lab[:, :-1]
    b[:, 1:] |= dh
    b[:, :-1] |= dh
    return b


def boundary_tolerance(shape, fraction: float = DEFAULT_TOLERANCE_FRACTION) -> int:
    """Tolerance radius ``r = round(fraction * sqrt(H**2 + W**2))`` in pixels.

    Rounded half away from zero like ``std::round``, with ``fraction`` taken as a C ``float``
    as in the benchmark (321 x 481 -> 1, 448 x 608 -> 2).
    """
    h, w = (int(v) for v in shape[:2])
    if not (np.isfinite(fraction) and fraction >= 0):
        raise ValueError(f"tolerance fraction must be a non-negative number, got {fraction!r}")
    value = float(np.float32(fraction)) * math.sqrt(h * h + w * w)
    return math.floor(value + 0.5)


def _resolve_tolerance(tolerance, shape) -> int:
    if tolerance is None:
        return boundary_tolerance(shape)
    # only real numbers: a string such as "2" would otherwise fail later with a TypeError
    if (isinstance(tolerance, (bool, np.bool_)) or not isinstance(tolerance, (numbers.Real, np.number))
            or not np.isfinite(float(tolerance)) or not float(tolerance).is_integer() or tolerance < 0):
        raise ValueError(f"tolerance must be a non-negative integer radius in pixels (or None), got {tolerance!r}")
    # a window of radius max(H, W) already covers the whole image from any pixel: larger radii give
    # the same result, and clamping keeps e.g. 10**12 from allocating a (2r+1)-wide filter
    return min(int(tolerance), max(int(v) for v in shape[:2]))


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square-window dilation: true where some pixel of the (2r+1)^2 window, clipped to the
    image, is true. Separable: a running OR along rows, then along columns."""
    if r == 0:
        return mask
    if r > 8:  # large windows: scipy's van Herk filter is O(1) per pixel in r
        # zero padding outside the image == clipping the window to the image
        return ndimage.maximum_filter(mask.view(np.uint8), size=2 * r + 1, mode="constant", cval=0).view(bool)
    out = mask.copy()
    for d in range(1, r + 1):
        out[d:, :] |= mask[:-d, :]
        out[:-d, :] |= mask[d:, :]
    rows = out.copy()
    for d in range(1, r + 1):
        out[:, d:] |= rows[:, :-d]
        out[:, :-d] |= rows[:, d:]
    return out


def _boundary_counts(sp_b: np.ndarray, sp_near: np.ndarray, gt_b: np.ndarray, gt_near: np.ndarray):
    tp = int(np.count_nonzero(gt_b & sp_near))
    fn = int(np.count_nonzero(gt_b)) - tp
    fp = int(np.count_nonzero(sp_b & ~gt_b & ~gt_near))
    return tp, fn, fp


def _recall_precision(tp: int, fn: int, fp: int) -> tuple[float, float]:
    rec = tp / (tp + fn) if tp + fn > 0 else 0.0
    pre = tp / (tp + fp) if tp + fp > 0 else 0.0
    return rec, pre


def boundary_recall_precision(labels, gt, tolerance=None) -> tuple[float, float]:
    """Boundary recall and (the benchmark's) boundary precision, columns ``rec`` and ``pre``.

    Parameters
    ----------
    labels, gt : (H, W) array_like of int
        Superpixel labels and ground truth.
    tolerance : int or None, optional
        Radius ``r`` of the square tolerance window; ``None``: :func:`boundary_tolerance` of
        the image size (``round(0.0025 * diagonal)``).

    Returns
    -------
    recall, precision : float
        With TP = GT boundary pixels having a superpixel boundary pixel in their window,
        FN = the other GT boundary pixels and FP = superpixel boundary pixels that are not GT
        boundary pixels and have no GT boundary pixel in their window:
        ``recall = TP / (TP + FN)``, ``precision = TP / (TP + FP)`` (0 when undefined).
        The precision mixes GT and superpixel pixel counts: it is the benchmark's definition,
        not the BSDS boundary benchmark's matching-based one.

    Raises
    ------
    ValueError
        Bad label maps (see :func:`achievable_segmentation_accuracy`) or tolerance.
    """
    labels, gt = _check_pair(labels, gt)
    r = _resolve_tolerance(tolerance, gt.shape)
    sp_b, gt_b = boundary_pixels(labels), boundary_pixels(gt)
    return _recall_precision(*_boundary_counts(sp_b, _dilate(sp_b, r), gt_b, _dilate(gt_b, r)))


def boundary_recall(labels, gt, tolerance=None) -> float:
    """Boundary recall ``TP / (TP + FN)`` (column ``rec``); see :func:`boundary_recall_precision`."""
    return boundary_recall_precision(labels, gt, tolerance)[0]


def boundary_precision(labels, gt, tolerance=None) -> float:
    """The benchmark's boundary precision (column ``pre``); see :func:`boundary_recall_precision`."""
    return boundary_recall_precision(labels, gt, tolerance)[1]


def mean_distance_to_edge(labels, gt) -> float:
    """Mean distance of GT boundary pixels to the nearest superpixel boundary pixel (``mde``).

    Uses OpenCV's L2 distance transform with a 3x3 mask (an approximation of the Euclidean
    distance, as in the benchmark). NaN when the GT has no boundary; inf when the superpixel
    map has none (one superpixel).
    """
    labels, gt = _check_pair(labels, gt)
    return _mde(boundary_pixels(labels), boundary_pixels(gt))


def _mde(sp_b: np.ndarray, gt_b: np.ndarray) -> float:
    import cv2

    if not gt_b.any():
        return float("nan")
    if not sp_b.any():
        return float("inf")
    dist = cv2.distanceTransform((~sp_b).view(np.uint8), cv2.DIST_L2, 3)
    return float(dist[gt_b].astype(np.float64).mean())


# --------------------------------------------------------------------------------------------
# superpixel-only metrics
# --------------------------------------------------------------------------------------------

def compactness(labels) -> float:
    """Compactness of Schick et al. (column ``co``).

    ``CO = sum_j (|S_j| / N) * 4 pi |S_j| / P_j**2`` where the perimeter ``P_j`` counts the
    pixel sides of ``S_j`` that face another label **or the image border**. Area-weighted: a
    single square superpixel covering a square image has ``CO = pi / 4``.

    Parameters
    ----------
    labels : (H, W) array_like of int

    Returns
    -------
    float
        In ``(0, pi/4]`` for pixel grids (a square is the most compact pixel shape).
    """
    lab = _check_map(labels, "labels")
    idx, k = _compact(lab)
    return _compactness(lab, idx.ravel(), k)


def _compactness(lab: np.ndarray, idx: np.ndarray, k: int) -> float:
    # each pixel contributes 4 sides minus those shared with an in-image same-label neighbour
    same = np.zeros(lab.shape, dtype=np.int64)
    ev = lab[1:, :] == lab[:-1, :]
    same[1:, :] += ev
    same[:-1, :] += ev
    eh = lab[:, 1:] == lab[:, :-1]
    same[:, 1:] += eh
    same[:, :-1] += eh
    perimeter = np.bincount(idx, weights=(4 - same).ravel(), minlength=k)
    area = np.bincount(idx, minlength=k).astype(np.float64)
    ok = perimeter > 0
    return float(np.sum(area[ok] * 4.0 * np.pi * area[ok] / perimeter[ok] ** 2) / lab.size)


def _check_image(image, shape) -> np.ndarray:
    img = as_uint8_rgb(image)
    if img.shape[:2] != tuple(shape):
        raise ValueError(f"image shape {img.shape[:2]} does not match the label map {tuple(shape)}")
    return img


class _Colour:
    """Per-superpixel colour statistics of an 8-bit image (float64), shared by ev/sse_rgb/icv.

    Sums of squared deviations use moments, ``sum (I - mu)^2 = sum I^2 - n mu^2``: the sums of
    8-bit values and their squares are exact in float64, and no per-pixel gather is needed.
    """

    def __init__(self, idx: np.ndarray, k: int, img: np.ndarray):
        pix = img.reshape(-1, img.shape[-1]).astype(np.float64)
        self.count = np.bincount(idx, minlength=k).astype(np.float64)
        sums = np.stack([np.bincount(idx, weights=pix[:, c], minlength=k) for c in range(pix.shape[1])], axis=1)
        sq_sums = np.bincount(idx, weights=np.einsum("ij,ij->i", pix, pix), minlength=k)  # channels summed
        self.means = sums / self.count[:, None]
        total = sums.sum(axis=0)
        mu = total / idx.size                                                   # global channel means
        self.total_ss = float(sq_sums.sum() - np.dot(total, mu))                # sum_x sum_c (I - mu_c)^2
        self.explained_ss = float(np.sum(self.count[:, None] * (self.means - mu) ** 2))
        # sum over the pixels of S_j, channels summed, of (I - mu_j)^2 (clipped: rounding)
        self.residual_per_sp = np.maximum(sq_sums - np.einsum("ij,ij->i", sums, self.means), 0.0)
        self.n = idx.size

    def ev(self) -> float:
        return self.explained_ss / self.total_ss if self.total_ss > 0 else float("nan")

    def sse_rgb(self) -> float:
        return float(self.residual_per_sp.sum()) / self.n

    def icv(self, slots: int) -> float:
        return float(np.sqrt(self.residual_per_sp / self.count).sum()) / slots


def explained_variation(labels, image) -> float:
    """Explained variation (column ``ev``).

    ``EV = sum_x sum_c (mu_{S(x),c} - mu_c)**2 / sum_x sum_c (I_c(x) - mu_c)**2`` on the
    8-bit colour values (``mu_c`` = global channel mean): the share of the image's colour
    variance that the superpixel means explain. The benchmark reads BGR, we take RGB; the
    channel sum makes the order irrelevant.

    Parameters
    ----------
    labels : (H, W) array_like of int
    image : (H, W, 3) array_like
        uint8 RGB or float in [0, 1] (converted to 8 bit with rounding).

    Returns
    -------
    float
        In [0, 1]; 1 when each superpixel has a uniform colour. NaN for a constant image
        (0 / 0, as in the benchmark).
    """
    lab = _check_map(labels, "labels")
    img = _check_image(image, lab.shape)
    idx, k = _compact(lab)
    return _Colour(idx.ravel(), k, img).ev()


def sum_of_squared_error_rgb(labels, image) -> float:
    """``sse_rgb = (1/N) sum_x sum_c (I_c(x) - mu_{S(x),c})**2`` on 8-bit colour values."""
    lab = _check_map(labels, "labels")
    img = _check_image(image, lab.shape)
    idx, k = _compact(lab)
    return _Colour(idx.ravel(), k, img).sse_rgb()


def sum_of_squared_error_xy(labels) -> float:
    """``sse_xy = (1/N) sum_x ||x - mu_xy(S(x))||**2`` (pixel coordinates)."""
    lab = _check_map(labels, "labels")
    idx, k = _compact(lab)
    return _sse_xy(lab.shape, idx.ravel(), k)


def _sse_xy(shape, idx, k) -> float:
    h, w = shape
    count = np.bincount(idx, minlength=k).astype(np.float64)
    ii = np.repeat(np.arange(h, dtype=np.float64), w)
    jj = np.tile(np.arange(w, dtype=np.float64), h)
    total = 0.0
    for coord in (ii, jj):  # sum (x - mu)^2 = sum x^2 - (sum x)^2 / n per superpixel
        s1 = np.bincount(idx, weights=coord, minlength=k)
        s2 = np.bincount(idx, weights=coord * coord, minlength=k)
        total += float(np.maximum(s2 - s1 * s1 / count, 0.0).sum())
    return total / idx.size


def intra_cluster_variation(labels, image) -> float:
    """Intra-cluster variation ``icv``: mean over label slots of the per-superpixel colour
    standard deviation ``sqrt(sum_c var_c)``.

    As in the benchmark the mean runs over ``max(labels) + 1`` slots (an unused label value
    counts as a zero); providers' contiguous labels make slots = superpixels.
    """
    lab = _check_map(labels, "labels")
    img = _check_image(image, lab.shape)
    idx, k = _compact(lab)
    return _Colour(idx.ravel(), k, img).icv(int(lab.max()) + 1)


def contour_density(labels) -> float:
    """Fraction of pixels that are (4-connected, either-side) boundary pixels (``cd``)."""
    b = boundary_pixels(labels)
    return float(np.count_nonzero(b)) / b.size


def number_of_superpixels(labels) -> int:
    """Number of distinct labels present (column ``sp``; not the requested count)."""
    return _compact(_check_map(labels, "labels"))[1]


def superpixel_size_stats(labels) -> tuple[float, float]:
    """Mean and (population) standard deviation of the superpixel sizes (present labels),
    columns ``sp_size`` and ``sp_size_variation``."""
    idx, k = _compact(_check_map(labels, "labels"))
    return _size_stats(np.bincount(idx.ravel(), minlength=k))


def _size_stats(sizes: np.ndarray) -> tuple[float, float]:
    sizes = sizes.astype(np.float64)
    return float(sizes.mean()), float(sizes.std())


# --------------------------------------------------------------------------------------------
# all metrics, many ground truths
# --------------------------------------------------------------------------------------------

def evaluate(labels, ground_truths, image=None, *, tolerance=None, image_id=None) -> pd.DataFrame:
    """All metrics for one superpixel map against each of its ground truths.

    Parameters
    ----------
    labels : (H, W) array_like of int
        Superpixel labels.
    ground_truths : (H, W) array_like or sequence of them
        One or several ground-truth segmentations of the same image (BSDS500: 4-9 each).
    image : (H, W, 3) array_like, optional
        The image (uint8 RGB, or float in [0, 1]), for ``ev``, ``sse_rgb`` and ``icv``
        (NaN without it).
    tolerance : int, optional
        Boundary tolerance radius; default ``round(0.0025 * diagonal)``.
    image_id : str, optional
        Written to the ``image`` column.

    Returns
    -------
    pandas.DataFrame
        One row per ground truth: ``image``, ``ground_truth`` (its index), then
        :data:`METRIC_COLUMNS` (named as in the benchmark's ``results.csv``).

    Raises
    ------
    ValueError
        Bad label maps or image, shapes that differ, or no ground truth.
    """
    lab = _check_map(labels, "labels")
    if isinstance(ground_truths, np.ndarray) and ground_truths.ndim == 2:
        ground_truths = [ground_truths]
    if ground_truths is None or isinstance(ground_truths, (str, bytes, numbers.Number)) or \
            not hasattr(ground_truths, "__iter__") or (isinstance(ground_truths, np.ndarray) and ground_truths.ndim < 2):
        raise ValueError(f"ground_truths must be an (H, W) label map or a sequence of them, "
                         f"got {type(ground_truths).__name__}")
    ground_truths = list(ground_truths)
    if not ground_truths:
        raise ValueError("at least one ground truth is needed")
    gts = []
    for t, g in enumerate(ground_truths):
        g = _check_map(g, f"ground truth {t}")
        if g.shape != lab.shape:
            raise ValueError(f"ground truth {t} shape {g.shape} does not match the superpixel labels {lab.shape}")
        gts.append(g)
    r = _resolve_tolerance(tolerance, lab.shape)

    # everything that depends on the superpixels only, once
    idx, k = _compact(lab)
    flat = idx.ravel()
    sizes = np.bincount(flat, minlength=k)
    sp_b = boundary_pixels(lab)
    sp_near = _dilate(sp_b, r)
    common = {
        "sse_xy": _sse_xy(lab.shape, flat, k),
        "co": _compactness(lab, flat, k),
        "cd": float(np.count_nonzero(sp_b)) / sp_b.size,
        "sp": k,
    }
    common["sp_size"], common["sp_size_variation"] = _size_stats(sizes)
    if image is not None:
        colour = _Colour(flat, k, _check_image(image, lab.shape))
        common.update(sse_rgb=colour.sse_rgb(), ev=colour.ev(), icv=colour.icv(int(lab.max()) + 1))
    else:
        common.update(sse_rgb=np.nan, ev=np.nan, icv=np.nan)

    rows = []
    for t, g in enumerate(gts):
        g_idx, kg = _compact(g)
        ov = _Overlap.from_indices(flat, k, g_idx.ravel(), kg, gt_slots=int(g.max()) + 1)
        gt_b = boundary_pixels(g)
        rec, pre = _recall_precision(*_boundary_counts(sp_b, sp_near, gt_b, _dilate(gt_b, r)))
        asa = ov.asa()
        row = {"image": image_id, "ground_truth": t, "ue": ov.ue(), "oe": ov.oe(), "rec": rec, "pre": pre,
               "ue_np": ov.ue_np(), "ue_levin": ov.ue_levin(), "asa": asa, "mde": _mde(sp_b, gt_b), **common}
        rows.append(row)
    return pd.DataFrame(rows, columns=["image", "ground_truth", *METRIC_COLUMNS])


def aggregate(df: pd.DataFrame, mode: str = "mean", *, by: str = "image") -> pd.Series:
    """Summarise per-(image, GT) rows of :func:`evaluate` into one value per metric.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of :func:`evaluate` (several images concatenated).
    mode : {"mean", "worst", "best"}
        ``"mean"`` (default, SIN / SpixelFCN protocol): plain mean over **all** (image, GT)
        pairs, so images with more annotations weigh more. ``"worst"`` / ``"best"``: per image
        the worst / best GT (minimum of :data:`HIGHER_IS_BETTER` metrics and maximum of
        :data:`LOWER_IS_BETTER` ones for "worst", the reverse for "best"), then the mean over
        images (Stutz et al. report Rec, EV with the worst GT and UE_NP with the worst GT).
        Metrics that do not depend on the GT (``sp``, ``co``, ``cd``, ...) are averaged.
        Unlike the benchmark's ``mean_min``/``mean_max``, the last image is not dropped.
    by : str
        Column identifying the image.

    Returns
    -------
    pandas.Series
        One value per metric column present in ``df``.
    """
    if mode not in ("mean", "worst", "best"):
        raise ValueError(f"mode must be 'mean', 'worst' or 'best', got {mode!r}")
    if len(df) == 0:
        raise ValueError("cannot aggregate an empty table")
    cols = [c for c in METRIC_COLUMNS if c in df.columns]
    if not cols:
        raise ValueError(f"no metric columns in the table (expected some of {METRIC_COLUMNS})")
    if mode == "mean":
        return df[cols].astype(float).mean()
    if by not in df.columns:
        raise ValueError(f"mode={mode!r} needs the image column {by!r}")
    worst = mode == "worst"
    keys = df[by]
    if keys.isna().any():
        # rows of evaluate() without an image_id: groupby would drop them all (every metric NaN).
        # evaluate() numbers each image's ground truths 0, 1, ...: a 0 starts the next image.
        if "ground_truth" not in df.columns:
            raise ValueError(f"mode={mode!r}: some rows have no {by!r} value and there is no 'ground_truth' "
                             "column to tell the images apart (pass image_id= to evaluate)")
        block = (df["ground_truth"].to_numpy() == 0).cumsum()
        keys = pd.Series([k if not pd.isna(k) else ("<unnamed>", int(b)) for k, b in zip(keys, block)],
                         index=df.index)
    grouped = df.groupby(keys, sort=False)
    per_image = {}
    for c in cols:
        if c in HIGHER_IS_BETTER:
            fn = "min" if worst else "max"
        elif c in LOWER_IS_BETTER:
            fn = "max" if worst else "min"
        else:
            fn = "mean"
        per_image[c] = grouped[c].agg(fn).astype(float)
    return pd.DataFrame(per_image).mean()
