"""``ers``: Entropy Rate Superpixels (Liu, Tuzel, Ramalingam & Chellappa, CVPR 2011).

A numba re-implementation of M.-Y. Liu's ``lib_ers`` as used by the superpixel benchmark of
Stutz et al. (``ers_opencv.cpp``, ``MERCLazyGreedy.cpp``, ``MSubmodularHeap.h``; spec:
``shared/specs/ers_snic.md`` part A):

1. Graph: pixels, 4-neighbour edges (``connectivity=8`` adds the two diagonals), visited in the
   original order (per pixel, row-major: right, down[, down-right, up-right]).
2. Edge weight ``w = exp(-d^2 / (2 sigma_eff^2))`` (the double nearest to it) with ``d`` the L1 distance of the 8-bit RGB
   values (diagonals: ``sqrt(2) d``) and ``sigma_eff = sigma * 3`` (the wrapper multiplies by the
   channel count). Every vertex keeps a self-loop ``loop_u = sum of its incident weights`` minus
   the weights of its selected edges; all weights are divided by ``w_T = sum_u loop_u``.
3. Objective ``F(A) = H(A) + lambda_eff B(A)`` over forests ``A``: the entropy rate of the random
   walk on the graph ``(V, A + self-loops)`` and the balancing term ``B(A) = H(Z_A) - N_A``
   (bits), with ``lambda_eff = (lambda K) max_e dH_e / max_e dB_e`` on the initial graph.
4. Greedy: a max-heap of edge gains with lazy re-evaluation of the root (valid because both terms
   have diminishing returns), union-find, until ``K`` components remain.

Identical on every CPU: the label map depends on exact floating-point ties and near-ties of the
gains, so every number that enters the greedy is computed from correctly rounded IEEE operations
only (``+ - * /``, no fused multiply-add, no fast-math), never by a SIMD- or libm-dispatched
transcendental function (numpy's ``exp`` has an AVX-512 path that rounds differently from its
AVX2 path, which changed ERS's label maps between machines; glibc's ``exp``/``log`` pick FMA
variants by CPU and numba may vectorise through Intel SVML):

* the Gaussian weights come from a table indexed by the integer L1 distance, computed once per
  ``sigma`` with :mod:`decimal` (a software, correctly rounded ``exp``) -- see :func:`edge_weights`;
* the logarithms of the gains use :func:`_log`, a numba port of fdlibm's ``__ieee754_log``
  (< 1 ulp, basic operations only), instead of ``np.log``;
* ties of equal gains are broken by heap position only (fixed build order, strict comparisons),
  and the union-find representatives by size then index, so equal inputs give equal outputs.

This matters more than 1-ulp accuracy suggests: when all but one edge of a vertex are selected,
its self-loop after that edge, ``loop - w``, is a round-off residual whose sign decides whether
the edge's gain is a positive number or NaN -> 0, so a 1-ulp change of one weight can reroute the
greedy. Since issue 14 the maps differ from the earlier numpy-``exp``
version at that round-off level (the same quality on BSDS500; see ``tests/sin/providers/test_ers_determinism.py``
for the stored reference maps).

Also differing from ``lib_ers`` in rounding only: the entropy-rate gain uses the self-loop
``loop`` itself where ``lib_ers`` writes ``w + (loop - w)``, and the logarithms that do not
change with the edge (``loop log loop`` per vertex, ``w log w`` per edge, ``p log p`` per cluster
size) are cached, which leaves two logarithms per gain evaluation instead of eight.

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

from decimal import Decimal, localcontext
from functools import lru_cache

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..connectivity import enforce_connectivity, relabel_sequential
from ..image import as_float_rgb, as_uint8_rgb, check_n_segments
from .params import Choice, Float
from .registry import register_provider

__all__ = ["balancing_gain", "edge_weights", "entropy_rate_gain", "ers", "ers_superpixels", "grid_edges"]


# fdlibm's e_log.c constants (Sun Microsystems, freely distributable): ln 2 split so that
# k * _LN2_HI is exact, and the minimax coefficients of log((1+s)/(1-s)) on [0, 0.1716]
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_LN2 = 0.6931471805599453  # ln 2 correctly rounded (np.log(2.0) could be constant-folded by any libm)


@intrinsic
def _f64_bits(typingctx, x):
    # the IEEE-754 bit pattern of a float64 as an int64 (a register move, no call)
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_f64(typingctx, i):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(cache=True)
def _log(x):
    """Natural logarithm from basic IEEE operations only (fdlibm ``__ieee754_log``, < 1 ulp).

    Unlike ``np.log`` / ``math.log`` in numba (a call into the platform libm, whose x86-64 glibc
    picks an FMA or SSE2 variant by CPU, or an SVML vector routine when numba vectorises a loop),
    this gives the same bits on every machine: the exponent and mantissa are taken from the bit
    pattern and ``+ - * /`` are correctly rounded (numba compiles without fast-math, so no FMA
    contraction). Returns -inf for 0 and NaN for negative or NaN input, like ``np.log``.
    """
    if not x > 0.0:
        return -np.inf if x == 0.0 else np.nan
    if x == np.inf:
        return x
    k = 0
    if x < 2.2250738585072014e-308:  # subnormal: scale by 2^54 (exact)
        k = -54
        x *= 18014398509481984.0
    bits = _f64_bits(x)
    hx = (bits >> 32) & 0xFFFFF  # top 20 mantissa bits
    k += ((bits >> 52) & 0x7FF) - 1023
    i = (hx + 0x95F64) & 0x100000  # set when the mantissa is >= ~sqrt(2)
    # x -> its mantissa in [sqrt(2)/2, sqrt(2)): exponent field 1023 (or 1022 if i), k adjusted
    y = _bits_f64((bits & 0x000FFFFFFFFFFFFF) | ((0x3FF ^ (i >> 20)) << 52))
    k += i >> 20
    f = y - 1.0
    dk = float(k)
    if ((2 + hx) & 0xFFFFF) < 3:  # |f| < 2^-20
        if f == 0.0:
            return dk * _LN2_HI + dk * _LN2_LO
        r = f * f * (0.5 - 0.33333333333333333 * f)
        return dk * _LN2_HI - ((r - dk * _LN2_LO) - f)
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    if 0x6147A <= hx <= 0x6B851:  # f near its range ends: the more accurate form
        hfsq = 0.5 * f * f
        return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)
    return dk * _LN2_HI - ((s * (f - r) - dk * _LN2_LO) - f)


@njit(cache=True)
def _xlogx(x):
    # x log x with lib_ers's NaN for 0 log 0 (and for round-off negatives), see _er_gain
    return x * _log(x)


@njit(cache=True)
def _er_gain(xlx_a, xlx_b, ca, cb, wlw):
    """Entropy-rate gain from ``loop log loop`` of both endpoints (``xlx_a``, ``xlx_b``, cached
    per vertex), their self-loops after adding the edge (``ca``, ``cb``) and ``w log w``."""
    # 0 log 0 and logs of round-off negatives give NaN -> 0, as in MERCFunctions::ComputeERGain
    er = (xlx_a + xlx_b - _xlogx(ca) - _xlogx(cb) - 2.0 * wlw) / _LN2
    if np.isnan(er):
        return 0.0
    return er


@njit(cache=True)
def _b_gain(plp_a, plp_b, plp_ab):
    """Balancing gain from ``p log p`` of both clusters' and the merged cluster's size fractions."""
    return (plp_a + plp_b - plp_ab) / _LN2 + 1.0


def entropy_rate_gain(w: float, loop_a: float, loop_b: float) -> float:
    """Gain (bits) in the entropy rate of adding an edge of normalised weight ``w``.

    ``loop_a``, ``loop_b`` are the endpoints' self-loop weights *before* the edge is added (the
    formula uses ``c = loop - w``, the self-loops after adding). NaN (``0 log 0``) gives 0.
    Computed exactly as inside :func:`ers` (same operations, same rounding).
    """
    w, loop_a, loop_b = float(w), float(loop_a), float(loop_b)
    return float(_er_gain(_xlogx(loop_a), _xlogx(loop_b), loop_a - w, loop_b - w, _xlogx(w)))


def balancing_gain(n_vertices: int, size_a: int, size_b: int) -> float:
    """Gain of the balancing term ``B = H(Z) - N_A`` (bits) when two clusters merge."""
    n = float(n_vertices)
    return float(_b_gain(_xlogx(size_a / n), _xlogx(size_b / n), _xlogx((size_a + size_b) / n)))


def _grid_graph(image_u8: np.ndarray, connectivity: int = 4):
    """``(a, b, l1, diagonal)``: edges in ``lib_ers`` order, the integer L1 RGB distance of each
    and whether it is a diagonal edge (only with ``connectivity=8``)."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    img = image_u8.astype(np.int64)
    h, w = img.shape[:2]
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    n_slots = 2 if connectivity == 4 else 4
    a = np.broadcast_to(idx[:, :, None], (h, w, n_slots)).copy()
    b = np.full((h, w, n_slots), -1, dtype=np.int64)
    d = np.zeros((h, w, n_slots), dtype=np.int64)
    # slot 0: right, slot 1: down, slot 2: down-right, slot 3: up-right
    b[:, :-1, 0] = idx[:, 1:]
    d[:, :-1, 0] = np.abs(img[:, :-1] - img[:, 1:]).sum(-1)
    b[:-1, :, 1] = idx[1:, :]
    d[:-1, :, 1] = np.abs(img[:-1, :] - img[1:, :]).sum(-1)
    if connectivity == 8:
        b[:-1, :-1, 2] = idx[1:, 1:]
        d[:-1, :-1, 2] = np.abs(img[:-1, :-1] - img[1:, 1:]).sum(-1)
        b[1:, :-1, 3] = idx[:-1, 1:]
        d[1:, :-1, 3] = np.abs(img[1:, :-1] - img[:-1, 1:]).sum(-1)
    diagonal = np.broadcast_to(np.arange(n_slots) >= 2, (h, w, n_slots))
    keep = (b >= 0).ravel()
    return a.ravel()[keep], b.ravel()[keep], d.ravel()[keep], diagonal.ravel()[keep]


def grid_edges(image_u8: np.ndarray, connectivity: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ERS's pixel graph: ``(a, b, d)`` with ``d`` the L1 RGB distance (``sqrt(2) d`` on diagonals).

    Edges are listed in ``lib_ers`` order: for each pixel in row-major order its right, down and
    (``connectivity=8``) down-right and up-right neighbours.
    """
    a, b, l1, diagonal = _grid_graph(image_u8, connectivity)
    return a, b, np.where(diagonal, np.sqrt(2.0), 1.0) * l1


@lru_cache(maxsize=16)
def _weight_table(sigma: float) -> np.ndarray:
    # (2, 766): row 0 for side edges, exp(-l1^2 / (2 sigma_eff^2)), row 1 for diagonals, whose
    # distance is sqrt(2) l1, so exp(-2 l1^2 / (2 sigma_eff^2)). decimal's exp is correctly rounded
    # at 40 digits and float() rounds that correctly to a double: the table is a function of sigma
    # alone, whatever the CPU, libm or numpy build (the argument is exact up to 40 digits too).
    table = np.empty((2, 3 * 255 + 1))
    with localcontext() as ctx:
        ctx.prec = 40
        two_var = 2 * (3 * Decimal(sigma)) ** 2  # sigma_eff = 3 sigma: the wrappers multiply by the channels
        for row, factor in enumerate((1, 2)):
            for l1 in range(table.shape[1]):
                table[row, l1] = float((-Decimal(factor * l1 * l1) / two_var).exp())
    table.setflags(write=False)
    return table


def edge_weights(l1: np.ndarray, diagonal: np.ndarray | None = None, *, sigma: float = 5.0) -> np.ndarray:
    """ERS's Gaussian edge weights ``exp(-d^2 / (2 (3 sigma)^2))`` of integer L1 RGB distances.

    ``d = l1`` for side edges and ``sqrt(2) l1`` where ``diagonal``. Each weight is the double
    nearest to the exact value (from a table made with :mod:`decimal`), so the weights -- and the
    label maps -- do not depend on the CPU's SIMD ``exp`` (see the module notes).
    """
    l1 = np.asarray(l1)
    if l1.size and (l1.min() < 0 or l1.max() > 3 * 255):
        raise ValueError(f"L1 distances of 8-bit RGB must be in 0..765, got {l1.min()}..{l1.max()}")
    table = _weight_table(float(sigma))
    row = np.zeros(l1.shape, dtype=np.int64) if diagonal is None else np.asarray(diagonal).astype(np.int64)
    return table[row, l1.astype(np.int64)]


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
    # the logarithms that do not depend on the edge are cached: loop log loop per vertex (renewed
    # when a loop changes), w log w per edge, and p log p of every cluster size s / N; this leaves
    # two logarithms per gain evaluation instead of eight
    xlx = np.empty(n_vertices)
    for v in range(n_vertices):
        xlx[v] = _xlogx(loop[v])
    wlw = np.empty(n_edges)
    for e in range(n_edges):
        wlw[e] = _xlogx(w[e])
    plp = np.empty(n_vertices + 1)
    for c in range(n_vertices + 1):
        plp[c] = _xlogx(c / float(n_vertices))
    # initial gains and the balancing weight (maxima over the initial graph only)
    er = np.empty(n_edges)
    max_er = 0.0
    max_b = 1e-20
    b0 = _b_gain(plp[1], plp[1], plp[2])  # all clusters are singletons
    for e in range(n_edges):
        er[e] = _er_gain(xlx[ea[e]], xlx[eb[e]], loop[ea[e]] - w[e], loop[eb[e]] - w[e], wlw[e])
        max_er = max(max_er, er[e])
        max_b = max(max_b, b0)
    balancing = lam * max_er / abs(max_b)
    # 1-based max-heap of (gain, edge id), built bottom-up in edge order (MHeap::BuildMaxHeap);
    # equal gains are ordered by heap position alone, which is fixed by the edge order, so ties
    # are broken the same way on every machine
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
            xlx[ea[e]] = _xlogx(loop[ea[e]])
            xlx[eb[e]] = _xlogx(loop[eb[e]])
        # lazy re-evaluation of the root (MSubmodularHeap::EasySubmodularMaxHeapifyTree)
        while size > 0:
            top = he[1]
            old = hg[1]
            ra = _find(parent, ea[top])
            rb = _find(parent, eb[top])
            if ra == rb:
                new = 0.0
            else:
                a, b = ea[top], eb[top]
                new = (_er_gain(xlx[a], xlx[b], loop[a] - w[top], loop[b] - w[top], wlw[top])
                       + balancing * _b_gain(plp[csize[ra]], plp[csize[rb]], plp[csize[ra] + csize[rb]]))
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
    ea, eb, l1, diagonal = _grid_graph(u8, connectivity)
    weights = edge_weights(l1, diagonal, sigma=sigma)
    roots, lambda_eff, merges = _ers_core(n, ea, eb, weights, k, lambda_ * k)
    labels = relabel_sequential(roots.reshape(h, w))
    if connectivity == 8:
        labels, _ = enforce_connectivity(labels)
    info = {"lambda_eff": float(lambda_eff), "n_merges": int(merges), "n_superpixels": int(labels.max()) + 1}
    return labels, info


# max_pixels: ERS took 36 s at 2048x1536 and over 300 s / 4.6 GB at 6000x4000 (issue 15): 4 MP is ~40 s
@register_provider(
    "ers", connected=True, connectivity="by construction", version="1", max_pixels=4_000_000,
    description="ERS (Liu et al. 2011), numba port of lib_ers, 4-neighbour graph, lambda=0.5, sigma=5",
    params={"lambda_": Float(0, help="balancing weight (times K)"),
            "sigma": Float(0, low_open=True, help="Gaussian kernel width per channel"),
            "connectivity": Choice(4, 8, help="pixel graph")})
def ers_superpixels(image: np.ndarray, n_segments: int, *, lambda_: float = 0.5, sigma: float = 5.0,
                    connectivity: int = 4) -> np.ndarray:
    """Provider entry point: ``image`` is a validated ``(H, W, 3)`` float32 RGB image in [0, 1].

    See :func:`ers` for the parameters and the deviations from the original code.
    """
    return _ers_labels(image, int(n_segments), lambda_, sigma, connectivity)[0]
