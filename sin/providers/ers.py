"""``ers``: Entropy Rate Superpixels (Liu, Tuzel, Ramalingam & Chellappa, CVPR 2011).

A numba re-implementation of M.-Y. Liu's ``lib_ers`` as used by the superpixel benchmark of
Stutz et al. (``ers_opencv.cpp``, ``MERCLazyGreedy.cpp``, ``MSubmodularHeap.h``; spec:
``shared/specs/ers_snic.md`` part A):

1. Graph: pixels, 4-neighbour edges (``connectivity=8`` adds the two diagonals), visited in the
   original order (per pixel, row-major: right, down[, down-right, up-right]).
2. Edge weight ``w = exp(-d^2 / (2 sigma_eff^2))`` with ``d`` the L1 distance of the 8-bit RGB
   values (diagonals: ``sqrt(2) d``) and ``sigma_eff = sigma * 3`` (the wrapper multiplies by the
   channel count). Every vertex keeps a self-loop ``loop_u = sum of its incident weights`` minus
   the weights of its selected edges; all weights are divided by ``w_T = sum_u loop_u``.
3. Objective ``F(A) = H(A) + lambda_eff B(A)`` over forests ``A``: the entropy rate of the random
   walk on the graph ``(V, A + self-loops)`` and the balancing term ``B(A) = H(Z_A) - N_A``
   (bits), with ``lambda_eff = (lambda K) max_e dH_e / max_e dB_e`` on the initial graph.
4. Greedy: a max-heap of edge gains with lazy re-evaluation of the root (valid because both terms
   have diminishing returns), union-find, until ``K`` components remain.

Every merge joins two components through a graph edge, so each superpixel is connected in the
graph: 4-connected by construction with the default 4-neighbour graph (with ``connectivity=8``
regions can touch only diagonally, and 4-connectivity is then enforced afterwards).

Differences from ``lib_ers``:

* The heap and its tie-breaking follow ``MHeap``/``MSubmodularHeap`` (1-based binary max-heap,
  strict comparisons, bottom-up build in edge order), and union-find keeps the original's
  representative choice (union by size, ties to the second root), so labels are numbered like
  ``DisjointSetToLabel`` (by representative pixel index). Path compression is added (it does not
  change representatives).
* ``lib_ers`` drops the heap root whenever its re-evaluated gain becomes exactly 0 -- meant for
  edges that close a cycle, but it would also drop a valid edge whose gain underflows to 0
  (possible only with ``lambda = 0`` or a final merge of two equal halves); then its heap can run
  empty and (undefined behaviour in C++) fewer merges happen. Here only cycle edges are dropped,
  so the result always has exactly ``min(K, H * W)`` superpixels. For every non-degenerate input
  both rules do the same.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..connectivity import enforce_connectivity, relabel_sequential
from ..image import as_float_rgb, as_uint8_rgb, check_n_segments
from .registry import register_provider

__all__ = ["balancing_gain", "entropy_rate_gain", "ers", "ers_superpixels", "grid_edges"]


@njit(cache=True)
def _er_gain(w, ca, cb):
    # 0 log 0 and logs of round-off negatives give NaN -> 0, as in MERCFunctions::ComputeERGain
    er = ((w + ca) * np.log(w + ca) + (w + cb) * np.log(w + cb)
          - ca * np.log(ca) - cb * np.log(cb) - 2.0 * w * np.log(w)) / np.log(2.0)
    if np.isnan(er):
        return 0.0
    return er


@njit(cache=True)
def _b_gain(n_vertices, sa, sb):
    pa = sa / n_vertices
    pb = sb / n_vertices
    return (-(pa + pb) * np.log(pa + pb) + pa * np.log(pa) + pb * np.log(pb)) / np.log(2.0) + 1.0


def entropy_rate_gain(w: float, loop_a: float, loop_b: float) -> float:
    """Gain (bits) in the entropy rate of adding an edge of normalised weight ``w``.

    ``loop_a``, ``loop_b`` are the endpoints' self-loop weights *before* the edge is added (the
    formula uses ``c = loop - w``, the self-loops after adding). NaN (``0 log 0``) gives 0.
    """
    return float(_er_gain(float(w), float(loop_a) - float(w), float(loop_b) - float(w)))


def balancing_gain(n_vertices: int, size_a: int, size_b: int) -> float:
    """Gain of the balancing term ``B = H(Z) - N_A`` (bits) when two clusters merge."""
    return float(_b_gain(float(n_vertices), float(size_a), float(size_b)))


def grid_edges(image_u8: np.ndarray, connectivity: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ERS's pixel graph: ``(a, b, d)`` with ``d`` the L1 RGB distance (``sqrt(2) d`` on diagonals).

    Edges are listed in ``lib_ers`` order: for each pixel in row-major order its right, down and
    (``connectivity=8``) down-right and up-right neighbours.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    img = image_u8.astype(np.float64)
    h, w = img.shape[:2]
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    n_slots = 2 if connectivity == 4 else 4
    a = np.broadcast_to(idx[:, :, None], (h, w, n_slots)).copy()
    b = np.full((h, w, n_slots), -1, dtype=np.int64)
    d = np.zeros((h, w, n_slots))
    # slot 0: right, slot 1: down, slot 2: down-right, slot 3: up-right
    b[:, :-1, 0] = idx[:, 1:]
    d[:, :-1, 0] = np.abs(img[:, :-1] - img[:, 1:]).sum(-1)
    b[:-1, :, 1] = idx[1:, :]
    d[:-1, :, 1] = np.abs(img[:-1, :] - img[1:, :]).sum(-1)
    if connectivity == 8:
        b[:-1, :-1, 2] = idx[1:, 1:]
        d[:-1, :-1, 2] = np.sqrt(2.0) * np.abs(img[:-1, :-1] - img[1:, 1:]).sum(-1)
        b[1:, :-1, 3] = idx[:-1, 1:]
        d[1:, :-1, 3] = np.sqrt(2.0) * np.abs(img[1:, :-1] - img[:-1, 1:]).sum(-1)
    keep = (b >= 0).ravel()
    return a.ravel()[keep], b.ravel()[keep], d.ravel()[keep]


# ---------------------------------------------------------------------------------------------
# numba core
# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def _max_heapify(hg, he, size, i):
    # MHeap::MaxHeapify (1-based, strict ">" comparisons), iterative; the gains live in the heap
    # (hg) next to the edge ids (he) so that sifting touches contiguous memory only
    g = hg[i]
    e = he[i]
    while True:
        left = 2 * i
        if left > size:
            break
        right = left + 1
        largest = left if hg[left] > g else -1
        if right <= size and hg[right] > (hg[left] if largest == left else g):
            largest = right
        if largest < 0:
            break
        hg[i] = hg[largest]
        he[i] = he[largest]
        i = largest
    hg[i] = g
    he[i] = e


@njit(cache=True)
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving (representatives unchanged)
        x = parent[x]
    return x


@njit(cache=True)
def _ers_core(n_vertices, ea, eb, ew, n_clusters, lam):
    """Lazy greedy on the graph; returns (representative per vertex, lambda_eff, n_merges)."""
    n_edges = ea.shape[0]
    loop = np.zeros(n_vertices)
    for e in range(n_edges):
        loop[ea[e]] += ew[e]
        loop[eb[e]] += ew[e]
    w_total = 0.0
    for v in range(n_vertices):
        w_total += loop[v]
    w = ew.copy()
    if w_total > 0.0:
        for e in range(n_edges):
            w[e] /= w_total
        for v in range(n_vertices):
            loop[v] /= w_total
    parent = np.arange(n_vertices)
    csize = np.ones(n_vertices, dtype=np.int64)
    # initial gains and the balancing weight (maxima over the initial graph only)
    er = np.empty(n_edges)
    max_er = 0.0
    max_b = 1e-20
    b0 = _b_gain(float(n_vertices), 1.0, 1.0)  # all clusters are singletons
    for e in range(n_edges):
        er[e] = _er_gain(w[e], loop[ea[e]] - w[e], loop[eb[e]] - w[e])
        max_er = max(max_er, er[e])
        max_b = max(max_b, b0)
    balancing = lam * max_er / abs(max_b)
    # 1-based max-heap of (gain, edge id), built bottom-up in edge order (MHeap::BuildMaxHeap)
    hg = np.empty(n_edges + 1)
    he = np.empty(n_edges + 1, dtype=np.int64)
    hg[0] = 0.0
    he[0] = -1
    for e in range(n_edges):
        hg[e + 1] = er[e] + balancing * b0
        he[e + 1] = e
    size = n_edges
    for i in range(size // 2, 0, -1):
        _max_heapify(hg, he, size, i)
    cc = n_vertices
    merges = 0
    while cc > n_clusters and size > 0:
        e = he[1]
        hg[1] = hg[size]
        he[1] = he[size]
        size -= 1
        _max_heapify(hg, he, size, 1)
        ra = _find(parent, ea[e])
        rb = _find(parent, eb[e])
        if ra != rb:
            # MERCDisjointSet::Join: the larger cluster's representative survives (ties: rb)
            if csize[rb] < csize[ra]:
                parent[rb] = ra
                csize[ra] += csize[rb]
            else:
                parent[ra] = rb
                csize[rb] += csize[ra]
            cc -= 1
            merges += 1
            loop[ea[e]] -= w[e]
            loop[eb[e]] -= w[e]
        # lazy re-evaluation of the root (MSubmodularHeap::EasySubmodularMaxHeapifyTree)
        while size > 0:
            top = he[1]
            old = hg[1]
            ra = _find(parent, ea[top])
            rb = _find(parent, eb[top])
            if ra == rb:
                new = 0.0
            else:
                new = (_er_gain(w[top], loop[ea[top]] - w[top], loop[eb[top]] - w[top])
                       + balancing * _b_gain(float(n_vertices), float(csize[ra]), float(csize[rb])))
            if new == old:
                break
            if ra == rb:  # closes a cycle: never useful again (see module notes)
                hg[1] = hg[size]
                he[1] = he[size]
                size -= 1
            else:
                hg[1] = new
            _max_heapify(hg, he, size, 1)
    roots = np.empty(n_vertices, dtype=np.int64)
    for v in range(n_vertices):
        roots[v] = _find(parent, v)
    return roots, balancing, merges


def ers(image, n_segments: int = 600, *, lambda_: float = 0.5, sigma: float = 5.0, connectivity: int = 4,
        channel_axis: int | None = -1, return_info: bool = False):
    """Entropy Rate Superpixels of an RGB (or grey) image.

    Parameters
    ----------
    image : array_like
        ``(H, W, 3)`` RGB (or grey / RGBA, see :func:`sin.image.as_float_rgb`), uint8 or float in
        [0, 1] (float images are rounded to 8 bits, as the original works on 8-bit RGB).
    n_segments : int, optional
        Number of superpixels ``K``; exactly ``min(K, H * W)`` are returned (4-neighbour graph).
    lambda_ : float, optional
        Balancing weight ``lambda`` (>= 0) of the benchmark wrapper, which passes ``lambda * K``
        to ``lib_ers``. Default 0.5 (the benchmark's "best" BSDS500 setting and the mex default).
    sigma : float, optional
        Gaussian kernel width per channel (> 0); ``sigma_eff = 3 sigma`` on the L1 RGB distance.
        Default 5 (benchmark "best" BSDS500).
    connectivity : {4, 8}, optional
        Pixel graph. 4 (default) as the benchmark CLI; 8 as the original MATLAB mex. With 8,
        regions can touch only diagonally: they are then made 4-connected with
        :func:`sin.connectivity.enforce_connectivity` (which may change the count).
    channel_axis : int or None, optional
        Colour axis (``None`` for a 2-D grey image).
    return_info : bool, optional
        Also return a dict with ``lambda_eff``, ``n_merges`` and ``n_superpixels``.

    Returns
    -------
    labels : (H, W) int32
        Labels ``0..K-1`` ordered by each region's representative pixel, each 4-connected.
    info : dict
        Only if ``return_info``.

    Raises
    ------
    ValueError
        Invalid image, ``n_segments``, ``lambda_``, ``sigma`` or ``connectivity``.
    """
    img = as_float_rgb(image, channel_axis=channel_axis)
    k = check_n_segments(n_segments)
    labels, info = _ers_labels(img, k, lambda_, sigma, connectivity)
    return (labels, info) if return_info else labels


def _ers_labels(img: np.ndarray, n_segments: int, lambda_: float, sigma: float, connectivity: int):
    lambda_, sigma = float(lambda_), float(sigma)
    if not np.isfinite(lambda_) or lambda_ < 0:
        raise ValueError(f"lambda_ must be a finite number >= 0, got {lambda_}")
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    h, w = img.shape[:2]
    n = h * w
    k = min(int(n_segments), n)
    u8 = as_uint8_rgb(img)
    ea, eb, d = grid_edges(u8, connectivity)
    sigma_eff = sigma * 3.0  # the wrappers multiply sigma by the number of channels
    weights = np.exp(-(d * d) / (2.0 * sigma_eff * sigma_eff))
    roots, lambda_eff, merges = _ers_core(n, ea, eb, weights, k, lambda_ * k)
    labels = relabel_sequential(roots.reshape(h, w))
    if connectivity == 8:
        labels, _ = enforce_connectivity(labels)
    info = {"lambda_eff": float(lambda_eff), "n_merges": int(merges), "n_superpixels": int(labels.max()) + 1}
    return labels, info


@register_provider(
    "ers", connected=True, connectivity="by construction",
    description="ERS (Liu et al. 2011), numba port of lib_ers, 4-neighbour graph, lambda=0.5, sigma=5")
def ers_superpixels(image: np.ndarray, n_segments: int, *, lambda_: float = 0.5, sigma: float = 5.0,
                    connectivity: int = 4) -> np.ndarray:
    """Provider entry point: ``image`` is a validated ``(H, W, 3)`` float32 RGB image in [0, 1].

    See :func:`ers` for the parameters and the deviations from the original code.
    """
    return _ers_labels(image, int(n_segments), lambda_, sigma, connectivity)[0]
