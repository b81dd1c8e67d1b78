"""ERS provider: gains against brute-force objective values, lazy greedy against exact greedy,
graph construction, edge inputs (the generic contract: tests/sin/providers/test_providers_contract.py)."""

import itertools
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sin.connectivity import check_superpixels, is_4connected
from sin.providers import get_provider
from sin.providers.ers import balancing_gain, entropy_rate_gain, ers, grid_edges

# ------------------------------------------------------------------------------------------
# reference objective, written from the definitions (independent of sin.providers.ers)
# ------------------------------------------------------------------------------------------

def _edges_by_hand(img_u8, sigma):
    """4-neighbour edges (a, b) in lib_ers order and their Gaussian similarity of the L1 RGB distance
    (sigma * 3), normalised by w_T = sum of the vertex weights (sums in lib_ers's order)."""
    h, w = img_u8.shape[:2]
    edges, weights = [], []
    for y in range(h):
        for x in range(w):
            for yy, xx in ((y, x + 1), (y + 1, x)):
                if yy < h and xx < w:
                    d = float(np.abs(img_u8[y, x].astype(int) - img_u8[yy, xx].astype(int)).sum())
                    edges.append((y * w + x, yy * w + xx))
                    # the double nearest to the exact Gaussian (decimal's exp is correctly rounded), as
                    # ERS defines its weights: a 1-ulp different exp can flip the sign of a self-loop's
                    # round-off residual and with it a gain (NaN -> 0), so np.exp is not a reference
                    weights.append(float((Decimal(-d * d) / Decimal(2 * (3 * sigma) ** 2)).exp()))
    loop = [0.0] * (h * w)
    for (a, b), wt in zip(edges, weights):
        loop[a] += wt
        loop[b] += wt
    w_total = 0.0
    for v in loop:
        w_total += v
    return edges, np.array(weights) / w_total, np.array(loop) / w_total


def _entropy_rate(n, edges, weights, subset):
    """H(A) in bits of the random walk on (V, A + self-loops): -sum_u mu_u sum_v p_uv log2 p_uv."""
    vertex_w = np.zeros(n)
    for (a, b), wt in zip(edges, weights):
        vertex_w[a] += wt
        vertex_w[b] += wt
    P = np.zeros((n, n))
    for e in subset:
        a, b = edges[e]
        P[a, b] += weights[e]
        P[b, a] += weights[e]
    P[np.arange(n), np.arange(n)] = vertex_w - P.sum(1)  # self-loops keep every vertex weight
    P /= vertex_w[:, None]
    mu = vertex_w / vertex_w.sum()
    assert np.allclose(mu @ P, mu)  # the self-loops keep the walk stationary at mu
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(P > 0, P * np.log2(P), 0.0)
    return float(-(mu[:, None] * plogp).sum())


def _components(n, edges, subset):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for e in subset:
        ra, rb = find(edges[e][0]), find(edges[e][1])
        if ra != rb:
            parent[ra] = rb
    return np.array([find(v) for v in range(n)])


def _balancing(n, edges, subset):
    """B(A) = H(Z_A) - N_A (bits), Z_A the cluster-membership distribution."""
    _, sizes = np.unique(_components(n, edges, subset), return_counts=True)
    p = sizes / n
    return float(-(p * np.log2(p)).sum() - sizes.size)


def test_gains_match_brute_force_objective_on_2x3_image():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (2, 3, 3), dtype=np.uint8)
    n = 6
    edges, weights, _ = _edges_by_hand(img, sigma=20.0)
    assert len(edges) == 7
    checked = 0
    # every forest A and every edge e that keeps it a forest: the incremental gains must equal
    # the differences of the objective terms
    for r in range(5):
        for subset in itertools.combinations(range(len(edges)), r):
            comp = _components(n, edges, subset)
            if len(np.unique(comp)) != n - r:
                continue  # not a forest
            h_a, b_a = _entropy_rate(n, edges, weights, subset), _balancing(n, edges, subset)
            loop = np.zeros(n)
            for (a, b), wt in zip(edges, weights):
                loop[a] += wt
                loop[b] += wt
            for e in subset:
                loop[edges[e][0]] -= weights[e]
                loop[edges[e][1]] -= weights[e]
            for e, (a, b) in enumerate(edges):
                if e in subset or comp[a] == comp[b]:
                    continue
                if min(loop[a], loop[b]) - weights[e] < 1e-12:
                    continue  # exhausted self-loop: see test_er_gain_exhausted_loop_is_zero
                new = subset + (e,)
                d_h = _entropy_rate(n, edges, weights, new) - h_a
                d_b = _balancing(n, edges, new) - b_a
                assert entropy_rate_gain(weights[e], loop[a], loop[b]) == pytest.approx(d_h, rel=1e-9, abs=1e-15)
                size_a, size_b = np.sum(comp == comp[a]), np.sum(comp == comp[b])
                assert balancing_gain(n, size_a, size_b) == pytest.approx(d_b, rel=1e-9, abs=1e-12)
                checked += 1
    assert checked > 100


def test_gains_hand_values():
    # singletons of N = 4: B gain = [-(1/2) log2(1/2) + 2 (1/4) log2(1/4)] + 1 = 1/2 - 1 + 1 = 1/2
    assert balancing_gain(4, 1, 1) == pytest.approx(0.5)
    # two halves: -1 log2 1 + 2 (1/2) log2 (1/2) + 1 = 0
    assert balancing_gain(4, 2, 2) == pytest.approx(0.0, abs=1e-15)
    # w = 1/4, loops 1/2 (c = 1/4): 2 (1/2) log2(1/2) - 2 (1/4) log2(1/4) - 2 (1/4) log2(1/4) = -1 + 2 = 1
    assert entropy_rate_gain(0.25, 0.5, 0.5) == pytest.approx(1.0)


def test_er_gain_exhausted_loop_is_zero():
    # lib_ers computes 0 * log(0) = NaN and then returns 0 for the whole gain (spec: NaN -> 0);
    # we keep that behaviour (it decides which edges are merged late)
    assert entropy_rate_gain(0.25, 0.25, 0.5) == 0.0


# ------------------------------------------------------------------------------------------
# lazy greedy == exact greedy (diminishing returns make lazy evaluation exact)
# ------------------------------------------------------------------------------------------

def _exact_greedy(img_u8, k, lam, sigma):
    """Greedy that re-evaluates every candidate edge at every step (no heap, no laziness)."""
    h, w = img_u8.shape[:2]
    n = h * w
    edges, wn, loop = _edges_by_hand(img_u8, sigma)
    comp = np.arange(n)
    er0 = [entropy_rate_gain(wn[e], loop[a], loop[b]) for e, (a, b) in enumerate(edges)]
    bal = lam * k * max(max(er0), 0.0) / abs(max(balancing_gain(n, 1, 1), 1e-20))
    ties = 0
    for _ in range(n - k):
        best, best_e = -np.inf, -1
        gains = []
        for e, (a, b) in enumerate(edges):
            if comp[a] == comp[b]:
                continue
            g = entropy_rate_gain(wn[e], loop[a], loop[b]) + bal * balancing_gain(
                n, np.sum(comp == comp[a]), np.sum(comp == comp[b]))
            gains.append(g)
            if g > best:
                best, best_e = g, e
        ties += sum(1 for g in gains if g == best) > 1
        a, b = edges[best_e]
        comp[comp == comp[a]] = comp[b]
        loop[a] -= wn[best_e]
        loop[b] -= wn[best_e]
    return comp.reshape(h, w), ties


def _same_partition(p, q):
    pairs = set(zip(p.ravel().tolist(), q.ravel().tolist()))
    return len(pairs) == len(np.unique(p)) == len(np.unique(q))


@settings(max_examples=15, deadline=None)
@given(st.integers(3, 8), st.integers(3, 8), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_lazy_greedy_equals_exact_greedy(h, w, k, seed):
    # moderate contrast (8-bit values 100..139) so that both terms matter at sigma = 5
    img = np.random.default_rng(seed).integers(100, 140, (h, w, 3), dtype=np.uint8)
    k = min(k, h * w)
    ref, ties = _exact_greedy(img, k, lam=0.5, sigma=5.0)
    assume(ties == 0)  # with tied gains the greedy order is not unique
    labels = ers(img, k)
    assert labels.max() + 1 == k
    assert _same_partition(labels, ref)


# ------------------------------------------------------------------------------------------
# graph, behaviour on simple images
# ------------------------------------------------------------------------------------------

def test_grid_edges_hand_case():
    img = np.array([[[0, 0, 0], [10, 0, 0]],
                    [[0, 5, 0], [1, 1, 1]]], dtype=np.uint8)
    a, b, d = grid_edges(img, 4)
    # per pixel in row-major order: right, then down
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1), (0, 2), (1, 3), (2, 3)]
    assert d.tolist() == [10.0, 5.0, 9.0 + 1 + 1, 1.0 + 4 + 1]
    a, b, d = grid_edges(img, 8)
    # pixel 0: right, down, down-right; pixel 1: down; pixel 2: right, up-right
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3), (2, 1)]
    assert d[2] == pytest.approx(np.sqrt(2) * 3) and d[5] == pytest.approx(np.sqrt(2) * 15)
    with pytest.raises(ValueError, match="connectivity"):
        grid_edges(img, 6)


def test_two_colour_image_is_split_at_the_colour_edge():
    img = np.zeros((12, 20, 3), dtype=np.uint8)
    img[:, :7] = (200, 30, 30)
    img[:, 7:] = (30, 30, 200)
    labels = ers(img, 2)
    assert np.array_equal(labels, np.repeat((np.arange(20) >= 7)[None].astype(np.int32), 12, 0))
    # more superpixels never cross the edge
    labels = ers(img, 9)
    left, right = set(labels[:, :7].ravel().tolist()), set(labels[:, 7:].ravel().tolist())
    assert not left & right and labels.max() + 1 == 9


def test_eight_connected_graph_option():
    img = np.random.default_rng(5).integers(0, 256, (20, 25, 3), dtype=np.uint8)
    labels, info = ers(img, 30, connectivity=8, return_info=True)
    check_superpixels(labels, (20, 25))
    assert info["n_merges"] == 20 * 25 - 30  # the greedy itself reaches exactly K in the 8-graph
    assert labels.max() + 1 >= 30  # enforcing 4-connectivity can only split diagonal touches off


# ------------------------------------------------------------------------------------------
# provider: flat / extreme inputs and parameters
# ------------------------------------------------------------------------------------------

# the generic contract (shape, int32, 0..K-1, 4-connected, exact count, determinism) for every
# provider: tests/sin/providers/test_providers_contract.py

def test_flat_and_extreme_images():
    # flat image: every edge weight 1; checkerboard black/white: every weight underflows to 0
    # (all entropy-rate gains are NaN -> 0 and lambda_eff = 0): still exactly K connected regions
    flat = np.full((15, 16, 3), 77, dtype=np.uint8)
    checker = ((np.indices((15, 16)).sum(0) % 2) * 255).astype(np.uint8)
    for img, axis in ((flat, -1), (checker, None)):
        for k in (1, 7, 240):
            labels = get_provider("ers")(img, k, channel_axis=axis)
            check_superpixels(labels, (15, 16))
            assert labels.max() + 1 == k and is_4connected(labels)
    for lam in (0.0, 50.0):
        labels = get_provider("ers")(flat, 7, lambda_=lam)
        assert labels.max() + 1 == 7


def test_registered_and_bad_parameters():
    p = get_provider("ers")
    assert p.connected and p.connectivity == "by construction"
    assert p.defaults == {"lambda_": 0.5, "sigma": 5.0, "connectivity": 4}
    img = np.zeros((4, 4, 3))
    for kwargs, what in (({"lambda_": -1.0}, "lambda_"), ({"sigma": 0.0}, "sigma"),
                         ({"sigma": float("nan")}, "sigma"), ({"connectivity": 6}, "connectivity")):
        with pytest.raises(ValueError, match=what):
            p(img, 4, **kwargs)
    with pytest.raises(ValueError):
        ers(np.zeros((1, 1, 3)), 1)
    with pytest.raises(ValueError):
        ers(np.full((3, 3, 3), np.nan), 2)
