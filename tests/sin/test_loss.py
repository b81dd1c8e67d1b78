"""Hand-computed cases of the SIN loss on a 17x17 target (level grids 2x3 ... 9x17)."""

import math

import pytest
import torch

from sin.geometry import level_shapes
from sin.loss import sin_loss, step_targets
from sin.model import STEPS

LOG2 = math.log(2.0)


def vertical_edge_target():
    # segment 0 left of column 6, segment 1 from column 6 on: only horizontal steps see it
    t = torch.zeros(1, 17, 17, dtype=torch.long)
    t[:, :, 6:] = 1
    return t


def const_logits(l0=0.0, l1=0.0):
    out = []
    for shape in level_shapes(2, 2).values():
        t = torch.empty((1, 2) + shape)
        t[:, 0], t[:, 1] = l0, l1
        out.append(t)
    return out


def test_step_targets_hand_computed():
    t = vertical_edge_target()
    # level 3, horizontal: grid T[::16, ::8] has columns x = 0, 8, 16 -> segments 0, 1, 1.
    cls, w = step_targets(t, "3h")
    assert cls.tolist() == [[[1], [1]]] and w.tolist() == [[[1.0], [1.0]]]
    # level 2, horizontal: columns 0,4,8,12,16 -> 0,0,1,1,1; inserted x=4 (valid, left), x=12 (both same)
    cls, w = step_targets(t, "2h")
    assert cls[0, :, 0].tolist() == [0, 0, 0] and w[0].tolist() == [[1.0, 0.0]] * 3
    # level 1, horizontal (rows every 4 px, columns every 2 px): only x=6 is valid, target "right"
    cls, w = step_targets(t, "1h")
    assert w.shape == (1, 5, 4) and w[0].tolist() == [[0.0, 1.0, 0.0, 0.0]] * 5
    assert cls[0, :, 1].tolist() == [1] * 5
    # level 0, horizontal: x=5 sits left of the edge: neighbours 4 (same) and 6 (other) -> "left"
    cls, w = step_targets(t, "0h")
    assert w.sum() == 9 and w[0, :, 2].tolist() == [1.0] * 9 and cls[0, :, 2].tolist() == [0] * 9
    for step in ("3v", "2v", "1v", "0v"):  # a vertical edge never separates vertical neighbours
        assert step_targets(t, step)[1].sum() == 0


def test_step_targets_ignores_pixels_matching_neither_neighbour():
    t = torch.zeros(1, 17, 17, dtype=torch.long)
    t[:, :, 5] = 7  # a one-pixel-wide stripe: x=5 differs from both neighbours
    cls, w = step_targets(t, "0h")
    assert w[0, :, 2].sum() == 0  # x = 5 is inserted element index 2: ignored
    assert w.sum() == 0


def test_step_targets_ignore_index():
    t = vertical_edge_target()
    t[:, 0:4, :] = 255
    _, w = step_targets(t, "0h", ignore_index=255)
    assert w.sum() == 9 - 2  # rows 0 and 2 of the 9 sampled rows are unlabelled


def test_loss_zero_logits_hand_computed():
    # every counted element costs log 2; counts per step: 3h 2, 2h 3, 1h 5, 0h 9
    expected = 0.005 * LOG2 * (20 * 2 + 10 * 3 + 5 * 5 + 2.5 * 9)
    loss = sin_loss(const_logits(), vertical_edge_target())
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # the original double-softmax variant agrees at zero logits (softmax(0.5, 0.5) is uniform)
    assert sin_loss(const_logits(), vertical_edge_target(), on_probabilities=True).item() == pytest.approx(expected)


def test_loss_on_logits_vs_on_probabilities():
    t = vertical_edge_target()
    logits = const_logits(0.0, 2.0)  # every element says "right" with logit margin 2
    ce_right, ce_left = math.log1p(math.exp(-2.0)), math.log1p(math.exp(2.0))
    # targets: 3h right (2), 2h left (3), 1h right (5), 0h left (9)
    expected = 0.005 * (20 * 2 * ce_right + 10 * 3 * ce_left + 5 * 5 * ce_right + 2.5 * 9 * ce_left)
    assert sin_loss(logits, t).item() == pytest.approx(expected, rel=1e-6)
    p1 = 1 / (1 + math.exp(-2.0))
    p0 = 1 - p1
    dbl_right, dbl_left = math.log1p(math.exp(p0 - p1)), math.log1p(math.exp(p1 - p0))
    expected_dbl = 0.005 * (20 * 2 * dbl_right + 10 * 3 * dbl_left + 5 * 5 * dbl_right + 2.5 * 9 * dbl_left)
    assert sin_loss(logits, t, on_probabilities=True).item() == pytest.approx(expected_dbl, rel=1e-6)


def test_loss_weights_and_terms():
    t = vertical_edge_target()
    loss, terms = sin_loss(const_logits(), t, weights_h=(1, 0, 0, 0), weights_v=(0, 0, 0, 0),
                           scale=1.0, return_terms=True)
    assert loss.item() == pytest.approx(2 * LOG2, rel=1e-6)
    assert set(terms) == set(STEPS) and terms["0h"].item() == pytest.approx(9 * LOG2, rel=1e-6)


def test_loss_batch_mean_and_gradient():
    t = torch.cat([vertical_edge_target(), torch.zeros(1, 17, 17, dtype=torch.long)])
    logits = [lg.repeat(2, 1, 1, 1).requires_grad_(True) for lg in const_logits()]
    loss = sin_loss(logits, t)
    # the constant image contributes nothing; mean over the batch halves the first image's loss
    assert loss.item() == pytest.approx(0.5 * 0.005 * LOG2 * 117.5, rel=1e-6)
    loss.backward()
    assert logits[6].grad[1].abs().sum() == 0 and logits[6].grad[0].abs().sum() > 0


def test_loss_input_errors():
    with pytest.raises(ValueError, match="8 logit"):
        sin_loss(const_logits()[:7], vertical_edge_target())
    with pytest.raises(ValueError, match="does not match"):
        sin_loss(const_logits(), torch.zeros(1, 16, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        sin_loss(const_logits(), torch.zeros(1, 17, 17))
