"""Saliency Optimization: colour conversion, graph pieces, the optimiser, end-to-end behaviour."""

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize
from skimage.color import rgb2lab
from skimage.filters import threshold_otsu

from downstream.saliency_optimization import (CODE_PARAMS, PAPER_PARAMS, matlab_rgb_to_lab, saliency_optimization,
                                              saliency_optimization_details, so_saliency, so_segment_count)
from downstream.saliency_optimization.colour import linear_rgb_to_lab, rec709_inverse_gamma
from downstream.saliency_optimization.core import (background_probability, boundary_connectivity, contiguous_labels,
                                                   estimate_dynamic_params,
                                                   graythresh, optimise_saliency, resolve_so_params, smoothness_weights,
                                                   weighted_contrast)
from downstream.saliency_optimization.graph import (adjacency_matrix, boundary_superpixels, dist_to_weight,
                                                    geodesic_distances, two_ring)

# --------------------------------------------------------------------------------------------
# colour (MATLAB colorspace 'Lab<-')

# XYZ -> RGB matrix as printed in colorspace.m; RGB -> XYZ is its inverse (derived here by hand)
M_XYZ2RGB = np.array([[3.240479, -1.53715, -0.498535], [-0.969256, 1.875992, 0.041556],
                      [0.055648, -0.204043, 1.057311]])
WHITE = np.array([0.950456, 1.0, 1.088754])


def _hand_lab_of_linear(rgb_lin):
    x, y, z = np.linalg.inv(M_XYZ2RGB) @ np.asarray(rgb_lin, float) / WHITE

    def f(t):
        return t ** (1 / 3) if t >= 0.008856 else t * 841 / 108 + 4 / 29

    return np.array([116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))])


def test_white_black_and_greys():
    white = matlab_rgb_to_lab([1.0, 1.0, 1.0])
    # not exactly 100: the 6-digit matrix rows do not sum exactly to the white point
    np.testing.assert_allclose(white, [100.0, 0.0, 0.0], atol=2e-4)
    np.testing.assert_array_equal(matlab_rgb_to_lab([0.0, 0.0, 0.0]), [0.0, 0.0, 0.0])
    greys = matlab_rgb_to_lab(np.repeat(np.linspace(0, 1, 11)[:, None], 3, axis=1))
    assert np.all(np.abs(greys[:, 1:]) < 2e-4)
    assert np.all(np.diff(greys[:, 0]) > 0)


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_primaries_against_hand_derivation(channel):
    rgb = np.zeros(3)
    rgb[channel] = 1.0
    # R' = 1 -> ((1 + 0.099) / 1.099) ** (1 / 0.45) = 1: linear 1, no gamma involved
    expected = _hand_lab_of_linear(rgb)
    np.testing.assert_allclose(matlab_rgb_to_lab(rgb), expected, atol=1e-9)
    # and the textbook sRGB primaries (D65): red (53.24, 80.09, 67.20) etc.
    textbook = {0: [53.2408, 80.0925, 67.2032], 1: [87.7347, -86.1827, 83.1793], 2: [32.2970, 79.1875, -107.8602]}
    np.testing.assert_allclose(matlab_rgb_to_lab(rgb), textbook[channel], atol=0.01)


def test_rec709_inverse_gamma_branches():
    # power-law branch: ((0.5 + 0.099) / 1.099) ** (1 / 0.45)
    assert rec709_inverse_gamma(0.5) == pytest.approx((0.599 / 1.099) ** (1 / 0.45), rel=1e-12)
    assert rec709_inverse_gamma(0.5) == pytest.approx(0.2596, abs=1e-4)
    # 0.05: the power law gives 0.0118 < 0.018, so the linear segment 0.05 / 4.5138 is used
    assert (0.149 / 1.099) ** (1 / 0.45) < 0.018
    assert rec709_inverse_gamma(0.05) == pytest.approx(0.05 / 4.5138, rel=1e-12)
    assert rec709_inverse_gamma(0.0) == 0.0 and rec709_inverse_gamma(1.0) == pytest.approx(1.0)


def _srgb_encode(lin):
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def test_against_skimage_where_definitions_coincide(rng):
    # cube corners: both gammas map 0 -> 0 and 1 -> 1
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    np.testing.assert_allclose(matlab_rgb_to_lab(corners), rgb2lab(corners[None])[0], atol=0.01)
    # same *linear* colour fed to both: only white point / matrix rounding differ
    lin = rng.random((2000, 3))
    np.testing.assert_allclose(linear_rgb_to_lab(lin), rgb2lab(_srgb_encode(lin)[None])[0], atol=0.01)


def test_documented_gamma_difference_from_skimage():
    g = np.full(3, 22 / 255)
    d_l = matlab_rgb_to_lab(g)[0] - rgb2lab(g[None, None])[0, 0, 0]
    assert 7.0 < abs(d_l) < 8.5  # Rec.709 vs sRGB gamma, as documented in colour.py


def test_colour_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        matlab_rgb_to_lab(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        matlab_rgb_to_lab([np.nan, 0, 0])


# --------------------------------------------------------------------------------------------
# graph pieces


def test_adjacency_hand_example():
    labels = np.array([[0, 0, 1],
                       [2, 3, 1],
                       [2, 3, 3]])
    adj = adjacency_matrix(labels, 4)
    expected = np.eye(4)
    for a, b in [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)]:
        expected[a, b] = expected[b, a] = 1
    np.testing.assert_array_equal(adj, expected)  # 1 and 2 only meet diagonally: not adjacent


def test_boundary_band():
    labels = np.zeros((30, 30), int)
    labels[8:22, 8:22] = 1   # the band is rows/columns 0..7 and 22..29: just outside
    labels[12:18, 12:18] = 2
    labels[0:3, 25:28] = 3
    np.testing.assert_array_equal(boundary_superpixels(labels), [0, 3])
    labels[7, 15] = 1        # now inside the top band
    np.testing.assert_array_equal(boundary_superpixels(labels), [0, 1, 3])


def test_geodesic_keeps_zero_weight_edges():
    # 0 -0- 1 -0- 2 -5- 3, plus a direct edge 0 -7- 3
    adj = np.zeros((4, 4))
    w = np.zeros((4, 4))
    for a, b, c in [(0, 1, 0.0), (1, 2, 0.0), (2, 3, 5.0), (0, 3, 7.0)]:
        adj[a, b] = adj[b, a] = 1
        w[a, b] = w[b, a] = c
    expected = np.array([[0, 0, 0, 5],
                         [0, 0, 0, 5],
                         [0, 0, 0, 5],
                         [5, 5, 5, 0]], float)
    np.testing.assert_array_equal(geodesic_distances(adj, w), expected)
    # lower-triangular input (as MATLAB's tril) gives the same
    np.testing.assert_array_equal(geodesic_distances(np.tril(adj), w), expected)
    # a limit returns inf beyond it and keeps distances equal to it
    lim = geodesic_distances(adj, w, limit=5.0)
    np.testing.assert_array_equal(lim, expected)
    assert np.isinf(geodesic_distances(adj, w, limit=4.9)[0, 3])


def test_geodesic_disconnected_is_inf():
    adj = np.zeros((3, 3))
    adj[0, 1] = adj[1, 0] = 1
    d = geodesic_distances(adj, np.ones((3, 3)))
    assert d[0, 1] == 1 and np.isinf(d[0, 2]) and np.isinf(d[1, 2]) and d[2, 2] == 0


def test_dist_to_weight_cutoff_and_zero_sigma():
    d = np.array([0.0, 1.0, 3.0, 3.0001, np.inf])
    w = dist_to_weight(d, 1.0)
    np.testing.assert_allclose(w, [1.0, np.exp(-0.5), np.exp(-4.5), 0.0, 0.0])
    np.testing.assert_allclose(dist_to_weight(d, 1.0, cutoff=None)[:4], np.exp(-d[:4] ** 2 / 2))
    np.testing.assert_array_equal(dist_to_weight(d, 0.0), [1, 0, 0, 0, 0])


def test_two_ring():
    # path 0-1-2-3
    adj = np.eye(4)
    for a in range(3):
        adj[a, a + 1] = adj[a + 1, a] = 1
    r = two_ring(adj)
    assert r[0, 2] == 1 and r[0, 3] == 0 and r[1, 3] == 1 and np.all(np.diag(r) == 1)


# --------------------------------------------------------------------------------------------
# dynamic parameters, Otsu


def test_dynamic_params_hand_example_with_nan_meantop():
    # three superpixels in a row: 0-1 (distance 4), 1-2 (2); 0-2 = 6 only in the 2-ring
    adj = np.eye(3)
    adj[0, 1] = adj[1, 0] = adj[1, 2] = adj[2, 1] = 1
    col = np.array([[0, 4, 6], [4, 0, 2], [6, 2, 0]], float)
    dyn = estimate_dynamic_params(adj, col)
    assert dyn["mean_min1"] == pytest.approx(8 / 3)
    assert dyn["mean_min2"] == pytest.approx(8 / 3)
    # E = 2 pairs -> round(0.02) = 0 elements -> NaN, ignored by the mins (MATLAB min([..NaN]))
    assert np.isnan(dyn["mean_top"])
    assert dyn["geo_sigma"] == pytest.approx(8.0)       # max(5, min(10, 8))
    assert dyn["nei_sigma"] == pytest.approx(8.0)       # min(8, NaN, 20)
    assert dyn["clip"] == dyn["mean_min2"]


def test_dynamic_params_matlab_round_half_away():
    # 250 adjacent pairs -> round(2.5) = 3 largest distances in MATLAB (Python's round gives 2)
    k = 60
    pairs = [(i, j) for i in range(k) for j in range(i)][:250]
    adj = np.eye(k)
    col = np.zeros((k, k))
    for n, (i, j) in enumerate(pairs):
        adj[i, j] = adj[j, i] = 1
        col[i, j] = col[j, i] = float(n + 1)   # distances 1..250
    others = np.ones((k, k), bool)
    others[np.nonzero(adj)] = False
    col[others] = 1000.0  # non-adjacent pairs must not count
    np.fill_diagonal(col, 0)
    dyn = estimate_dynamic_params(adj, col)
    assert dyn["mean_top"] == pytest.approx((250 + 249 + 248) / 3)


def test_graythresh_hand_example():
    # two clusters at 0.1 and 0.9: every split between them is optimal; MATLAB averages them -> 0.5
    x = np.array([0.1] * 5 + [0.9] * 5)
    assert graythresh(x) == pytest.approx(0.5)
    assert graythresh(np.full(7, 0.3)) == 0.0  # constant: no finite maximum


def test_graythresh_matches_skimage_on_uint8(rng):
    n_unique = 0
    for n in (250, 5000):
        for _ in range(10):
            x = np.concatenate([rng.normal(0.3, 0.08, 3 * n // 5), rng.normal(0.7, 0.1, 2 * n // 5)]).clip(0, 1)
            q = np.floor(x * 255 + 0.5).astype(np.uint8)
            t = int(threshold_otsu(q, nbins=256))  # last value of the lower class = MATLAB's bin
            hist = np.bincount(q, minlength=256)
            # the split is equally good anywhere in a run of empty bins after t: skimage takes the
            # first, MATLAB averages the run
            t_next = t + 1 + int(np.argmax(hist[t + 1:] > 0))
            n_unique += t_next == t + 1
            assert graythresh(x) * 255 == pytest.approx((t + t_next - 1) / 2, abs=1e-9)
    assert n_unique >= 5


def test_background_probability_and_fixed_high_weight():
    bdcon = np.array([0.0, 1.0, 3.0, 3.5])
    prob, weight = background_probability(bdcon)
    np.testing.assert_allclose(prob, 1 - np.exp(-bdcon ** 2 / 2))
    np.testing.assert_allclose(weight, [prob[0], prob[1], prob[2], 1000.0])  # only BndCon > 3
    _, weight_off = background_probability(bdcon, high_bdcon=None)
    np.testing.assert_allclose(weight_off, prob)


def test_weighted_contrast_postprocessing():
    col = np.array([[0, 10, 20], [10, 0, 10], [20, 10, 0]], float)
    pos = np.zeros((3, 3))
    bg = np.array([1.0, 0.5, 0.0])
    raw = weighted_contrast(col, pos, bg, minmax=False, otsu=False)
    np.testing.assert_allclose(raw, [5.0, 10.0, 25.0])  # sum_j d_ij * 1 * bg_j
    mm = weighted_contrast(col, pos, bg, otsu=False)
    np.testing.assert_allclose(mm, [0.0, 0.25, 1.0], atol=1e-12)
    assert weighted_contrast(col, pos, bg)[1] == 0.0  # 0.25 is below the Otsu level


# --------------------------------------------------------------------------------------------
# the optimiser against a generic solver


def _random_problem(rng, k):
    # random planar-ish adjacency: a grid of superpixels with random merges
    side = int(np.ceil(np.sqrt(k)))
    labels = np.arange(side * side).reshape(side, side)[:, :, None, None]
    labels = np.broadcast_to(labels, (side, side, 3, 3)).transpose(0, 2, 1, 3).reshape(3 * side, 3 * side)
    labels, _ = contiguous_labels(labels % k)
    n = int(labels.max()) + 1
    adj = adjacency_matrix(labels, n)
    boundary = boundary_superpixels(labels, thickness=2)
    lab = rng.normal(50, 15, (n, 3))
    col = np.sqrt(((lab[:, None] - lab[None]) ** 2).sum(-1))
    bg = rng.random(n)
    fg = np.where(rng.random(n) < 0.4, 0.0, rng.random(n))
    return adj, boundary, col, bg, fg


def _pair_weights_from_definition(adj, boundary, col, sigma, mu):
    """{(i, j): w_ij} for i < j, written out from the definition with plain loops."""
    n = len(adj)
    # link set: direct neighbours, neighbours of neighbours, all boundary pairs
    linked = set()
    for i in range(n):
        for j in range(n):
            if adj[i, j] or any(adj[i, m] and adj[m, j] for m in range(n)):
                linked.add((i, j))
    linked |= {(i, j) for i in boundary for j in boundary}
    weights = {}
    for i in range(n):
        for j in range(i + 1, n):
            w = 0.0
            if (i, j) in linked and col[i, j] <= 3 * sigma:
                w += np.exp(-col[i, j] ** 2 / (2 * sigma ** 2))
            if adj[i, j]:
                w += mu
            weights[(i, j)] = w
    return weights


def _objective(s, pair_w, bg, fg, lam):
    cost = sum(lam * bg[i] * s[i] ** 2 + fg[i] * (s[i] - 1) ** 2 for i in range(len(s)))
    return cost + sum(w * (s[i] - s[j]) ** 2 for (i, j), w in pair_w.items())


@pytest.mark.parametrize("seed,k", [(0, 9), (1, 12), (2, 16)])
def test_closed_form_equals_generic_minimiser(seed, k):
    rng = np.random.default_rng(seed)
    adj, boundary, col, bg, fg = _random_problem(rng, k)
    sigma, mu, lam = 20.0, 0.1, 5.0
    w = smoothness_weights(adj, boundary, col, sigma, mu=mu)
    s_closed = optimise_saliency(w, bg, fg, lam)

    pair_w = _pair_weights_from_definition(adj, boundary, col, sigma, mu)
    for (i, j), wij in pair_w.items():  # the implementation's W (off-diagonal) is the same
        assert w[i, j] == pytest.approx(wij, abs=1e-12) and w[j, i] == pytest.approx(wij, abs=1e-12)

    def f(s):
        return _objective(s, pair_w, bg, fg, lam)

    res = minimize(f, np.full(len(bg), 0.5), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(s_closed, res.x, atol=2e-5)
    assert f(s_closed) <= res.fun + 1e-10


def test_closed_form_with_high_background_weight():
    rng = np.random.default_rng(3)
    adj, boundary, col, bg, fg = _random_problem(rng, 9)
    bg[:3] = 1000.0
    w = smoothness_weights(adj, boundary, col, 15.0)
    s = optimise_saliency(w, bg, fg, 5.0)
    # the gradient of the cost vanishes at the solution
    lap = np.diag(w.sum(0)) - w
    grad = 2 * lap @ s + 2 * 5.0 * bg * s + 2 * fg * (s - 1)
    np.testing.assert_allclose(grad, 0, atol=1e-10)
    assert np.all(np.abs(s[:3]) < 1e-2)


# --------------------------------------------------------------------------------------------
# end to end


def _block_labels(h, w, block):
    return (np.arange(h)[:, None] // block) * ((w + block - 1) // block) + np.arange(w)[None] // block


def _square_image(noise, rng, h=120, w=160):
    img = np.full((h, w, 3), 0.35)
    img[40:80, 60:100] = [0.9, 0.2, 0.15]
    if noise:
        img = np.clip(img + rng.normal(0, noise, img.shape), 0, 1)
    return img


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_bright_square_is_salient(noise, rng):
    img = _square_image(noise, rng)
    labels = _block_labels(120, 160, 10)
    smap = saliency_optimization(img, labels)
    assert smap.dtype == np.float32 and smap.shape == (120, 160)
    assert 0.0 <= smap.min() and smap.max() <= 1.0
    inside, outside = smap[40:80, 60:100], np.ones_like(smap, bool)
    outside[30:90, 50:110] = False
    assert inside.mean() > 0.9
    assert smap[outside].mean() < 0.05


def test_region_touching_border_is_not_salient(rng):
    # same colour as the salient square, but as a band along the bottom edge
    img = np.full((120, 160, 3), 0.35)
    img[80:, :] = [0.9, 0.2, 0.15]
    img[30:60, 60:100] = [0.2, 0.3, 0.9]   # a genuine interior object for contrast
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    res = saliency_optimization_details(img, _block_labels(120, 160, 10))
    smap = res.saliency_map
    assert smap[85:, :].mean() < 0.1
    assert smap[30:60, 60:100].mean() > 0.8
    band = np.unique(res.labels[80:, :])
    assert np.all(res.bdcon[band] > 2)  # boundary connectivity marks the band as background


def test_label_permutation_and_gap_invariance(rng):
    from sin.io import SAMPLE_IMAGE, read_image

    img = read_image(SAMPLE_IMAGE)[::2, ::2]
    labels = _block_labels(*img.shape[:2], 12)
    base = saliency_optimization(img, labels)
    perm = rng.permutation(labels.max() + 1)
    np.testing.assert_allclose(saliency_optimization(img, perm[labels]), base, atol=1e-6)
    np.testing.assert_allclose(saliency_optimization(img, labels * 7 + 3), base, atol=1e-6)   # gaps
    np.testing.assert_allclose(saliency_optimization(img, labels.astype(np.int64) * 10**12), base, atol=1e-6)
    np.testing.assert_allclose(saliency_optimization(img, labels.astype(float)), base, atol=1e-6)


def test_float_and_uint8_inputs_agree():
    rng = np.random.default_rng(5)
    img8 = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    labels = _block_labels(40, 50, 5)
    np.testing.assert_array_equal(saliency_optimization(img8, labels),
                                  saliency_optimization(img8 / 255.0, labels))
    grey = img8[..., 0]
    np.testing.assert_array_equal(saliency_optimization(grey, labels),
                                  saliency_optimization(np.repeat(grey[..., None], 3, -1), labels))


def test_geodesic_limit_does_not_change_weights(rng):
    img = _square_image(0.05, rng)
    res = saliency_optimization_details(img, _block_labels(120, 160, 10))
    lab = res.lab
    col = np.sqrt(((lab[:, None] - lab[None]) ** 2).sum(-1))
    dyn = res.dynamic
    bd = res.boundary
    got, _, _ = boundary_connectivity(res.adjacency, col, bd, dyn["clip"], dyn["geo_sigma"])
    adj = res.adjacency.copy()
    adj[np.ix_(bd, bd)] = 1
    full = geodesic_distances(adj, np.maximum(0, col - dyn["clip"]))  # no limit
    s = dist_to_weight(full, dyn["geo_sigma"])
    np.testing.assert_allclose(got, s[:, bd].sum(1) / np.sqrt(s.sum(1)), rtol=1e-12)


def test_params_code_paper_and_overrides(rng):
    img = _square_image(0.03, rng)
    labels = _block_labels(120, 160, 10)
    code = saliency_optimization_details(img, labels)
    paper = saliency_optimization_details(img, labels, so_params="paper")
    assert code.so_params == CODE_PARAMS and paper.so_params == PAPER_PARAMS
    assert paper.dynamic["used_geo_sigma"] == 10.0 and paper.dynamic["used_clip"] == 0.0
    assert not np.allclose(code.saliency_map, paper.saliency_map)
    assert paper.saliency_map[40:80, 60:100].mean() > 0.7  # still finds the object
    fixed = saliency_optimization_details(img, labels, so_params={"geo_sigma": 7.0, "nei_sigma": 10.0})
    assert fixed.dynamic["used_geo_sigma"] == 7.0 and fixed.dynamic["used_nei_sigma"] == 10.0
    with pytest.raises(ValueError, match="unknown SO parameter"):
        resolve_so_params({"sigma": 1})
    with pytest.raises(ValueError, match="so_params must be"):
        resolve_so_params("matlab")
    with pytest.raises(TypeError):  # the old name is gone: params means provider parameters only
        saliency_optimization(img, labels, params="paper")


def test_single_superpixel_is_refused_not_an_all_zero_map():
    img = np.random.default_rng(0).random((10, 12, 3))
    with pytest.raises(ValueError, match="at least 2 superpixels"):
        saliency_optimization(img, np.zeros((10, 12), int))
    with pytest.raises(ValueError, match="at least 2 superpixels"):
        saliency_optimization(img, np.full((10, 12), 7))  # one id, not 0
    two = np.zeros((10, 12), int)
    two[:, 6:] = 1
    assert saliency_optimization(img, two).shape == (10, 12)  # two is enough


def test_superpixel_limit_is_checked_before_allocating(monkeypatch):
    from downstream.saliency_optimization import MAX_SUPERPIXELS, core

    assert MAX_SUPERPIXELS == 4000
    img = np.random.default_rng(0).random((80, 80, 3))
    labels = np.arange(80 * 80).reshape(80, 80)  # 6400 superpixels: 70 K^2 bytes would be ~2.7 GB

    def boom(*a, **k):
        raise AssertionError("K x K work started")

    monkeypatch.setattr(core, "pairwise_distances", boom)
    monkeypatch.setattr(core, "adjacency_matrix", boom)
    with pytest.raises(ValueError, match="6400 superpixels exceed the Saliency Optimization limit of 4000"):
        saliency_optimization(img, labels)
    with pytest.raises(ValueError, match="limit of 100"):
        saliency_optimization(img, _block_labels(80, 80, 4), max_superpixels=100)  # 400 > 100
    with pytest.raises(ValueError, match="n_segments=5000 exceeds"):
        so_saliency(img, "grid", 5000)
    for bad in (1, 0, 2.5, True, "10"):
        with pytest.raises(ValueError, match="max_superpixels"):
            saliency_optimization(img, _block_labels(80, 80, 20), max_superpixels=bad)


def test_errors():
    img = np.random.default_rng(0).random((20, 30, 3))
    labels = _block_labels(20, 30, 5)
    with pytest.raises(ValueError, match="does not match the image shape"):
        saliency_optimization(img, labels[:, :-1])
    with pytest.raises(ValueError, match="does not match the image shape"):
        saliency_optimization(img, labels.T)
    bad = img.copy()
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        saliency_optimization(bad, labels)
    with pytest.raises(ValueError, match="non-negative"):
        saliency_optimization(img, labels - 1)
    with pytest.raises(ValueError, match="2-D"):
        saliency_optimization(img, labels[None])
    with pytest.raises(ValueError, match="integers"):
        saliency_optimization(img, labels + 0.5)
    with pytest.raises(ValueError, match="channels"):
        saliency_optimization(np.zeros((20, 30, 5)), labels)


@pytest.mark.parametrize("image, labels, match", [
    (np.zeros((0, 0, 3)), np.zeros((0, 0), int), "empty|pixel"),
    (np.zeros((1, 1, 3)), np.zeros((1, 1), int), "pixel"),
    (np.zeros((4, 5, 3)), np.arange(20).reshape(4, 5) + 0.5, "integers"),   # fractional labels
    (np.zeros((4, 5, 3)), np.full((4, 5), np.nan), "integers|NaN|finite"),
    (np.zeros((4, 5, 3)), np.zeros((4, 5), int), "at least 2 superpixels"),
    (np.full((4, 5, 3), np.inf), np.arange(20).reshape(4, 5), "NaN|inf|finite"),
    (np.zeros((4, 5, 3), complex), np.arange(20).reshape(4, 5), "dtype"),
    ("not an image", np.arange(20).reshape(4, 5), ""),
])
def test_odd_inputs_give_value_errors(image, labels, match):
    with pytest.raises(ValueError, match=match):
        saliency_optimization(image, labels)


def test_so_saliency_bad_arguments():
    img = np.random.default_rng(0).random((20, 30, 3))
    for k in (0, -3, 2.5, True, "200"):
        with pytest.raises(ValueError, match="n_segments"):
            so_saliency(img, "grid", k)
    with pytest.raises(ValueError, match="so_params must be"):
        so_saliency(img, "grid", 20, so_params="matlab")
    with pytest.raises(ValueError, match="so_params="):  # the old keyword gets a pointer, not a provider error
        so_saliency(img, "grid", 20, params="paper")
    with pytest.raises(ValueError, match="no parameter"):
        so_saliency(img, "grid", 20, compactness=3)


def _my_sp(image, n_segments):
    """A user's own method: vertical stripes (not registered anywhere)."""
    h, w = image.shape[:2]
    return np.minimum(np.arange(w) * n_segments // w, n_segments - 1)[None, :].repeat(h, 0)


def test_so_saliency_with_a_user_function():
    from sin.io import SAMPLE_IMAGE, read_image

    img = read_image(SAMPLE_IMAGE)[::4, ::4]
    smap, labels = so_saliency(img, provider=_my_sp, n_segments=30, return_labels=True)
    np.testing.assert_array_equal(labels, _my_sp(img, 30))
    np.testing.assert_array_equal(smap, saliency_optimization(img, labels))
    assert smap.shape == img.shape[:2] and smap.max() == 1.0

    def with_param(image, n_segments, *, flip=False):
        lab = _my_sp(image, n_segments)
        return lab[:, ::-1] if flip else lab

    flipped = so_saliency(img, provider=with_param, n_segments=30, flip=True, return_labels=True)[1]
    np.testing.assert_array_equal(flipped, _my_sp(img, 30)[:, ::-1])


@pytest.mark.parametrize("bad, match", [
    (lambda img, k: np.zeros(img.shape[:2], np.float32), "float32 labels"),
    (lambda img, k: np.zeros((img.shape[0] + 1, img.shape[1]), int), "shape"),
    (lambda img, k: np.zeros(img.shape[:2], int) - 1, "negative"),
    (lambda img, k: "labels", "not a label array|shape"),
])
def test_so_saliency_names_a_provider_that_breaks_the_contract(bad, match):
    img = np.random.default_rng(0).random((20, 30, 3))

    def bad_superpixels(image, n_segments):
        return bad(image, n_segments)

    with pytest.raises(ValueError, match=f"bad_superpixels.*({match})"):
        so_saliency(img, provider=bad_superpixels, n_segments=20)


def test_so_saliency_refuses_a_single_superpixel_naming_the_provider():
    img = np.random.default_rng(0).random((20, 30, 3))

    def lump(image, n_segments):
        return np.zeros(image.shape[:2], np.int32)

    with pytest.raises(ValueError, match=r"provider 'lump' returned 1 superpixel\(s\) for n_segments=50 on a 20x30"):
        so_saliency(img, provider=lump, n_segments=50)


def test_so_saliency_with_providers():
    from sin.io import SAMPLE_IMAGE, read_image

    img = read_image(SAMPLE_IMAGE)[::3, ::3]
    smap, labels = so_saliency(img, "grid", 60, return_labels=True)
    assert smap.shape == img.shape[:2] and labels.max() + 1 >= 50
    np.testing.assert_array_equal(smap, saliency_optimization(img, labels))
    assert so_saliency(img, "slic", 60, compactness=20).shape == img.shape[:2]
    with pytest.raises(ValueError, match="unknown superpixel provider"):
        so_saliency(img, "nope")


def test_so_segment_count():
    assert so_segment_count(300, 400) == 200
    assert so_segment_count(300, 400, 300) == 400
    assert so_segment_count(301, 401) == round(301 * 401 / 600)
    assert so_segment_count(30, 30) == 2  # 1.5 rounds half away from zero, as MATLAB
    with pytest.raises(ValueError):
        so_segment_count(10, 10, 0)


# ------------------------------------------------------------------ the SIN paper's protocol as a preset
def _old_so_count(height, width, size):
    """The count rule as benchmarks/sod_table.py wrote it before it became the preset (MATLAB round, >= 2)."""
    return max(2, int(np.floor(height * width * size / 120000.0 + 0.5)))


def test_so_saliency_default_is_the_sin_paper_table2_setting():
    """``so_saliency(image, provider)`` = the Table 2 benchmark's setting before it moved into the preset:
    K = round(h w S / 120000), SLIC with the SO demo's compactness 20, the released code's SO constants."""
    from sin.io import SAMPLE_IMAGE, read_image
    from sin.providers import get_provider

    img = read_image(SAMPLE_IMAGE)[::3, ::3]
    h, w = img.shape[:2]
    for row in (200, 400):
        k = _old_so_count(h, w, row)
        labels = get_provider("slic", compactness=20.0)(img, k)
        expected = saliency_optimization(img, labels, so_params="code")
        smap, got = so_saliency(img, "slic", row=row, return_labels=True) if row != 200 else \
            so_saliency(img, "slic", return_labels=True)
        np.testing.assert_array_equal(got, labels)
        np.testing.assert_array_equal(smap, expected)
    # an explicit compactness, count or SO constants win over the preset
    _, lab10 = so_saliency(img, "slic:compactness=10", return_labels=True)
    np.testing.assert_array_equal(lab10, get_provider("slic")(img, _old_so_count(h, w, 200)))
    _, lab_kw = so_saliency(img, "slic", 50, compactness=5, return_labels=True)
    np.testing.assert_array_equal(lab_kw, get_provider("slic", compactness=5)(img, 50))
    smap, grid = so_saliency(img, "grid", so_params="paper", return_labels=True)
    np.testing.assert_array_equal(smap, saliency_optimization(img, grid, so_params="paper"))
    # no preset: SLIC keeps its own default and the count must be given
    _, plain = so_saliency(img, "slic", 60, preset=None, return_labels=True)
    np.testing.assert_array_equal(plain, get_provider("slic")(img, 60))
    with pytest.raises(ValueError, match="pass n_segments"):
        so_saliency(img, "slic", preset=None)
    with pytest.raises(ValueError, match="unknown SO preset 'paper'"):
        so_saliency(img, "slic", preset="paper")
    with pytest.raises(ValueError, match="not both"):
        so_saliency(img, "slic", 60, row=400)
    with pytest.raises(ValueError, match="row must be a positive integer"):
        so_saliency(img, "slic", row=0)


def test_sin_paper_preset_values_and_count_rule():
    from hypothesis import given
    from hypothesis import strategies as st

    from downstream.saliency_optimization import PRESETS, SIN_PAPER, get_preset

    assert PRESETS == {"sin_paper": SIN_PAPER} and get_preset("sin_paper") is SIN_PAPER and get_preset(None) is None
    assert (SIN_PAPER.rows, SIN_PAPER.slic_compactness, SIN_PAPER.so_params) == ((200, 400), 20.0, "code")
    assert SIN_PAPER.count_rule == "round(h*w*size/120000)"
    assert SIN_PAPER.n_segments(300, 400) == 200 and SIN_PAPER.n_segments(300, 400, 400) == 400
    assert SIN_PAPER.n_segments(30, 30, 200) == 2  # 1.5 rounds half away from zero, as MATLAB
    assert SIN_PAPER.n_segments(10, 10, 200) == 2  # at least 2 (SO needs two regions)

    @given(st.integers(1, 2000), st.integers(1, 2000), st.sampled_from([100, 200, 300, 400, 1000]))
    def same_as_before(h, w, row):
        assert SIN_PAPER.n_segments(h, w, row) == _old_so_count(h, w, row)
        if row == 200:
            assert SIN_PAPER.n_segments(h, w, row) == max(2, so_segment_count(h, w))

    same_as_before()
    prov = SIN_PAPER.provider("slic")
    assert prov.params["compactness"] == 20.0 and prov.spec_string() == "slic:compactness=20.0"
    assert SIN_PAPER.provider("slic:compactness=10").params["compactness"] == 10
    assert SIN_PAPER.provider("snic").spec_string() == "snic"
    from sin.providers import get_provider

    ready = get_provider("slic")  # a ready-made Provider object is run as given
    assert SIN_PAPER.provider(ready) == ready
    # the SO-map key covers SO's constants and SO_VERSION, nothing else
    assert SIN_PAPER.map_key() == SIN_PAPER.map_key("code") != SIN_PAPER.map_key("paper")
    assert SIN_PAPER.map_key({"mu": 0.2}) != SIN_PAPER.map_key()


#: Golden SO maps (8-bit, digests) for SO_VERSION: a change of either digest means the SO output
#: changed, so SO_VERSION must be bumped (cached SO maps are keyed by it) and these values updated.
GOLDEN_SO = {"version": 1, "code": "1d29f2d92b724b01", "paper": "8c4f8b2b33d62f23"}


def test_so_output_is_pinned_to_so_version():
    from downstream.saliency_optimization import SO_VERSION
    from downstream.saliency_optimization.evaluate import quantize_map
    from sin.fingerprint import array_digest

    yy, xx = np.mgrid[:48, :64]
    img = np.stack([(xx * 4) % 256, (yy * 5) % 256, (((xx - 32) ** 2 + (yy - 24) ** 2) < 150) * 220], -1)
    labels = (yy // 8) * 8 + xx // 8
    got = {sp: array_digest(quantize_map(saliency_optimization(img.astype(np.uint8), labels, so_params=sp)), 16)
           for sp in ("code", "paper")}
    assert {"version": SO_VERSION, **got} == GOLDEN_SO


@pytest.mark.data
def test_so_saliency_default_reproduces_the_committed_ecssd_values():
    """The preset on two ECSSD images gives the committed Table 2 per-image MAE (SLIC and SIN, both rows)."""
    import pandas as pd

    from conftest import REPO_ROOT, data_path
    from downstream.saliency_optimization.datasets import SaliencyDataset
    from downstream.saliency_optimization.evaluate import mean_absolute_error

    ds = SaliencyDataset(data_path("ECSSD"))
    committed = pd.read_csv(REPO_ROOT / "results" / "saliency" /
                            "table2_ECSSD_per_image.csv.gz", dtype={"image": str}).set_index(["image", "size",
                                                                                              "provider"])
    for i in (0, 1):
        name, image, gt = ds.load(i)
        for row in (200, 400):
            for spec, col in (("slic", "slic"), ("sin:precision=fp32", "sin")):
                mae = mean_absolute_error(so_saliency(image, spec, row=row), gt)
                assert mae == pytest.approx(committed.loc[(name, row, col), "mae"], abs=5e-7), (name, row, spec)
