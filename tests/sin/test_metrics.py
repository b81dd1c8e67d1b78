"""Superpixel metrics: hand-computed cases, identities, invariances and slow loop references."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sin import metrics as M

# --------------------------------------------------------------------------------------------
# Example A, computed on paper.
#
#   labels L        GT G            N = 12
#   0 0 1 1         0 0 0 1         S0 = top-left 2x2, S1 = top-right 2x2, S2 = bottom row
#   0 0 1 1         0 0 0 1         G0 (8 px), G1 = {(0,3),(1,3),(2,2),(2,3)} (4 px)
#   2 2 2 2         0 0 1 1
#
# n_ij (rows GT, cols superpixels):  G0: 4 2 2   G1: 0 2 2
# ASA   = (4 + 2 + 2) / 12                                    = 2/3, UE = 1/3
# OE    = ((8 - 4) + (4 - 2)) / 12                            = 1/2
# UE_NP = (min(4,0) + min(2,2) + min(2,2) + min(2,2) + min(2,2)) / 12 = 8/12
# UE_Levin: G0 touches S0,S1,S2: (12 - 8)/8 = 1/2; G1 touches S1,S2: (8 - 4)/4 = 1
#           M = max(G) + 1 = 2 slots -> (1/2 + 1)/2 = 3/4; with G + 1 (1-based) M = 3 -> 1/2
# CO: S0, S1 are 2x2 squares with perimeter 8 (border sides count): 4*pi*4/64 = pi/4;
#     S2 is 1x4 with perimeter 4 + 4 + 1 + 1 = 10: 4*pi*4/100 = 0.16 pi
#     CO = (4/12)(pi/4 + pi/4 + 0.16 pi) = 0.22 pi
# Boundary pixels (either side):
#   sp_b   0 1 1 0      gt_b  0 0 1 1
#          1 1 1 1            0 0 1 1
#          1 1 1 1            0 1 1 0
# r = 0: TP = gt_b & sp_b = 5 of 6 ((0,3) missed) -> BR = 5/6;
#        FP = sp_b & ~gt_b = {(0,1),(1,0),(1,1),(2,0),(2,3)} = 5 -> BP = 5/10
# r = 1: every pixel is within one (Chebyshev) pixel of both maps' boundaries -> BR = BP = 1
# --------------------------------------------------------------------------------------------
L_A = np.array([[0, 0, 1, 1],
                [0, 0, 1, 1],
                [2, 2, 2, 2]])
G_A = np.array([[0, 0, 0, 1],
                [0, 0, 0, 1],
                [0, 0, 1, 1]])


def test_example_a_region_metrics():
    assert M.achievable_segmentation_accuracy(L_A, G_A) == pytest.approx(2 / 3)
    assert M.undersegmentation_error(L_A, G_A) == pytest.approx(1 / 3)
    assert M.oversegmentation_error(L_A, G_A) == pytest.approx(1 / 2)
    assert M.np_undersegmentation_error(L_A, G_A) == pytest.approx(8 / 12)
    assert M.levin_undersegmentation_error(L_A, G_A) == pytest.approx(3 / 4)
    assert M.levin_undersegmentation_error(L_A, G_A + 1) == pytest.approx(1 / 2)  # empty slot 0


def test_example_a_compactness():
    assert M.compactness(L_A) == pytest.approx(0.22 * math.pi)


def test_example_a_boundaries():
    sp_b = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]], bool)
    gt_b = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 1, 1, 0]], bool)
    np.testing.assert_array_equal(M.boundary_pixels(L_A), sp_b)
    np.testing.assert_array_equal(M.boundary_pixels(G_A), gt_b)
    rec, pre = M.boundary_recall_precision(L_A, G_A, tolerance=0)
    assert rec == pytest.approx(5 / 6) and pre == pytest.approx(5 / 10)
    assert M.boundary_recall_precision(L_A, G_A, tolerance=1) == (1.0, 1.0)
    assert M.boundary_recall(L_A, G_A, tolerance=0) == pytest.approx(5 / 6)
    assert M.boundary_precision(L_A, G_A, tolerance=0) == pytest.approx(1 / 2)
    # 3 x 4 image: round(0.0025 * 5) = 0 is the default tolerance
    assert M.boundary_recall_precision(L_A, G_A) == M.boundary_recall_precision(L_A, G_A, tolerance=0)


def test_example_a_size_metrics():
    assert M.number_of_superpixels(L_A) == 3
    assert M.superpixel_size_stats(L_A) == (4.0, 0.0)
    assert M.contour_density(L_A) == pytest.approx(10 / 12)
    assert M.number_of_superpixels(np.array([[0, 7], [7, 100]])) == 3  # present labels only


# --------------------------------------------------------------------------------------------
# Example B: colour metrics on a 1 x 4 image, labels [0 0 1 1].
#   R = [0 2 4 6]   G = [0 0 0 0]   B = [0 0 0 12];   channel means mu = (3, 0, 3)
#   R: superpixel means 1, 5: explained 4 * 4 = 16; total 9 + 1 + 1 + 9 = 20; residual 4 * 1 = 4
#   B: superpixel means 0, 6: explained 4 * 9 = 36; total 9 + 9 + 9 + 81 = 108; residual 36 + 36 = 72
#   EV = (16 + 36) / (20 + 108) = 52/128;  SSE_RGB = (4 + 72) / 4 = 19
#   ICV: S0 variance (1 + 1)/2 = 1 -> 1;  S1 (1 + 1 + 36 + 36)/2 = 37 -> sqrt(37); mean over 2
#   SSE_XY: each superpixel covers x = j, j+1 -> (1/4 + 1/4) * 2 / 4 = 1/4
# --------------------------------------------------------------------------------------------
L_B = np.array([[0, 0, 1, 1]])
IMG_B = np.zeros((1, 4, 3), np.uint8)
IMG_B[0, :, 0] = [0, 2, 4, 6]
IMG_B[0, :, 2] = [0, 0, 0, 12]


def test_example_b_colour_metrics():
    assert M.explained_variation(L_B, IMG_B) == pytest.approx(52 / 128)
    assert M.sum_of_squared_error_rgb(L_B, IMG_B) == pytest.approx(19.0)
    assert M.intra_cluster_variation(L_B, IMG_B) == pytest.approx((1 + math.sqrt(37)) / 2)
    assert M.sum_of_squared_error_xy(L_B) == pytest.approx(0.25)
    # the channel order (RGB vs the benchmark's BGR) does not matter
    assert M.explained_variation(L_B, IMG_B[..., ::-1]) == pytest.approx(52 / 128)
    # float input in [0, 1] is converted to the same 8-bit values
    assert M.explained_variation(L_B, IMG_B / 255.0) == pytest.approx(52 / 128)


def test_icv_counts_label_slots_like_the_benchmark():
    # labels {0, 2}: slot 1 is empty and counts as a zero in the mean (3 slots)
    assert M.intra_cluster_variation(L_B * 2, IMG_B) == pytest.approx((1 + math.sqrt(37)) / 3)


def test_ev_is_one_when_superpixels_are_uniform_in_colour(rng):
    img = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    per_pixel = np.arange(42).reshape(6, 7)
    assert M.explained_variation(per_pixel, img) == pytest.approx(1.0)
    # superpixels = groups of identical colours (not connected) also explain everything
    palette = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
    lab = rng.integers(0, 4, size=(8, 9))
    assert M.explained_variation(lab, palette[lab]) == pytest.approx(1.0)
    assert M.sum_of_squared_error_rgb(lab, palette[lab]) == pytest.approx(0.0)


def test_ev_of_a_single_superpixel_is_zero_and_nan_for_a_constant_image(rng):
    img = rng.integers(0, 256, size=(5, 5, 3), dtype=np.uint8)
    assert M.explained_variation(np.zeros((5, 5), int), img) == pytest.approx(0.0)
    assert math.isnan(M.explained_variation(np.arange(25).reshape(5, 5), np.full((5, 5, 3), 7, np.uint8)))


# --------------------------------------------------------------------------------------------
# compactness
# --------------------------------------------------------------------------------------------

def test_compactness_of_single_superpixels():
    # one superpixel covering an n x n image: 4 pi n^2 / (4n)^2 = pi/4
    for n in (1, 3, 10):
        assert M.compactness(np.zeros((n, n), int)) == pytest.approx(math.pi / 4)
    # 3 x 4: perimeter 14 (all border sides) -> 4 pi 12 / 196
    assert M.compactness(np.zeros((3, 4), int)) == pytest.approx(4 * math.pi * 12 / 196)


def test_compactness_grid_of_squares_and_area_weighting():
    # a 2 x 2 grid of s x s squares: each square has perimeter 4s -> CO = pi/4 as well
    lab = np.kron(np.arange(4).reshape(2, 2), np.ones((5, 5), int))
    assert M.compactness(lab) == pytest.approx(math.pi / 4)
    # 1 x 4 strip of single pixels: each has perimeter 4 -> pi/4 each
    assert M.compactness(np.array([[0, 1, 2, 3]])) == pytest.approx(math.pi / 4)
    # area weighting: 1 x 3 image, labels [0 0 1]: S0 (1x2) perimeter 6, S1 perimeter 4
    # CO = (2/3)(4 pi 2 / 36) + (1/3)(4 pi / 16)
    expected = (2 / 3) * (8 * math.pi / 36) + (1 / 3) * (4 * math.pi / 16)
    assert M.compactness(np.array([[0, 0, 1]])) == pytest.approx(expected)


def test_compactness_counts_sides_not_pixels_for_disconnected_labels():
    # checkerboard 2 x 2 with two labels: each label has two isolated pixels, 8 sides
    # CO = sum_j (2/4) * 4 pi 2 / 64 = pi/8 (an unweighted per-pixel quotient would be pi/4)
    assert M.compactness(np.array([[0, 1], [1, 0]])) == pytest.approx(math.pi / 8)


# --------------------------------------------------------------------------------------------
# identities and invariances
# --------------------------------------------------------------------------------------------

def _random_map(rng, shape, k):
    return rng.integers(0, k, size=shape)


def test_superpixels_equal_to_gt_are_perfect(rng):
    gt = np.kron(rng.integers(0, 5, size=(4, 5)), np.ones((6, 6), int))
    rec, pre = M.boundary_recall_precision(gt, gt)
    assert (rec, pre) == (1.0, 1.0)
    assert M.achievable_segmentation_accuracy(gt, gt) == 1.0
    assert M.undersegmentation_error(gt, gt) == 0.0
    assert M.np_undersegmentation_error(gt, gt) == 0.0
    assert M.oversegmentation_error(gt, gt) == 0.0
    # each GT segment is exactly one superpixel: Levin's UE is 0 whatever the slots
    assert M.levin_undersegmentation_error(gt, gt) == 0.0


def test_single_superpixel_and_single_pixel_superpixels(rng):
    gt = _random_map(rng, (7, 9), 3)
    one = np.zeros_like(gt)
    sizes = np.bincount(gt.ravel())
    assert M.achievable_segmentation_accuracy(one, gt) == pytest.approx(sizes.max() / gt.size)
    assert M.boundary_recall(one, gt) == 0.0  # no superpixel boundary at all
    # every pixel its own superpixel: ASA = 1, OE = 1 - (1/N) * #segments, BR = 1
    pixels = np.arange(gt.size).reshape(gt.shape)
    assert M.achievable_segmentation_accuracy(pixels, gt) == 1.0
    assert M.oversegmentation_error(pixels, gt) == pytest.approx(1 - np.count_nonzero(sizes) / gt.size)
    assert M.boundary_recall(pixels, gt, tolerance=0) == 1.0


@settings(max_examples=40)
@given(st.integers(0, 2**31 - 1), st.integers(1, 9), st.integers(1, 9), st.integers(1, 6), st.integers(1, 6))
def test_asa_equals_one_minus_ue_and_bounds(seed, h, w, ks, kg):
    rng = np.random.default_rng(seed)
    lab, gt = _random_map(rng, (h, w), ks), _random_map(rng, (h, w), kg)
    asa = M.achievable_segmentation_accuracy(lab, gt)
    assert asa + M.undersegmentation_error(lab, gt) == pytest.approx(1.0)
    assert 0 < asa <= 1
    assert 0 <= M.np_undersegmentation_error(lab, gt) <= 1
    assert 0 <= M.oversegmentation_error(lab, gt) < 1
    assert 0 < M.compactness(lab) <= math.pi / 4 + 1e-12


def _all_metrics(lab, gt, img):
    row = M.evaluate(lab, [gt], img).iloc[0]
    return row[list(M.METRIC_COLUMNS)].astype(float)


def test_metrics_invariant_to_label_permutation(rng):
    lab = np.kron(_random_map(rng, (5, 6), 12), np.ones((3, 3), int)) + (np.arange(18)[None, :] // 7)
    gt = np.kron(_random_map(rng, (3, 3), 4), np.ones((5, 6), int))
    img = rng.integers(0, 256, size=lab.shape + (3,), dtype=np.uint8)
    base = _all_metrics(lab, gt, img)
    perm_sp = rng.permutation(int(lab.max()) + 1)
    perm_gt = rng.permutation(int(gt.max()) + 1)
    pd.testing.assert_series_equal(base, _all_metrics(perm_sp[lab], perm_gt[gt], img))
    # huge label values (compacted internally, no giant arrays): everything but the two metrics
    # that the benchmark averages over label *slots* (ue_levin over GT values, icv over labels)
    huge = _all_metrics(lab * 1_000_003 + 10**12, gt * 999_983 + 10**12, img)
    same = [c for c in M.METRIC_COLUMNS if c not in ("ue_levin", "icv")]
    pd.testing.assert_series_equal(base[same], huge[same])


def test_bad_inputs_raise_clear_errors():
    ok = np.zeros((3, 4), int)
    with pytest.raises(ValueError, match="non-negative"):
        M.achievable_segmentation_accuracy(ok - 1, ok)
    with pytest.raises(ValueError, match="non-negative"):
        M.boundary_recall(ok, ok - 5)
    with pytest.raises(ValueError, match="does not match"):
        M.achievable_segmentation_accuracy(ok, np.zeros((4, 3), int))
    with pytest.raises(ValueError, match="2-D"):
        M.compactness(np.zeros((2, 3, 4), int))
    with pytest.raises(ValueError, match="integers"):
        M.compactness(np.full((3, 3), 0.5))
    with pytest.raises(ValueError, match="empty"):
        M.compactness(np.zeros((0, 3), int))
    with pytest.raises(ValueError, match="image shape"):
        M.explained_variation(ok, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="tolerance"):
        M.boundary_recall(ok, ok, tolerance=-1)
    with pytest.raises(ValueError, match="tolerance"):
        M.boundary_recall(ok, ok, tolerance=1.5)
    with pytest.raises(ValueError, match="at least one"):
        M.evaluate(ok, [])
    with pytest.raises(ValueError, match="ground truth 1"):
        M.evaluate(ok, [ok, np.zeros((2, 2), int)])


# --------------------------------------------------------------------------------------------
# boundary tolerance
# --------------------------------------------------------------------------------------------

def test_boundary_tolerance_values():
    assert M.boundary_tolerance((321, 481)) == 1  # BSDS500: 0.0025 * 578.3 = 1.45
    assert M.boundary_tolerance((481, 321)) == 1
    assert M.boundary_tolerance((448, 608)) == 2  # NYUv2: 0.0025 * 755.2 = 1.89
    assert M.boundary_tolerance((1000, 1000)) == 4  # 3.54 -> 4
    # diagonal 200: 0.0025 is a C float (0.00249999994), so the product is just below 0.5
    assert M.boundary_tolerance((120, 160)) == 0
    assert M.boundary_tolerance((120, 160), fraction=0.003) == 1
    # halves round away from zero like std::round (Python's round() would give 2)
    assert M.boundary_tolerance((3, 4), fraction=0.5) == 3


@pytest.mark.parametrize("r", [0, 1, 2, 3])
def test_shifted_boundary_recalled_within_r_not_beyond(r):
    # GT: vertical split at column 10 (boundary pixels: columns 9 and 10).
    # superpixels: split at 10 + s (boundary columns 9 + s, 10 + s). GT column 10 is s - 1 away,
    # GT column 9 is s away: s <= r -> BR = 1; s = r + 1 -> only column 10 found (BR = 1/2).
    h, w = 8, 30
    cols = np.arange(w)[None, :].repeat(h, 0)
    gt = (cols >= 10).astype(int)
    for s, expected in ((r, 1.0), (r + 1, 0.5), (r + 2, 0.0)):
        lab = (cols >= 10 + s).astype(int)
        assert M.boundary_recall(lab, gt, tolerance=r) == expected, (s, r)
    # the superpixel boundary the other way round: same by symmetry
    assert M.boundary_recall((cols >= 10 - r).astype(int), gt, tolerance=r) == 1.0


def test_tolerance_window_is_square_not_a_disc():
    # GT: a 2x2 block in the top-left corner of a 12x12 image. Its boundary pixels are
    # (0,1) (1,0) (1,1) inside and (0,2) (1,2) (2,0) (2,1) outside: 7 pixels.
    # Superpixels: the block [4:, 4:]; boundary pixels (3, 4..11), (4..11, 3), (4, 4..), (4.., 4).
    # Only (2,1) -> (4,3) and (1,2) -> (3,4) are within Chebyshev distance 2 (Euclidean 2.83):
    # a square window of radius 2 recalls 2 of 7, a disc of radius 2 would recall none.
    gt = np.zeros((12, 12), int)
    gt[0:2, 0:2] = 1
    lab = np.zeros((12, 12), int)
    lab[4:, 4:] = 1
    assert np.count_nonzero(M.boundary_pixels(gt)) == 7
    assert M.boundary_recall(lab, gt, tolerance=1) == 0.0
    assert M.boundary_recall(lab, gt, tolerance=2) == pytest.approx(2 / 7)
    for r in (1, 2, 3):
        assert M.boundary_recall_precision(lab, gt, tolerance=r) == pytest.approx(_slow_rec_pre(lab, gt, r))


# --------------------------------------------------------------------------------------------
# independent references: explicit loops written from the benchmark's definitions
# --------------------------------------------------------------------------------------------

def _slow_is_boundary(lab, i, j):
    h, w = lab.shape
    for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        a, b = i + di, j + dj
        if 0 <= a < h and 0 <= b < w and lab[a, b] != lab[i, j]:
            return True
    return False


def _slow_any_boundary_near(lab, i, j, r):
    h, w = lab.shape
    for k in range(max(0, i - r), min(h - 1, i + r) + 1):
        for m in range(max(0, j - r), min(w - 1, j + r) + 1):
            if _slow_is_boundary(lab, k, m):
                return True
    return False


def _slow_rec_pre(lab, gt, r):
    tp = fn = fp = 0
    h, w = gt.shape
    for i in range(h):
        for j in range(w):
            if _slow_is_boundary(gt, i, j):
                if _slow_any_boundary_near(lab, i, j, r):
                    tp += 1
                else:
                    fn += 1
            elif _slow_is_boundary(lab, i, j) and not _slow_any_boundary_near(gt, i, j, r):
                fp += 1
    rec = tp / (tp + fn) if tp + fn else 0.0
    pre = tp / (tp + fp) if tp + fp else 0.0
    return rec, pre


def _slow_region_metrics(lab, gt):
    n = lab.size
    sps, gts = np.unique(lab), np.unique(gt)
    inter = {(g, s): int(np.sum((gt == g) & (lab == s))) for g in gts for s in sps}
    size_s = {s: int(np.sum(lab == s)) for s in sps}
    size_g = {g: int(np.sum(gt == g)) for g in gts}
    asa = sum(max(inter[g, s] for g in gts) for s in sps) / n
    oe = sum(size_g[g] - max(inter[g, s] for s in sps) for g in gts) / n
    ue_np = sum(min(inter[g, s], size_s[s] - inter[g, s]) for g in gts for s in sps if inter[g, s] > 0) / n
    levin = sum((sum(size_s[s] for s in sps if inter[g, s] > 0) - size_g[g]) / size_g[g] for g in gts)
    return asa, oe, ue_np, levin / (int(gt.max()) + 1)


small_maps = st.tuples(st.integers(1, 7), st.integers(1, 7)).flatmap(
    lambda hw: st.tuples(arrays(np.int64, hw, elements=st.integers(0, 4)),
                         arrays(np.int64, hw, elements=st.integers(0, 3)),
                         st.integers(0, 3)))


@settings(max_examples=60)
@given(small_maps)
def test_boundary_metrics_match_explicit_loops(maps):
    lab, gt, r = maps
    assert M.boundary_recall_precision(lab, gt, tolerance=r) == pytest.approx(_slow_rec_pre(lab, gt, r))


@settings(max_examples=60)
@given(small_maps)
def test_region_metrics_match_explicit_loops(maps):
    lab, gt, _ = maps
    asa, oe, ue_np, levin = _slow_region_metrics(lab, gt)
    assert M.achievable_segmentation_accuracy(lab, gt) == pytest.approx(asa)
    assert M.oversegmentation_error(lab, gt) == pytest.approx(oe)
    assert M.np_undersegmentation_error(lab, gt) == pytest.approx(ue_np)
    assert M.levin_undersegmentation_error(lab, gt) == pytest.approx(levin)


@settings(max_examples=30)
@given(st.integers(0, 2**31 - 1))
def test_compactness_and_ev_match_explicit_loops(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 7, size=2)
    lab = rng.integers(0, 4, size=(h, w))
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    # compactness: per pixel, count sides facing another label or the border
    perim, area = {}, {}
    for i in range(h):
        for j in range(w):
            c = 0
            for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
                if not (0 <= a < h and 0 <= b < w) or lab[a, b] != lab[i, j]:
                    c += 1
            perim[lab[i, j]] = perim.get(lab[i, j], 0) + c
            area[lab[i, j]] = area.get(lab[i, j], 0) + 1
    co = sum(area[s] * 4 * math.pi * area[s] / perim[s] ** 2 for s in area) / (h * w)
    assert M.compactness(lab) == pytest.approx(co)
    # explained variation
    pix = img.astype(float)
    mu = pix.reshape(-1, 3).mean(0)
    top = bottom = 0.0
    for i in range(h):
        for j in range(w):
            m = pix[lab == lab[i, j]].mean(0)
            top += np.sum((m - mu) ** 2)
            bottom += np.sum((pix[i, j] - mu) ** 2)
    if bottom > 0:
        assert M.explained_variation(lab, img) == pytest.approx(top / bottom)


def test_mean_distance_to_edge_uses_opencv_3x3_l2():
    # superpixel boundary at columns 4, 5; GT boundary at columns 6, 7: the 3x3 L2 chamfer
    # distances are 0.955 and 1.91 (OpenCV's a = 0.955) -> mean 1.4325
    cols = np.arange(12)[None, :].repeat(5, 0)
    lab, gt = (cols >= 5).astype(int), (cols >= 7).astype(int)
    assert M.mean_distance_to_edge(lab, gt) == pytest.approx((0.955 + 1.91) / 2, abs=1e-4)
    assert M.mean_distance_to_edge(gt, gt) == 0.0
    assert math.isnan(M.mean_distance_to_edge(lab, np.zeros_like(gt)))
    assert M.mean_distance_to_edge(np.zeros_like(lab), gt) == math.inf


# --------------------------------------------------------------------------------------------
# evaluate / aggregate
# --------------------------------------------------------------------------------------------

def test_evaluate_rows_match_single_metric_functions(rng):
    lab = np.kron(_random_map(rng, (6, 8), 20), np.ones((4, 4), int))
    gts = [np.kron(_random_map(rng, (3, 4), 3), np.ones((8, 8), int)) + 1 for _ in range(3)]
    img = rng.integers(0, 256, size=lab.shape + (3,), dtype=np.uint8)
    df = M.evaluate(lab, gts, img, image_id="x")
    assert list(df.columns) == ["image", "ground_truth", *M.METRIC_COLUMNS]
    assert len(df) == 3 and (df["image"] == "x").all() and df["ground_truth"].tolist() == [0, 1, 2]
    for t, gt in enumerate(gts):
        row = df.iloc[t]
        assert row["asa"] == pytest.approx(M.achievable_segmentation_accuracy(lab, gt))
        assert row["ue"] == pytest.approx(M.undersegmentation_error(lab, gt))
        assert row["oe"] == pytest.approx(M.oversegmentation_error(lab, gt))
        assert row["ue_np"] == pytest.approx(M.np_undersegmentation_error(lab, gt))
        assert row["ue_levin"] == pytest.approx(M.levin_undersegmentation_error(lab, gt))
        assert (row["rec"], row["pre"]) == pytest.approx(M.boundary_recall_precision(lab, gt))
        assert row["mde"] == pytest.approx(M.mean_distance_to_edge(lab, gt))
    row = df.iloc[0]
    assert row["co"] == pytest.approx(M.compactness(lab))
    assert row["ev"] == pytest.approx(M.explained_variation(lab, img))
    assert row["sse_rgb"] == pytest.approx(M.sum_of_squared_error_rgb(lab, img))
    assert row["sse_xy"] == pytest.approx(M.sum_of_squared_error_xy(lab))
    assert row["icv"] == pytest.approx(M.intra_cluster_variation(lab, img))
    assert row["cd"] == pytest.approx(M.contour_density(lab))
    assert row["sp"] == M.number_of_superpixels(lab)
    # without the image the colour columns are NaN, the others unchanged
    no_img = M.evaluate(lab, gts[0])
    assert np.isnan(no_img.loc[0, "ev"]) and no_img.loc[0, "asa"] == df.loc[0, "asa"]


def test_aggregate_modes_by_hand():
    # image a has one GT, image b three; mean over pairs weighs b three times
    df = pd.DataFrame({
        "image": ["a", "b", "b", "b"],
        "asa": [0.9, 0.6, 0.8, 1.0],
        "ue_np": [0.1, 0.3, 0.2, 0.0],
        "sp": [100, 200, 200, 200],
    })
    mean = M.aggregate(df)
    assert mean["asa"] == pytest.approx((0.9 + 0.6 + 0.8 + 1.0) / 4)
    assert mean["sp"] == pytest.approx(175)
    worst = M.aggregate(df, "worst")
    assert worst["asa"] == pytest.approx((0.9 + 0.6) / 2)     # min of a higher-is-better metric
    assert worst["ue_np"] == pytest.approx((0.1 + 0.3) / 2)   # max of an error
    assert worst["sp"] == pytest.approx(150)                  # per image, then over images
    best = M.aggregate(df, "best")
    assert best["asa"] == pytest.approx((0.9 + 1.0) / 2)
    assert best["ue_np"] == pytest.approx((0.1 + 0.0) / 2)
    with pytest.raises(ValueError, match="mode"):
        M.aggregate(df, "median")
    with pytest.raises(ValueError, match="empty"):
        M.aggregate(df.iloc[:0])
    with pytest.raises(ValueError, match="image column"):
        M.aggregate(df.drop(columns="image"), "worst")


@pytest.mark.parametrize("r", [1, 2, 3, 5, 8, 9])
def test_square_dilation_matches_scipy_binary_dilation(rng, r):
    from scipy import ndimage

    mask = rng.random((23, 31)) < 0.03
    want = ndimage.binary_dilation(mask, structure=np.ones((2 * r + 1, 2 * r + 1), bool), border_value=0)
    np.testing.assert_array_equal(M._dilate(mask, r), want)
