"""Superpixel graph of the SO code: adjacency, boundary set, ring neighbourhoods, geodesics.

All matrices are dense ``K x K`` (K is a few hundred), indexed by contiguous labels ``0..K-1``.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import csgraph_from_dense, dijkstra

__all__ = ["adjacency_matrix", "boundary_superpixels", "two_ring", "link_clique",
           "geodesic_distances", "dist_to_weight"]


def adjacency_matrix(labels: np.ndarray, n_labels: int) -> np.ndarray:
    """``GetAdjMatrix``: superpixels sharing a 4-neighbour pixel pair; symmetric, diagonal = 1.

    Parameters
    ----------
    labels : (H, W) int ndarray
        Contiguous labels ``0..n_labels-1``.
    n_labels : int
        Number of superpixels K.

    Returns
    -------
    (K, K) float64 ndarray of 0/1.
    """
    adj = np.zeros((n_labels, n_labels))
    for a, b in ((labels[:-1, :], labels[1:, :]), (labels[:, :-1], labels[:, 1:])):
        change = a != b  # only label changes matter; no loop over pixels
        adj[a[change], b[change]] = 1.0
    adj = np.maximum(adj, adj.T)
    np.fill_diagonal(adj, 1.0)  # matters for the 2-ring A @ A + A
    return adj


def boundary_superpixels(labels: np.ndarray, thickness: int = 8) -> np.ndarray:
    """``GetBndPatchIds``: sorted ids of superpixels with a pixel within ``thickness`` of a border.

    On images thinner than ``thickness`` the band is the whole image (MATLAB would error there).
    """
    if thickness < 1:
        raise ValueError(f"boundary thickness must be >= 1, got {thickness}")
    t = thickness
    bands = (labels[:t, :], labels[-t:, :], labels[:, :t], labels[:, -t:])
    return np.unique(np.concatenate([b.ravel() for b in bands]))


def two_ring(adj: np.ndarray) -> np.ndarray:
    """Reachability in at most two steps, ``(A @ A + A) > 0`` (A with unit diagonal), as 0/1."""
    # A has ~6 non-zeros per row: a sparse product is exact and avoids a dense K^3 BLAS call
    # (which, multithreaded on a loaded machine, was the slowest step of the whole pipeline)
    a = csr_matrix(adj)
    return ((a @ a + a).toarray() > 0).astype(np.float64)


def link_clique(adj: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Copy of ``adj`` with every pair of ``ids`` linked (``LinkBoundarySPs``: ``A(bd, bd) = 1``)."""
    out = adj.copy()
    out[np.ix_(ids, ids)] = 1.0
    return out


def geodesic_distances(adj: np.ndarray, weights: np.ndarray, limit: float | None = None) -> np.ndarray:
    """All-pairs shortest path lengths on the undirected graph ``adj`` with edge ``weights``.

    Mirrors ``graphallshortestpaths(sparse(tril(A, -1)), 'directed', false, 'Weights', w)``.
    Zero-weight edges are kept as edges: a dense matrix handed to scipy's csgraph treats 0 as
    "no edge", which would silently cut the graph wherever clipped colour distances are 0, so
    the graph is built with ``null_value=inf`` marking the non-edges instead.

    Parameters
    ----------
    adj : (K, K) ndarray
        Non-zero (off-diagonal) entries are edges; symmetric or lower-triangular.
    weights : (K, K) ndarray
        Non-negative edge lengths (read where ``adj`` is non-zero).
    limit : float, optional
        Stop searching beyond this length: longer distances come back as ``inf`` (distances
        equal to ``limit`` are kept). Callers that cut weights off at ``3 sigma`` anyway pass
        a limit just above it, which halves the run time without changing any weight.

    Returns
    -------
    (K, K) float64 ndarray, ``inf`` between disconnected superpixels (or beyond ``limit``),
    0 on the diagonal.
    """
    k = adj.shape[0]
    edges = np.tril(adj, -1) > 0
    if np.any(weights[edges] < 0):
        raise ValueError("geodesic edge weights must be non-negative")
    dense = np.full((k, k), np.inf)
    dense[edges] = weights[edges]
    graph = csgraph_from_dense(dense, null_value=np.inf)
    return dijkstra(graph, directed=False, limit=np.inf if limit is None else float(limit))


def dist_to_weight(dist: np.ndarray, sigma: float, cutoff: float | None = 3.0) -> np.ndarray:
    """``Dist2WeightMatrix``: ``exp(-d^2 / (2 sigma^2))``, 0 where ``d > cutoff * sigma``.

    ``cutoff=None`` keeps the full Gaussian (the paper's formulas). ``inf`` distances give 0.
    ``sigma == 0`` (possible for the adaptive smoothness sigma on flat images, where MATLAB
    produces NaN and stops with an error) is taken as its limit: weight 1 at distance 0, else 0.
    """
    d = np.asarray(dist, dtype=np.float64)
    if sigma <= 0:
        return (d == 0).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        w = np.exp(-(d * d) / (2.0 * sigma * sigma))
    if cutoff is not None:
        w[d > cutoff * sigma] = 0.0
    return w
