"""Saliency Optimization (Zhu, Liang, Wei, Sun, CVPR 2014) on any superpixel label map.

A faithful port of W. Zhu's released MATLAB code (the copy bundled in
``saisrivatsan/Saliency-Objectness`` that the SIN authors used), step by step as listed in
``../shared/specs/saliency_optimization.md`` section 1:

1. adjacency of superpixels (4-neighbour label changes, unit diagonal);
2. per-superpixel mean R'G'B' of the uint8 image -> CIELAB with MATLAB ``colorspace``
   (:mod:`.colour`), normalised mean position ``[mean(row) / h, mean(col) / w]`` (1-based),
   boundary set (8-pixel band);
3. adaptive parameters (``EstimateDynamicParas``);
4. boundary connectivity from geodesic distances on the clipped colour graph;
5. background probability and weight (``fixHighBdConSP``: weight 1000 where BndCon > 3);
6. background-weighted contrast (min-max, Otsu zeroing) = foreground weight;
7. closed-form minimiser of the quadratic cost (background + foreground + smoothness);
8. min-max normalisation over superpixels, smeared back to pixels.

Not ported: the optional frame removal (``removeframe``) of the original SO demo. The
Saliency-Objectness demo used by the SIN authors switches it off, and with external superpixels
it cannot be used (it changes the image size).

``so_params="code"`` reproduces the released code; ``so_params="paper"`` switches to the values
published in the paper (see :data:`PAPER_PARAMS`; the paper's text was not available to us,
so these values are as commonly cited and unverified). ``so_params`` always means SO's own
constants; superpixel-method parameters belong to the provider (``provider="slic:compactness=20"``
or :func:`sin.get_provider`).

Memory and time grow with the square of the number of superpixels K (dense K x K matrices, peak
about 70 K^2 bytes): K is refused above :data:`MAX_SUPERPIXELS` (4000, about 1.1 GB) before
anything K x K is allocated, unless ``max_superpixels=`` raises the limit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from sin.image import as_uint8_rgb, check_labels

from .colour import matlab_rgb_to_lab
from .graph import (adjacency_matrix, boundary_superpixels, dist_to_weight, geodesic_distances,
                    link_clique, two_ring)

__all__ = ["SOParams", "CODE_PARAMS", "PAPER_PARAMS", "PAPER_UNVERIFIED", "MAX_SUPERPIXELS", "SO_VERSION",
           "SOResult", "resolve_so_params",
           "contiguous_labels", "superpixel_features", "pairwise_distances", "estimate_dynamic_params",
           "boundary_connectivity", "background_probability", "weighted_contrast", "graythresh",
           "smoothness_weights", "optimise_saliency", "saliency_optimization", "saliency_optimization_details",
           "so_saliency", "so_segment_count"]

EPS = np.finfo(np.float64).eps  # MATLAB ``eps`` in the min-max normalisations

#: Largest superpixel count SO accepts by default: it holds about ten dense K x K float64
#: matrices (peak about 70 K^2 bytes: ~1.1 GB at 4000, ~7 GB at 10000).
MAX_SUPERPIXELS = 4000

#: Version of the SO computation: bumped whenever the map for a given image, label map and
#: constants changes (``tests/downstream/saliency_optimization/test_saliency_optimization.py`` pins a
#: golden map to it). Cached SO maps are keyed by it, not by a digest of this source: a comment edit
#: recomputes nothing.
SO_VERSION = 1


@dataclass(frozen=True)
class SOParams:
    """All constants of Saliency Optimization (defaults: the released code's values).

    Attributes
    ----------
    geo_sigma : float or None
        Sigma turning geodesic distances into similarities (``None``: adaptive ``geoSigma``).
    geo_clip : bool
        Subtract ``clipVal`` (mean 2-ring minimum colour distance) from geodesic edge weights.
    geo_link_boundary : bool
        Link all boundary superpixels pairwise in the geodesic graph (``LinkBoundarySPs``).
    bndcon_sigma : float
        ``sigma_bndcon`` of the background probability.
    high_bdcon : float or None
        Superpixels with BndCon above this get background weight ``high_bg_weight``
        (``fixHighBdConSP``); ``None`` switches it off.
    high_bg_weight : float
        Background weight of those superpixels (1000).
    spa_sigma : float
        Spatial sigma of the weighted contrast (positions normalised by h and w separately).
    fg_minmax, fg_otsu : bool
        Min-max normalise the contrast; zero values below its Otsu threshold.
    nei_sigma : float or None
        Colour sigma of the smoothness weights (``None``: adaptive ``neiSigma``).
    smooth_two_ring, smooth_link_boundary : bool
        Smoothness links over the 2-ring neighbourhood / all boundary pairs (else direct
        neighbours only).
    mu : float
        Constant added to the smoothness weight of direct neighbours.
    bg_lambda : float
        Global scale of the background term (``bgLambda``).
    cutoff : float or None
        Gaussian weights are set to 0 beyond ``cutoff * sigma`` (``Dist2WeightMatrix``);
        ``None`` keeps full Gaussians.
    boundary_thickness : int
        Width in pixels of the border band defining boundary superpixels.
    top_rate : float
        Fraction of the largest neighbour colour distances averaged into ``meanTop``.
    """

    geo_sigma: float | None = None
    geo_clip: bool = True
    geo_link_boundary: bool = True
    bndcon_sigma: float = 1.0
    high_bdcon: float | None = 3.0
    high_bg_weight: float = 1000.0
    spa_sigma: float = 0.4
    fg_minmax: bool = True
    fg_otsu: bool = True
    nei_sigma: float | None = None
    smooth_two_ring: bool = True
    smooth_link_boundary: bool = True
    mu: float = 0.1
    bg_lambda: float = 5.0
    cutoff: float | None = 3.0
    boundary_thickness: int = 8
    top_rate: float = 0.01


#: The released MATLAB code (``demo.m`` + ``Funcs``), spec table "code value".
CODE_PARAMS = SOParams()

#: The published values (spec section 2, "paper" column). The paper's text was not available
#: (all values as commonly cited, unverified); see :data:`PAPER_UNVERIFIED` for our own readings.
PAPER_PARAMS = SOParams(
    geo_sigma=10.0,        # sigma_clr = 10 for the geodesic -> similarity mapping
    geo_clip=False,        # edge weight is d_app, no clipping
    spa_sigma=0.25,        # sigma_spa
    nei_sigma=10.0,        # sigma_clr = 10 in w_ij
    bg_lambda=1.0,         # no bgLambda in the paper
    high_bdcon=None,       # no fixHighBdConSP
    fg_otsu=False,         # no Otsu post-processing of the foreground weight
    smooth_two_ring=False,  # smoothness over adjacent superpixels only
    smooth_link_boundary=False,
    cutoff=None,           # no 3-sigma cut-off in the formulas
)

#: Paper-mode settings that are our reading, not a published number: the contrast is still
#: min-max normalised (without it, raw Lab contrasts of order 10^2..10^3 swamp the [0, 1]
#: background weights); boundary superpixels stay linked in the geodesic graph; the smoothness
#: sum runs over unordered pairs (i < j) as in the code; mu = 0.1 applies to direct neighbours.
PAPER_UNVERIFIED = ("fg_minmax", "geo_link_boundary", "mu", "pair convention of the smoothness sum")


def resolve_so_params(so_params) -> SOParams:
    """``"code"``, ``"paper"``, an :class:`SOParams`, or a dict of overrides of the code values."""
    if isinstance(so_params, SOParams):
        return so_params
    if isinstance(so_params, str):
        if so_params == "code":
            return CODE_PARAMS
        if so_params == "paper":
            return PAPER_PARAMS
        raise ValueError(f"so_params must be 'code', 'paper', an SOParams or a dict, got {so_params!r}")
    if isinstance(so_params, dict):
        names = {f.name for f in dataclasses.fields(SOParams)}
        unknown = set(so_params) - names
        if unknown:
            raise ValueError(f"unknown SO parameter(s) {sorted(unknown)}; known: {sorted(names)}")
        return dataclasses.replace(CODE_PARAMS, **so_params)
    raise ValueError(f"so_params must be 'code', 'paper', an SOParams or a dict, got {type(so_params).__name__}")


def _check_max_superpixels(max_superpixels) -> int:
    if isinstance(max_superpixels, bool) or not isinstance(max_superpixels, (int, np.integer)) \
            or max_superpixels < 2:
        raise ValueError(f"max_superpixels must be an integer >= 2, got {max_superpixels!r}")
    return int(max_superpixels)


# --------------------------------------------------------------------------------------------
# labels and features


def contiguous_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relabel non-negative ids to contiguous ``0..K-1`` keeping their order; return ``(labels, counts)``.

    Label maps with gaps (ids that do not occur) or arbitrary ids are accepted: SO only needs a
    partition, and the result does not depend on which id a superpixel has.
    """
    top = int(labels.max())
    if top < 4 * labels.size + 16:  # bincount + lookup table: O(pixels), no sort
        labels = labels.astype(np.intp, copy=False)
        counts = np.bincount(labels.ravel(), minlength=top + 1)
        present = counts > 0
        if present.all():
            return labels, counts
        lut = np.cumsum(present) - 1
        return lut[labels], counts[present]
    _, inv, counts = np.unique(labels.ravel(), return_inverse=True, return_counts=True)
    return inv.reshape(labels.shape), counts


def superpixel_features(image_u8: np.ndarray, labels: np.ndarray, counts: np.ndarray):
    """Mean R'G'B' (0..255), its CIELAB, and normalised mean position of every superpixel.

    Parameters
    ----------
    image_u8 : (H, W, 3) uint8
    labels : (H, W) int, contiguous ``0..K-1``
    counts : (K,) int, pixels per superpixel

    Returns
    -------
    mean_rgb : (K, 3) float64
        Exact means of the uint8 values (MATLAB ``mean`` of uint8 returns double).
    lab : (K, 3) float64
        ``colorspace('Lab<-', mean_rgb / 255)``: Lab of the mean colour, not mean of Lab.
    pos : (K, 2) float64
        ``[mean(row) / h, mean(col) / w]`` with 1-based row/column indices (MATLAB).
    """
    h, w = labels.shape
    k = counts.size
    flat = labels.ravel()
    pix = image_u8.reshape(-1, 3)
    sums = np.stack([np.bincount(flat, weights=pix[:, c], minlength=k) for c in range(3)], axis=1)
    mean_rgb = sums / counts[:, None]
    # 1-based row / column index of every pixel in ravel (row-major) order, summed per label
    row_sum = np.bincount(flat, weights=np.repeat(np.arange(1, h + 1, dtype=np.float64), w), minlength=k)
    col_sum = np.bincount(flat, weights=np.tile(np.arange(1, w + 1, dtype=np.float64), h), minlength=k)
    pos = np.stack([row_sum / counts / h, col_sum / counts / w], axis=1)
    lab = matlab_rgb_to_lab(mean_rgb / 255.0)
    return mean_rgb, lab, pos


def pairwise_distances(x: np.ndarray) -> np.ndarray:
    """``GetDistanceMatrix``: Euclidean distances between the rows of ``x`` (exact zeros on the diagonal)."""
    diff = x[:, None, :] - x[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


# --------------------------------------------------------------------------------------------
# the SO steps


def _min_neighbour_distance(neigh: np.ndarray, dist: np.ndarray) -> np.ndarray:
    d = np.where(neigh > 0, dist, np.inf)
    np.fill_diagonal(d, np.inf)  # a superpixel is not its own neighbour here
    return d.min(axis=1)


def estimate_dynamic_params(adj: np.ndarray, col_dist: np.ndarray, top_rate: float = 0.01,
                            ring2: np.ndarray | None = None) -> dict:
    """``EstimateDynamicParas`` / ``GetMeanMinAndMeanTop``.

    Returns a dict with ``mean_min1`` (mean over superpixels of the smallest colour distance
    to a direct neighbour), ``mean_top`` (mean of the ``round(top_rate * E)`` largest distances
    over the E adjacent pairs; NaN when that count is 0, as MATLAB's mean of nothing),
    ``mean_min2`` (as ``mean_min1`` over the 2-ring), ``clip = mean_min2``,
    ``geo_sigma = max(5, min(10, 3 mean_min1, mean_top / 10))`` and
    ``nei_sigma = min(3 mean_min1, 0.2 mean_top, 20)``, where ``min`` ignores NaN (MATLAB
    ``min([...])`` does, so with a NaN ``mean_top`` the other terms decide).

    Needs at least two superpixels (every superpixel then has a neighbour). ``ring2`` is
    :func:`~.graph.two_ring` of ``adj`` if already computed.
    """
    k = adj.shape[0]
    if k < 2:
        raise ValueError("dynamic parameters need at least 2 superpixels")
    mean_min1 = float(_min_neighbour_distance(adj, col_dist).mean())
    pair_d = col_dist[np.tril(adj, -1) > 0]
    n_top = int(np.floor(top_rate * pair_d.size + 0.5))  # MATLAB round: half away from zero
    if n_top > 0:
        mean_top = float(np.sort(pair_d)[::-1][:n_top].mean())
    else:
        mean_top = float("nan")
    ring2 = two_ring(adj) if ring2 is None else ring2
    mean_min2 = float(_min_neighbour_distance(ring2, col_dist).mean())
    geo_sigma = max(float(np.nanmin([10.0, 3.0 * mean_min1, mean_top / 10.0])), 5.0)
    nei_sigma = float(np.nanmin([3.0 * mean_min1, 0.2 * mean_top, 20.0]))
    return {"mean_min1": mean_min1, "mean_top": mean_top, "mean_min2": mean_min2,
            "clip": mean_min2, "geo_sigma": geo_sigma, "nei_sigma": nei_sigma}


def boundary_connectivity(adj: np.ndarray, col_dist: np.ndarray, boundary: np.ndarray, clip: float,
                          geo_sigma: float, *, link_boundary: bool = True, cutoff: float | None = 3.0):
    """``BoundaryConnectivity``: ``(bdcon, len_bnd, area)`` per superpixel.

    Geodesic distances run over the adjacency graph (plus the boundary clique when
    ``link_boundary``) with edge lengths ``max(0, colour distance - clip)``;
    ``S = exp(-d_geo^2 / (2 geo_sigma^2))`` (0 beyond ``cutoff * geo_sigma``),
    ``area = sum_j S_ij``, ``len_bnd = sum_{j in boundary} S_ij``, ``bdcon = len_bnd / sqrt(area)``.
    """
    graph = link_clique(adj, boundary) if link_boundary else adj
    weights = np.maximum(0.0, col_dist - clip)
    # distances beyond the cut-off only ever give weight 0: let Dijkstra stop a bit past it
    limit = None if cutoff is None else cutoff * geo_sigma * (1.0 + 1e-9)
    geo = geodesic_distances(graph, weights, limit=limit)
    s = dist_to_weight(geo, geo_sigma, cutoff)
    len_bnd = s[:, boundary].sum(axis=1)
    area = s.sum(axis=1)
    return len_bnd / np.sqrt(area), len_bnd, area


def background_probability(bdcon: np.ndarray, sigma: float = 1.0, high_bdcon: float | None = 3.0,
                           high_weight: float = 1000.0):
    """``EstimateBgProb``: ``bg_prob = 1 - exp(-bdcon^2 / (2 sigma^2))`` and the background weight.

    The weight equals ``bg_prob`` except ``high_weight`` where ``bdcon > high_bdcon``.
    """
    bg_prob = 1.0 - np.exp(-(bdcon ** 2) / (2.0 * sigma * sigma))
    bg_weight = bg_prob.copy()
    if high_bdcon is not None:
        bg_weight[bdcon > high_bdcon] = high_weight
    return bg_prob, bg_weight


def graythresh(values: np.ndarray) -> float:
    """MATLAB ``graythresh`` (Otsu) of doubles in [0, 1]: a level in [0, 1].

    Values are quantised like ``im2uint8`` (``round(255 x)``, clipped), histogrammed into 256
    bins, and the between-class variance maximised; ties are averaged (MATLAB takes the mean
    of all maximising bins) and the level is ``(bin - 1) / 255`` in MATLAB's 1-based bins.
    A constant input (no finite maximum) gives 0.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return 0.0
    q = np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.intp)
    p = np.bincount(q, minlength=256) / q.size
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(1, 257))
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_b2 = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    finite = np.isfinite(sigma_b2)
    if not finite.any():
        return 0.0
    best = np.max(sigma_b2[finite])  # MATLAB max skips NaN
    idx = np.mean(np.flatnonzero(sigma_b2 == best)) + 1.0
    return float((idx - 1.0) / 255.0)


def weighted_contrast(col_dist: np.ndarray, pos_dist: np.ndarray, bg_prob: np.ndarray, *,
                      spa_sigma: float = 0.4, cutoff: float | None = 3.0, minmax: bool = True,
                      otsu: bool = True) -> np.ndarray:
    """``CalWeightedContrast``: ``wCtr_i = sum_j d_col(i,j) w_spa(i,j) bg_prob_j``, post-processed.

    With ``minmax`` the contrast is scaled by ``(x - min) / (max - min + eps)``; with ``otsu``
    values below the :func:`graythresh` level are set to 0.
    """
    w_spa = dist_to_weight(pos_dist, spa_sigma, cutoff)
    wctr = (col_dist * w_spa) @ bg_prob
    if minmax:
        wctr = (wctr - wctr.min()) / (wctr.max() - wctr.min() + EPS)
    if otsu:
        wctr = np.where(wctr < graythresh(wctr), 0.0, wctr)
    return wctr


def smoothness_weights(adj: np.ndarray, boundary: np.ndarray, col_dist: np.ndarray, nei_sigma: float, *,
                       mu: float = 0.1, two_ring_links: bool = True, link_boundary: bool = True,
                       cutoff: float | None = 3.0, ring2: np.ndarray | None = None) -> np.ndarray:
    """Smoothness weights ``W = Wn + mu A`` of ``SaliencyOptimization``.

    ``Wn_ij = exp(-d_col^2 / (2 nei_sigma^2))`` on the link set (2-ring plus all boundary pairs
    in the code; direct neighbours otherwise), 0 beyond ``cutoff * nei_sigma`` and off the link
    set. ``A`` is the direct adjacency with unit diagonal; diagonal entries of W cancel in the
    Laplacian ``D - W``.
    """
    if two_ring_links:
        links = two_ring(adj) if ring2 is None else ring2.copy()
    else:
        links = adj.copy()
    if link_boundary:
        links[np.ix_(boundary, boundary)] = 1.0
    d = np.where(links > 0, col_dist, np.inf)
    return dist_to_weight(d, nei_sigma, cutoff) + mu * adj


def optimise_saliency(weights: np.ndarray, bg_weight: np.ndarray, fg_weight: np.ndarray,
                      bg_lambda: float = 5.0) -> np.ndarray:
    """Minimiser of ``sum_i l bg_i s_i^2 + sum_i fg_i (s_i - 1)^2 + sum_{i<j} W_ij (s_i - s_j)^2``.

    Setting the gradient to zero gives ``(D - W + diag(l bg) + diag(fg)) s = fg`` with
    ``D = diag(sum_j W_ij)``, solved directly (K x K, dense). If the system is singular (no
    data term at all, e.g. every weight 0) the least-squares solution of minimum norm is used,
    where MATLAB's backslash would return Inf/NaN with a warning.
    """
    w = np.asarray(weights, dtype=np.float64)
    system = np.diag(w.sum(axis=0)) - w + np.diag(bg_lambda * bg_weight + fg_weight)
    try:
        return np.linalg.solve(system, fg_weight)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(system, fg_weight, rcond=None)[0]


# --------------------------------------------------------------------------------------------
# the pipeline


@dataclass
class SOResult:
    """Every intermediate of one SO run (for inspection, figures and tests)."""

    saliency_map: np.ndarray          # (H, W) float32 in [0, 1]
    labels: np.ndarray                # (H, W) contiguous 0..K-1 actually used
    saliency: np.ndarray              # (K,) optimised s before normalisation
    so_params: SOParams
    mean_rgb: np.ndarray = field(repr=False, default=None)
    lab: np.ndarray = field(repr=False, default=None)
    pos: np.ndarray = field(repr=False, default=None)
    adjacency: np.ndarray = field(repr=False, default=None)
    boundary: np.ndarray = field(repr=False, default=None)
    dynamic: dict = field(default_factory=dict)
    bdcon: np.ndarray = field(repr=False, default=None)
    bg_prob: np.ndarray = field(repr=False, default=None)
    bg_weight: np.ndarray = field(repr=False, default=None)
    fg_weight: np.ndarray = field(repr=False, default=None)

    @property
    def n_superpixels(self) -> int:
        return int(self.saliency.size)


def _prepare(image, labels, channel_axis, max_superpixels=MAX_SUPERPIXELS):
    img = as_uint8_rgb(image, channel_axis=channel_axis)  # the original works on the uint8 image
    lab_map = check_labels(labels, img.shape[:2])
    lab_map, counts = contiguous_labels(lab_map)  # O(pixels): K is known before anything K x K
    k = counts.size
    if k < 2:
        # one region has no contrast and no neighbours: SO is undefined (MATLAB's
        # GetMeanMinAndMeanTop fails on the empty neighbour set). Refused rather than
        # returning an all-zero map that looks like a result.
        raise ValueError(f"Saliency Optimization needs at least 2 superpixels, the label map has {k} "
                         f"(on a {lab_map.shape[0]}x{lab_map.shape[1]} image)")
    if k > max_superpixels:
        raise ValueError(f"{k} superpixels exceed the Saliency Optimization limit of {max_superpixels}: it "
                         f"needs about 70 K^2 bytes (~{70 * k * k / 2**30:.1f} GiB here); use fewer "
                         "superpixels or raise max_superpixels")
    return img, lab_map, counts


def saliency_optimization_details(image, labels, *, so_params="code", channel_axis: int | None = -1,
                                  max_superpixels: int = MAX_SUPERPIXELS) -> SOResult:
    """Like :func:`saliency_optimization` but returning every intermediate (:class:`SOResult`)."""
    p = resolve_so_params(so_params)
    img, lab_map, counts = _prepare(image, labels, channel_axis, _check_max_superpixels(max_superpixels))
    k = counts.size
    mean_rgb, lab, pos = superpixel_features(img, lab_map, counts)
    adj = adjacency_matrix(lab_map, k)
    boundary = boundary_superpixels(lab_map, p.boundary_thickness)
    col_dist = pairwise_distances(lab)
    pos_dist = pairwise_distances(pos)
    ring2 = two_ring(adj)
    dyn = estimate_dynamic_params(adj, col_dist, p.top_rate, ring2=ring2)
    geo_sigma = dyn["geo_sigma"] if p.geo_sigma is None else float(p.geo_sigma)
    nei_sigma = dyn["nei_sigma"] if p.nei_sigma is None else float(p.nei_sigma)
    clip = dyn["clip"] if p.geo_clip else 0.0
    dyn = {**dyn, "used_geo_sigma": geo_sigma, "used_nei_sigma": nei_sigma, "used_clip": clip}

    bdcon, _, _ = boundary_connectivity(adj, col_dist, boundary, clip, geo_sigma,
                                        link_boundary=p.geo_link_boundary, cutoff=p.cutoff)
    bg_prob, bg_weight = background_probability(bdcon, p.bndcon_sigma, p.high_bdcon, p.high_bg_weight)
    fg_weight = weighted_contrast(col_dist, pos_dist, bg_prob, spa_sigma=p.spa_sigma, cutoff=p.cutoff,
                                  minmax=p.fg_minmax, otsu=p.fg_otsu)
    w = smoothness_weights(adj, boundary, col_dist, nei_sigma, mu=p.mu, two_ring_links=p.smooth_two_ring,
                           link_boundary=p.smooth_link_boundary, cutoff=p.cutoff, ring2=ring2)
    s = optimise_saliency(w, bg_weight, fg_weight, p.bg_lambda)
    # CreateImageFromSPs(doNormalize=true): min-max over superpixels with MATLAB's eps
    s_norm = (s - s.min()) / (s.max() - s.min() + EPS)
    smap = np.clip(s_norm, 0.0, 1.0).astype(np.float32)[lab_map]
    return SOResult(smap, lab_map, s, p, mean_rgb, lab, pos, adj, boundary, dyn, bdcon, bg_prob,
                    bg_weight, fg_weight)


def saliency_optimization(image, labels, *, so_params="code", channel_axis: int | None = -1,
                          max_superpixels: int = MAX_SUPERPIXELS) -> np.ndarray:
    """Saliency Optimization saliency map of ``image`` over the superpixels ``labels``.

    Parameters
    ----------
    image : array_like
        ``(H, W, 3)`` RGB (or grayscale / RGBA, see :func:`sin.image.as_float_rgb`), uint8 or
        float in [0, 1]. As in the original, features are computed on the uint8 image (float
        input is rounded to 8 bit first).
    labels : (H, W) integer array_like
        Any superpixel partition of the image. Ids need not be contiguous: gaps and arbitrary
        non-negative ids are relabelled to ``0..K-1`` (the result does not depend on the ids).
        Superpixels need not be connected. At least 2 and at most ``max_superpixels``
        superpixels.
    so_params : {"code", "paper"}, SOParams or dict, optional
        SO's own constants. ``"code"`` (default): the released code's; ``"paper"``: the
        published ones (:data:`PAPER_PARAMS`); a dict overrides single code values.
    channel_axis : int or None, optional
        Axis of the colour channels of ``image``.
    max_superpixels : int, optional
        Refuse label maps with more superpixels (default :data:`MAX_SUPERPIXELS` = 4000). SO
        holds dense K x K matrices: peak memory is about 70 K^2 bytes (1.1 GB at K = 4000) and
        time grows like K^2 to K^3; the check runs before anything K x K is allocated.

    Returns
    -------
    (H, W) float32 ndarray in [0, 1]
        Per-superpixel optimised saliency, min-max normalised over superpixels.

    Raises
    ------
    ValueError
        Bad image (NaN, wrong shape/dtype, empty, ...), labels that are not a non-negative
        integer map of the image's height and width, a single superpixel (SO has no contrast
        to work with: refused instead of returning an all-zero map), more than
        ``max_superpixels`` superpixels, or unknown ``so_params``.
    """
    return saliency_optimization_details(image, labels, so_params=so_params, channel_axis=channel_axis,
                                         max_superpixels=max_superpixels).saliency_map


def so_segment_count(height: int, width: int, pixels_per_superpixel: int = 600) -> int:
    """The SO demo's superpixel count ``round(h * w / pixNumInSP)`` (600 -> ~200 on 300 x 400)."""
    if pixels_per_superpixel <= 0:
        raise ValueError(f"pixels_per_superpixel must be positive, got {pixels_per_superpixel}")
    return max(1, int(np.floor(height * width / pixels_per_superpixel + 0.5)))


def so_saliency(image, provider="slic", n_segments: int | None = None, *, preset="sin_paper", row: int | None = None,
                so_params=None, channel_axis: int | None = -1, return_labels: bool = False,
                max_superpixels: int = MAX_SUPERPIXELS, **provider_params):
    """Superpixels from any provider, then :func:`saliency_optimization`, by default in the SIN
    paper's setting.

    ``so_saliency(image, "slic")`` gives the map of the SIN paper's Table 2 protocol (preset
    ``"sin_paper"``, :mod:`.protocol`): ``round(h * w / 600)`` superpixels (the 200 row; ``row=400``
    for the other), SLIC with the SO demo's compactness 20, the released code's SO constants.
    Anything given explicitly (``n_segments``, ``so_params``, a provider's ``compactness``) wins
    over the preset; ``preset=None`` switches it off.

    Parameters
    ----------
    image : array_like
        RGB image (uint8 or float in [0, 1]).
    provider : str, callable or Provider, optional
        Anything :func:`sin.get_provider` accepts: a registered name (``"slic"``, ``"sin"``,
        ...), a name with parameters (``"slic:compactness=20"``), ``"package.module:function"``,
        your own function ``f(image, n_segments, **params) -> (H, W) integer labels``, or a
        :class:`sin.Provider`. Its output is checked against the label contract (an error
        names the provider).
    n_segments : int, optional
        Requested number of superpixels; default: the preset's count rule for ``row`` (required
        without a preset). At most ``max_superpixels``.
    preset : str, SOProtocol or None, optional
        The protocol (:data:`.protocol.PRESETS`; default ``"sin_paper"``).
    row : int, optional
        The preset's table row (200 or 400 for ``"sin_paper"``; default 200).
    so_params : optional
        SO constants (see :func:`saliency_optimization`); default: the preset's (``"code"``).
    return_labels : bool, optional
        Also return the label map.
    max_superpixels : int, optional
        See :func:`saliency_optimization`; checked against ``n_segments`` before the provider
        runs and against the count it returns.
    **provider_params
        Provider parameters, same as ``get_provider(provider, **provider_params)`` (e.g.
        ``compactness=10`` for ``"slic"``).

    Raises
    ------
    ValueError
        Unknown provider, provider parameter or preset, bad ``n_segments`` or ``row``, no
        ``n_segments`` without a preset, labels that break the contract, a provider that returned
        a single superpixel (named, with the request: SO is undefined on one region), too many
        superpixels, or a bad image.
    """
    from sin.image import as_uint8_rgb, check_n_segments
    from sin.providers import get_provider

    from .protocol import get_preset

    protocol = get_preset(preset)
    if so_params is None:
        so_params = protocol.so_params if protocol is not None else "code"
    resolve_so_params(so_params)  # fail before the (possibly slow) provider runs
    limit = _check_max_superpixels(max_superpixels)
    if n_segments is None:
        if protocol is None:
            raise ValueError("so_saliency: pass n_segments, or a preset whose count rule gives it")
        h, w = as_uint8_rgb(image, channel_axis=channel_axis).shape[:2]
        n_segments = protocol.n_segments(h, w, row)
    elif row is not None:
        raise ValueError("so_saliency: give n_segments or row, not both")
    k = check_n_segments(n_segments)
    if k > limit:
        raise ValueError(f"n_segments={k} exceeds the Saliency Optimization limit of {limit} superpixels "
                         "(dense K x K matrices, about 70 K^2 bytes); raise max_superpixels to allow it")
    if "params" in provider_params:
        prov = get_provider(provider)
        if "params" not in prov.defaults and not prov.spec.accepts_any:
            raise ValueError("so_saliency: SO constants are passed as so_params= (params= was renamed); "
                             f"provider parameters go to the provider ({prov.name!r})")
    prov = protocol.provider(provider, **provider_params) if protocol is not None else \
        get_provider(provider, **provider_params)
    labels = prov(image, k, channel_axis=channel_axis)
    n = int(labels.max()) + 1 if labels.size else 0
    if n < 2:
        raise ValueError(f"provider {prov.spec_string()!r} returned {n} superpixel(s) for n_segments={k} on a "
                         f"{labels.shape[0]}x{labels.shape[1]} image; Saliency Optimization needs at least 2")
    smap = saliency_optimization(image, labels, so_params=so_params, channel_axis=channel_axis,
                                 max_superpixels=limit)
    return (smap, labels) if return_labels else smap
