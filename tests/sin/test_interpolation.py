import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sin.connectivity import is_4connected
from sin.geometry import level_shapes, network_size
from sin.interpolation import (
    expand,
    hard_interpolate,
    hard_interpolate_decisions,
    logits_to_decisions,
    seed_map,
    soft_interpolate,
)
from sin.model import STEPS
from sin.pooling import Assignment, superpixel_pool, superpixel_unpool


def random_logits(n, m, batch=1, scale=1.0, seed=0, dtype=torch.float32, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    shapes = level_shapes(n, m)
    out = []
    for step in STEPS:
        t = (torch.randn((batch, 2) + shapes[step], generator=g) * scale).to(dtype)
        out.append(t.requires_grad_(requires_grad))
    return out


def saturate(lg):
    """Scores whose softmax is exactly 0/1 in float32, with the same argmax as ``lg``."""
    take_next = (lg[:, 1] > lg[:, 0]).float()
    return torch.stack([torch.zeros_like(take_next), 200.0 * take_next - 100.0], dim=1)


def test_expand_hand_computed():
    labels = torch.tensor([[[0, 1], [2, 3]]], dtype=torch.int32)
    h = expand(labels, torch.tensor([[[False], [True]]]), "h")
    assert h.tolist() == [[[0, 0, 1], [2, 3, 3]]]
    v = expand(h, torch.tensor([[[False, True, True]]]), "v")
    assert v.tolist() == [[[0, 0, 1], [0, 3, 3], [2, 3, 3]]]


def test_expand_rejects_wrong_decision_shape():
    with pytest.raises(ValueError, match="decision shape"):
        expand(seed_map(2, 2), torch.zeros(1, 2, 2, dtype=torch.bool), "h")


def test_ties_go_to_first_neighbour():
    logits = [torch.zeros((1, 2) + s) for s in level_shapes(2, 2).values()]
    labels = hard_interpolate(logits)[0]
    # all decisions "left/top": every pixel takes the seed at the top-left of its cell
    ys, xs = np.mgrid[0:17, 0:17]
    expected = np.where(ys == 16, 2, 0) + np.where(xs == 16, 1, 0)
    assert np.array_equal(labels.numpy(), expected)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 6), m=st.integers(1, 6), seed=st.integers(0, 10_000),
       scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_hard_interpolation_properties(n, m, seed, scale):
    logits = random_logits(n, m, batch=2, seed=seed, scale=scale)
    labels = hard_interpolate(logits)
    assert labels.dtype == torch.int32
    assert tuple(labels.shape) == (2,) + network_size(n, m)
    for lab in labels.numpy():
        assert np.array_equal(np.unique(lab), np.arange(n * m))  # exactly n*m superpixels
        assert is_4connected(lab)
        # every seed keeps its own id
        assert np.array_equal(lab[::16, ::16], np.arange(n * m).reshape(n, m))
        # every pixel takes one of the 4 seeds at the corners of its grid cell
        ys, xs = np.mgrid[0:lab.shape[0], 0:lab.shape[1]]
        row, col = lab // m, lab % m
        cy = np.minimum(ys // 16, max(n - 2, 0))
        cx = np.minimum(xs // 16, max(m - 2, 0))
        assert np.all((row - cy >= 0) & (row - cy <= 1) & (col - cx >= 0) & (col - cx <= 1))


def test_hard_interpolation_matches_gather_definition():
    """Reference: the spec's gather formulation, written with explicit loops on a tiny grid."""
    n, m = 2, 3
    logits = random_logits(n, m, seed=3)
    ref = np.arange(n * m).reshape(n, m)
    for step, lg in zip(STEPS, logits):
        p = lg[0].numpy()
        if step[1] == "h":
            new = np.zeros((ref.shape[0], 2 * ref.shape[1] - 1), dtype=int)
            for i in range(new.shape[0]):
                for j in range(new.shape[1]):
                    if j % 2 == 0:
                        new[i, j] = ref[i, j // 2]
                    else:
                        new[i, j] = ref[i, j // 2 + 1] if np.argmax(p[:, i, j]) == 1 else ref[i, j // 2]
        else:
            new = np.zeros((2 * ref.shape[0] - 1, ref.shape[1]), dtype=int)
            for i in range(new.shape[0]):
                for j in range(new.shape[1]):
                    if i % 2 == 0:
                        new[i, j] = ref[i // 2, j]
                    else:
                        new[i, j] = ref[i // 2 + 1, j] if np.argmax(p[:, i, j]) == 1 else ref[i // 2, j]
        ref = new
    assert np.array_equal(hard_interpolate(logits)[0].numpy(), ref)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), m=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_soft_interpolation_rows_sum_to_one_and_saturate_to_hard(n, m, seed):
    logits = random_logits(n, m, seed=seed)
    soft = soft_interpolate(logits)
    assert soft.weight.shape[1] == 4 and soft.num_superpixels == n * m
    assert torch.allclose(soft.weight.sum(1), torch.ones(1), atol=1e-5)
    assert (soft.weight >= 0).all()
    assert int(soft.index.min()) >= 0 and int(soft.index.max()) < n * m
    # saturated association scores: the soft assignment is one-hot on the hard label
    saturated = soft_interpolate([saturate(lg) for lg in logits])
    hard = hard_interpolate(logits).long()
    assert torch.equal(saturated.hard_labels(), hard)
    assert torch.allclose(saturated.weight.max(1).values, torch.ones(1))
    # small temperature reaches the same map
    assert torch.equal(soft_interpolate(logits, temperature=1e-4).hard_labels(), hard)


def test_soft_interpolation_is_the_marginal_of_random_hard_maps():
    """Independent reference: sample decisions from the scores, interpolate hard, count."""
    n, m, draws = 2, 3, 4000
    logits = random_logits(n, m, seed=11, scale=1.0)
    soft = soft_interpolate(logits).to_dense()[0]  # (K, H, W)
    g = torch.Generator().manual_seed(0)
    decisions = []
    for step, lg in zip(STEPS, logits):
        odd = lg[:, :, :, 1::2] if step[1] == "h" else lg[:, :, 1::2, :]
        p_next = torch.softmax(odd, dim=1)[:, 1]
        decisions.append(torch.rand((draws,) + tuple(p_next.shape[1:]), generator=g) < p_next)
    hard = hard_interpolate_decisions(decisions, n, m).long()  # (draws, H, W)
    freq = torch.nn.functional.one_hot(hard, n * m).float().mean(0).permute(2, 0, 1)
    assert (freq - soft).abs().max() < 0.05  # 4000 draws: 4 sigma is about 0.032


def test_soft_interpolation_gradcheck():
    n, m = 2, 2
    base = random_logits(n, m, seed=5, dtype=torch.float64)
    feats = torch.randn(1, 2, 17, 17, dtype=torch.float64)
    probe = torch.randn(1, 2, 17, 17, dtype=torch.float64)

    def f(l3h, l1v, l0h):
        logits = list(base)
        logits[0], logits[5], logits[6] = l3h, l1v, l0h
        a = soft_interpolate(logits)
        pooled, _ = superpixel_pool(feats, a)
        return (superpixel_unpool(pooled, a) * probe).sum()

    inputs = [base[i].clone().requires_grad_(True) for i in (0, 5, 6)]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)


def test_soft_interpolation_gradients_are_finite_for_extreme_scores():
    logits = random_logits(3, 4, seed=2, scale=50.0, requires_grad=True)
    a = soft_interpolate(logits)
    feats = torch.rand(1, 3, *a.shape)
    pooled, mass = superpixel_pool(feats, a)
    loss = ((superpixel_unpool(pooled, a) - feats) ** 2).mean()
    loss.backward()
    for lg in logits:
        assert lg.grad is not None and torch.isfinite(lg.grad).all()


def test_logits_to_decisions_rejects_bad_axis():
    with pytest.raises(ValueError):
        logits_to_decisions(torch.zeros(1, 2, 3, 3), "x")


def test_pool_unpool_hard_labels_hand_computed():
    labels = torch.tensor([[0, 0, 1], [2, 2, 1]])
    feats = torch.tensor([[[1.0, 3.0, 5.0], [2.0, 4.0, 7.0]]]).unsqueeze(0)  # (1, 1, 2, 3)
    a = Assignment.from_labels(labels, num_superpixels=4)
    pooled, mass = superpixel_pool(feats, a)
    assert mass.tolist() == [[2.0, 2.0, 2.0, 0.0]]
    assert torch.allclose(pooled, torch.tensor([[[2.0, 6.0, 3.0, 0.0]]]))
    back = superpixel_unpool(pooled, a)
    assert torch.allclose(back, torch.tensor([[[[2.0, 2.0, 6.0], [3.0, 3.0, 6.0]]]]))


def test_assignment_validation():
    with pytest.raises(ValueError):
        Assignment.from_labels(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError):
        Assignment.from_labels(torch.tensor([[-1, 0]]))
    with pytest.raises(ValueError):
        Assignment.from_labels(torch.tensor([[0, 5]]), num_superpixels=3)
