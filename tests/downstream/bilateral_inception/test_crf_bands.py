"""The +CRF row, the boundary-band (trimap) score and the no-training superpixel average."""

import json

import numpy as np
import pytest

from downstream.bilateral_inception.crf import CRF_GRID, CRFParams, crf_available, crf_grid, dense_crf
from downstream.bilateral_inception.evaluation import superpixel_average
from downstream.bilateral_inception.metrics import (
    BAND_WIDTHS,
    banded_confusion,
    boundary_distance,
    confusion_matrix,
    mean_iou,
)

needs_crf = pytest.mark.skipif(not crf_available(), reason="pydensecrf2 is not installed (optional extra)")


# ---------------------------------------------------------------------------------- boundary bands
def test_boundary_distance_by_hand():
    label = np.array([[0, 0, 0, 1, 1, 1]])
    assert boundary_distance(label).tolist() == [[2, 1, 0, 0, 1, 2]]
    # void is a label of its own: a void band between two objects is a boundary on both sides
    label = np.array([[0, 0, 255, 255, 1, 1]])
    assert boundary_distance(label).tolist() == [[1, 0, 0, 0, 0, 1]]
    # rows count too (4-neighbours), and the distance is Euclidean
    label = np.zeros((5, 5), int)
    label[2, 2] = 1
    d = boundary_distance(label)
    # boundary pixels: the centre and its 4 neighbours; (0, 0) is nearest to (1, 2) or (2, 1)
    assert d[2, 2] == 0 and d[1, 2] == 0 and d[1, 1] == 1 and d[0, 0] == pytest.approx(np.sqrt(5))
    assert np.isinf(boundary_distance(np.ones((3, 4), int))).all()  # no boundary at all
    with pytest.raises(ValueError, match="label map"):
        boundary_distance(np.zeros((0, 3)))


def test_banded_confusion_by_hand():
    target = np.array([[0, 0, 0, 0, 1, 1, 1, 255]])
    pred = np.array([[0, 0, 0, 1, 1, 1, 0, 1]])
    # distances to the 0|1 edge (pixels 3 and 4) and the 1|void edge (6 and 7): 3 2 1 0 0 1 0 0
    stack = banded_confusion(pred, target, 2, widths=(0.5, 1, 2))
    assert stack.shape == (4, 2, 2)
    assert np.array_equal(stack[0], confusion_matrix(pred, target, 2))
    # band 0.5: pixels 3, 4, 6 (7 is void): gt 0 -> 1, gt 1 -> 1, gt 1 -> 0
    assert stack[1].tolist() == [[0, 1], [1, 1]]
    # band 1: adds pixels 2 (0 -> 0) and 5 (1 -> 1)
    assert stack[2].tolist() == [[1, 1], [1, 2]]
    # band 2: adds pixel 1 (0 -> 0)
    assert stack[3].tolist() == [[2, 1], [1, 2]]
    assert stack[1:].sum(axis=(1, 2)).tolist() == [3, 5, 6]  # nested bands
    with pytest.raises(ValueError, match="positive"):
        banded_confusion(pred, target, 2, widths=(0,))


def test_wider_bands_contain_narrower_ones_and_reach_the_whole_image():
    rng = np.random.default_rng(1)
    target = np.zeros((40, 50), np.uint8)
    target[10:30, 15:40] = 1
    target[rng.random(target.shape) < 0.02] = 255
    pred = (rng.random(target.shape) < 0.5).astype(np.uint8)
    stack = banded_confusion(pred, target, 2, widths=BAND_WIDTHS + (1000,))
    totals = stack.sum(axis=(1, 2))
    assert (np.diff(totals[1:]) >= 0).all() and totals[-1] == totals[0]
    assert np.array_equal(stack[-1], stack[0])


# ---------------------------------------------------------------------------------- superpixel average
def test_superpixel_average_by_hand():
    probs = np.array([[[0.9, 0.1, 0.6], [0.2, 0.3, 0.4]],
                      [[0.1, 0.9, 0.4], [0.8, 0.7, 0.6]]], np.float32)  # (K=2, 2, 3)
    sp = np.array([[0, 0, 1], [2, 2, 1]])
    avg = superpixel_average(probs, sp)
    assert np.allclose(avg[0], [[0.5, 0.5, 0.5], [0.25, 0.25, 0.5]])
    assert np.allclose(avg.sum(0), 1)
    assert superpixel_average(probs, sp).argmax(0).tolist() == [[0, 0, 0], [1, 1, 0]]
    with pytest.raises(ValueError, match="do not match"):
        superpixel_average(probs, sp[:, :2])
    with pytest.raises(ValueError, match="non-negative integer"):
        superpixel_average(probs, sp.astype(float))


# ---------------------------------------------------------------------------------- the dense CRF
def test_crf_params_and_grid_are_checked():
    grid = crf_grid()
    assert len(grid) == np.prod([len(v) for v in CRF_GRID.values()]) == 27
    assert len(set(grid)) == len(grid) and all(p.iterations == 5 for p in grid)
    for bad in ({"bi_w": 0}, {"bi_xy_std": float("nan")}, {"bi_rgb_std": -1}, {"iterations": 0},
                {"iterations": 2.5}):
        with pytest.raises(ValueError, match="CRF"):
            CRFParams(**bad)


def _blurred_edge_case():
    """Left half dark red, right half light blue (colour edge at x = 30); the class probabilities
    change smoothly around x = 24: the trunk's edge is blurred and 6 px off."""
    h, w = 30, 60
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :30] = (150, 30, 30)
    image[:, 30:] = (60, 160, 230)
    x = np.arange(w)
    p1 = 1 / (1 + np.exp(-(x - 23.5) / 6.0))  # P(class 1) rises across x = 23.5
    probs = np.stack([1 - p1, p1])[:, None, :].repeat(h, 1).astype(np.float32)
    truth = (x >= 30)[None].repeat(h, 0).astype(int)
    return image, probs, truth


@needs_crf
def test_crf_snaps_a_blurred_label_edge_to_the_colour_edge():
    image, probs, truth = _blurred_edge_case()
    before = probs.argmax(0)
    assert (before != truth).mean() == pytest.approx(6 / 60)  # columns 24..29 on the wrong side
    q = dense_crf(image, probs, CRFParams(bi_w=10, bi_xy_std=30, bi_rgb_std=10, iterations=10))
    assert q.shape == probs.shape and np.allclose(q.sum(0), 1, atol=1e-4)
    after = q.argmax(0)
    assert (after == truth).all()  # the edge moved onto the colour edge
    # the colour edge is what moved it: without colour contrast the result is not the colour edge
    flat = np.full_like(image, 128)
    assert not (dense_crf(flat, probs, CRFParams(bi_w=10, bi_xy_std=30, bi_rgb_std=10)).argmax(0) == truth).all()


@needs_crf
def test_dense_crf_rejects_bad_input():
    image, probs, _ = _blurred_edge_case()
    with pytest.raises(ValueError, match="uint8"):
        dense_crf(image.astype(float), probs)
    with pytest.raises(ValueError, match="matching"):
        dense_crf(image, probs[:, :10])
    bad = probs.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        dense_crf(image, bad)


def test_mean_iou_of_summed_bands_equals_the_band_score():
    # the band score of a set is the mIoU of the summed band matrices (as for whole images)
    rng = np.random.default_rng(2)
    stacks = []
    for _ in range(3):
        t = rng.integers(0, 3, (12, 14))
        p = np.where(rng.random(t.shape) < 0.8, t, rng.integers(0, 3, t.shape))
        stacks.append(banded_confusion(p, t, 3, widths=(1, 2)))
    stacks = np.stack(stacks)
    assert mean_iou(stacks.sum(0))[0] == pytest.approx(mean_iou(stacks[:, 0].sum(0)))
    assert json.dumps(stacks.sum(0).tolist())  # plain ints: the committed confusion files are portable


# ---------------------------------------------------------------------------------- cached evaluations
class _Split:
    name, ids = "toy", ["a", "b"]


def test_cached_evaluation_computes_once_and_recomputes_damaged_files(tmp_path):
    from downstream.bilateral_inception.metrics import ConfusionMatrix
    from downstream.bilateral_inception.pipeline import BIPipeline

    pipe = BIPipeline(tmp_path / "cache", progress=False)
    calls = []

    def compute(per_image, predictions):
        calls.append(1)
        cm = ConfusionMatrix(2)
        for k, sid in enumerate(_Split.ids):
            m = np.array([[3 + k, 1], [0, 2]])
            cm.matrix += m
            per_image[sid] = m
            predictions[sid] = np.full((2, 2), k, np.uint8)
        return cm

    first = pipe.cached_evaluation(tmp_path / "eval", "x", ["p"], _Split, compute, keep_predictions=["b"])
    again = pipe.cached_evaluation(tmp_path / "eval", "x", ["p"], _Split, compute, keep_predictions=["b"])
    assert len(calls) == 1 and again["miou"] == first["miou"]
    assert np.array_equal(again["per_image"], first["per_image"]) and first["per_image"].shape == (2, 2, 2)
    assert list(again["predictions"]) == ["b"] and (again["predictions"]["b"] == 1).all()
    other = pipe.cached_evaluation(tmp_path / "eval", "x", ["q"], _Split, compute)  # another key
    assert len(calls) == 2 and np.array_equal(other["per_image"], first["per_image"])
    for p in (tmp_path / "eval").iterdir():
        p.write_bytes(b"garbage")  # damaged files are recomputed, never trusted
    pipe.cached_evaluation(tmp_path / "eval", "x", ["p"], _Split, compute, keep_predictions=["b"])
    assert len(calls) == 3


def test_cached_evaluation_miou_is_that_of_the_summed_matrices(tmp_path):
    from downstream.bilateral_inception.metrics import ConfusionMatrix
    from downstream.bilateral_inception.pipeline import BIPipeline

    mats = {"a": np.array([[3, 1], [0, 2]]), "b": np.array([[4, 1], [0, 2]])}

    def compute(per_image, predictions):
        cm = ConfusionMatrix(2)
        for sid, m in mats.items():
            cm.matrix += m
            per_image[sid] = m
        return cm

    res = BIPipeline(tmp_path, progress=False).cached_evaluation(tmp_path / "e", "y", [], _Split, compute)
    # summed [[7, 2], [0, 4]]: IoU 7/9 and 4/6
    assert res["miou"] == pytest.approx((7 / 9 + 4 / 6) / 2)
