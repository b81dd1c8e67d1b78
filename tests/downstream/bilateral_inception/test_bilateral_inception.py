"""Bilateral Inception: superpixel features, the BI module and the BI head (hand-computed cases, properties)."""

import math

import numpy as np
import pytest
import torch

from downstream.bilateral_inception.bi_data import BIExample, collate_bi, histogram_cross_entropy
from downstream.bilateral_inception.bilateral import BilateralInception, FeatureTransform, bilateral_kernels
from downstream.bilateral_inception.features import grid_assignment, grid_coordinates, superpixel_features
from downstream.bilateral_inception.model import BilateralInceptionHead
from sin.pooling import Assignment, superpixel_unpool


def three_superpixel_image():
    """4x6 image, three 4x2 vertical stripes: red, green, blue (superpixels 0, 1, 2)."""
    labels = np.repeat(np.array([[0, 0, 1, 1, 2, 2]]), 4, axis=0)
    image = np.zeros((4, 6, 3), np.float32)
    image[:, 0:2, 0] = 1.0
    image[:, 2:4, 1] = 1.0
    image[:, 4:6, 2] = 0.5
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0), torch.from_numpy(labels).unsqueeze(0)


def test_superpixel_features_hand_computed():
    image, labels = three_superpixel_image()
    sp = superpixel_features(image, Assignment.from_labels(labels))
    # mean row 1.5 for all; mean columns 0.5, 2.5, 4.5; colours 255 * (1,0,0), (0,1,0), (0,0,.5)
    expected = np.array([
        [0.15, 0.05, 25.5, 0.0, 0.0, 0.015, 0.005],
        [0.15, 0.25, 0.0, 25.5, 0.0, 0.015, 0.025],
        [0.15, 0.45, 0.0, 0.0, 12.75, 0.015, 0.045],
    ]).T
    np.testing.assert_allclose(sp.features[0].numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(sp.mass[0].numpy(), [8, 8, 8])
    assert sp.mask.all()


def test_bi_equals_hand_computed_gaussian_filtering():
    """Two filters ("xy" theta=1, "rgbxy" theta=0.002) between the 3 superpixels, all by hand."""
    image, labels = three_superpixel_image()
    sp = superpixel_features(image, Assignment.from_labels(labels))
    f = sp.features[0].double().numpy()  # (7, 3), identity Lambda
    values = np.array([[1.0, 2.0, 3.0], [10.0, 0.0, -5.0]])  # C = 2 channels at the 3 superpixels
    weights = np.array([[0.5, 2.0], [1.5, -1.0]])  # w_h per channel: (H=2, C=2)
    thetas = [1.0, 0.002]
    spaces = [slice(0, 2), slice(2, 7)]

    expected = np.zeros((2, 3))
    for q in range(3):
        for h in range(2):
            unnorm = []
            for p in range(3):
                d2 = sum((f[d, q] - f[d, p]) ** 2 for d in range(7)[spaces[h]])
                unnorm.append(math.exp(-thetas[h] * d2))
            z = sum(unnorm)
            for c in range(2):
                filtered = sum(values[c, p] * unnorm[p] / z for p in range(3))
                expected[c, q] += weights[h, c] * filtered

    bi = BilateralInception(2, ("xy", "rgbxy"), theta_init=thetas).double()
    with torch.no_grad():
        bi.weight.copy_(torch.from_numpy(weights))
        bi.theta_raw.copy_(torch.tensor(thetas, dtype=torch.float64))  # exact doubles, not float32 inits
    feats = sp.features.double()
    out = bi(torch.from_numpy(values).unsqueeze(0), feats, feats)
    np.testing.assert_allclose(out[0].detach().numpy(), expected, rtol=1e-10)
    # sanity: the values are not trivially the identity or the mean
    assert not np.allclose(expected, (weights.sum(0)[:, None] * values))


def test_kernels_rows_sum_to_one_and_masked_sources_get_zero():
    torch.manual_seed(0)
    src, tgt = torch.randn(2, 7, 5), torch.randn(2, 7, 4)
    mask = torch.tensor([[True, False, True, True, False], [True] * 5])
    k = bilateral_kernels(src, tgt, torch.tensor([0.5, 2.0]), ("xy", "rgbxy"), source_mask=mask)
    assert k.shape == (2, 2, 4, 5)
    torch.testing.assert_close(k.sum(-1), torch.ones(2, 2, 4))
    assert (k[0, :, :, 1] == 0).all() and (k[0, :, :, 4] == 0).all()


def test_no_valid_source_gives_zeros_not_nan():
    k = bilateral_kernels(torch.randn(1, 7, 3), torch.randn(1, 7, 2), torch.ones(1), ("xy",),
                          source_mask=torch.zeros(1, 3, dtype=torch.bool))
    assert torch.isfinite(k).all() and (k == 0).all()


def test_theta_zero_is_uniform_over_valid_sources_only():
    # the original turns its -1e10 ignore values into 0 when theta relus to 0 (spec pitfall): not here
    mask = torch.tensor([[True, True, False, True]])
    k = bilateral_kernels(torch.randn(1, 7, 4), torch.randn(1, 7, 2), torch.zeros(1), ("rgbxy",), source_mask=mask)
    torch.testing.assert_close(k[0, 0], torch.tensor([[1 / 3, 1 / 3, 0, 1 / 3]] * 2))


def test_source_counts_equal_duplicated_sources():
    torch.manual_seed(1)
    src, tgt, vals = torch.randn(1, 7, 3), torch.randn(1, 7, 4), torch.randn(1, 5, 3)
    bi = BilateralInception(5, ("rgbxy", "xy", "xy"), theta_init=[0.3, 1.0, 0.1], weight_init="normal",
                            weight_std=1.0)
    counts = torch.tensor([[2.0, 1.0, 3.0]])
    rep = torch.tensor([0, 0, 1, 2, 2, 2])
    dup = bi(vals[:, :, rep], src[:, :, rep], tgt)
    grouped = bi(vals, src, tgt, source_counts=counts)
    torch.testing.assert_close(grouped, dup)


def test_gradcheck_lambda_and_theta():
    torch.manual_seed(0)
    feats_src = torch.randn(1, 7, 4, dtype=torch.float64)
    feats_tgt = torch.randn(1, 7, 3, dtype=torch.float64)
    values = torch.randn(1, 2, 4, dtype=torch.float64)
    bi = BilateralInception(2, ("rgbxy", "xy"), weight_init="normal", weight_std=1.0).double()
    lam0 = torch.eye(7, dtype=torch.float64) + 0.1 * torch.randn(7, 7, dtype=torch.float64)
    theta0 = torch.tensor([0.7, 1.3], dtype=torch.float64)  # away from the ReLU kink at 0

    def f(lam, theta_raw):
        params = {"theta_raw": theta_raw, "weight": bi.weight}
        t = FeatureTransform(7).double()
        src = torch.func.functional_call(t, {"weight": lam}, (feats_src,))
        tgt = torch.func.functional_call(t, {"weight": lam}, (feats_tgt,))
        return torch.func.functional_call(bi, params, (values, src, tgt))

    assert torch.autograd.gradcheck(f, (lam0.requires_grad_(), theta0.requires_grad_()), eps=1e-6, atol=1e-5)


def test_module_input_errors():
    with pytest.raises(ValueError, match="space"):
        BilateralInception(3, ("xy", "lab"))
    with pytest.raises(ValueError, match="theta_init"):
        BilateralInception(3, ("xy",), theta_init=-1.0)
    with pytest.raises(ValueError, match="weight_init"):
        BilateralInception(3, ("xy",), weight_init="uniform")
    bi = BilateralInception(3, ("xy",))
    with pytest.raises(ValueError, match="values"):
        bi(torch.randn(1, 4, 5), torch.randn(1, 7, 5), torch.randn(1, 7, 2))
    with pytest.raises(ValueError, match="do not match"):
        bi(torch.randn(1, 3, 5), torch.randn(1, 7, 4), torch.randn(1, 7, 2))
    with pytest.raises(ValueError, match="source_counts"):
        bi(torch.randn(1, 3, 5), torch.randn(1, 7, 5), torch.randn(1, 7, 2), source_counts=torch.ones(1, 4))


# ----------------------------------------------------------------------------------- the head
def block_labels(h, w, bh, bw):
    """Rectangular superpixels of bh x bw pixels, row-major ids."""
    rows, cols = np.arange(h)[:, None] // bh, np.arange(w)[None, :] // bw
    return (rows * ((w + bw - 1) // bw) + cols).astype(np.int64)


def random_head(channels=6, classes=4, seed=0):
    torch.manual_seed(seed)
    head = BilateralInceptionHead(channels, classes, 5, dropout=0.0, theta_init=0.5, bi7_weight_init="normal")
    with torch.no_grad():
        head.transform.weight.add_(0.05 * torch.randn(7, 7))
        head.bi7.weight.normal_(0, 0.5)
    return head.eval()


@pytest.fixture
def scene():
    torch.manual_seed(0)
    h, w = 24, 32
    image = torch.rand(1, 3, h, w)
    labels = torch.from_numpy(block_labels(h, w, 6, 5)).unsqueeze(0)
    feats = torch.randn(1, 6, 4, 5)
    return image, labels, feats


def test_permutation_of_superpixel_ids_changes_nothing(scene):
    image, labels, feats = scene
    head = random_head()
    out = head(feats, image, Assignment.from_labels(labels)).logits
    k = int(labels.max()) + 1
    perm = torch.from_numpy(np.random.default_rng(3).permutation(k))
    out_perm = head(feats, image, Assignment.from_labels(perm[labels])).logits
    torch.testing.assert_close(out_perm, out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("group", [True, False])
def test_empty_superpixel_slots_change_nothing(scene, group):
    image, labels, feats = scene
    head = random_head()
    head.group_sources = group
    out = head(feats, image, Assignment.from_labels(labels))
    gapped = labels * 3 + 1  # ids 1, 4, 7, ...: two empty slots between real ones, one at 0
    out_gap = head(feats, image, Assignment.from_labels(gapped, num_superpixels=int(gapped.max()) + 5))
    torch.testing.assert_close(out_gap.logits, out.logits, rtol=1e-4, atol=1e-5)
    assert int(out_gap.sp_mask.sum()) == int(labels.max()) + 1
    assert (out_gap.sp_logits[:, :, ~out_gap.sp_mask[0]] == 0).all()


def test_grouped_sources_equal_every_grid_point(scene):
    image, labels, _ = scene
    feats = torch.randn(1, 6, 8, 10)  # finer grid: several grid points per superpixel
    head = random_head()
    a = Assignment.from_labels(labels)
    grid, _ = grid_assignment(a, (8, 10))
    assert torch.bincount(grid.index.flatten()).max() >= 2
    grouped = head(feats, image, a).logits
    head.group_sources = False
    torch.testing.assert_close(head(feats, image, a).logits, grouped, rtol=1e-4, atol=1e-5)


def test_grid_assignment_samples_the_right_pixels():
    # 17 pixels, 3 grid points, align corners: pixels 0, 8, 16; half-pixel: (i+.5)*17/3-.5 -> 2.33, 8, 13.67
    np.testing.assert_allclose(grid_coordinates(3, 17).numpy(), [0, 8, 16])
    np.testing.assert_allclose(grid_coordinates(3, 17, align_corners=False).numpy(), [7 / 3, 8, 41 / 3])
    labels = torch.arange(17 * 17).reshape(1, 17, 17)
    grid, valid = grid_assignment(Assignment.from_labels(labels), (3, 3))
    expected = torch.tensor([[0, 8, 16], [136, 144, 152], [272, 280, 288]])
    torch.testing.assert_close(grid.index[0, 0], expected)
    assert valid.all()


def test_start_from_trunk_reproduces_trunk_classifier_on_constant_features(scene):
    image, labels, _ = scene
    torch.manual_seed(0)
    cls = torch.nn.Conv2d(6, 4, 1)
    f = torch.rand(6)  # non-negative, as after a ReLU
    feats = f.view(1, 6, 1, 1).expand(1, 6, 4, 5).contiguous()
    expected = cls(f.view(1, 6, 1, 1)).flatten()
    for mid in (8, 6):  # [W; -W] and identity variants
        head = BilateralInceptionHead(6, 4, mid).start_from_trunk(cls).eval()
        out = head(feats, image, Assignment.from_labels(labels))
        torch.testing.assert_close(out.sp_logits[0].T, expected.expand(out.sp_logits.shape[-1], 4).detach(),
                                   rtol=1e-5, atol=1e-5)


def test_padded_batch_equals_single_images():
    torch.manual_seed(0)
    head = random_head()
    exs = []
    for i, (h, w, fh, fw, bh) in enumerate([(24, 32, 4, 5, 6), (17, 21, 3, 3, 4)]):
        exs.append(BIExample(f"im{i}", torch.rand(3, h, w), torch.randint(0, 4, (h, w)),
                             torch.from_numpy(block_labels(h, w, bh, 5)), torch.randn(6, fh, fw)))
    batch = collate_bi(exs, 4)
    assert batch["image_sizes"] is not None
    out = head(batch["features"], batch["image"], batch["assignment"], image_sizes=batch["image_sizes"],
               feature_sizes=batch["feature_sizes"])
    for i, e in enumerate(exs):
        single = collate_bi([e], 4)
        ref = head(single["features"], single["image"], single["assignment"]).logits[0]
        h, w = e.image.shape[-2:]
        torch.testing.assert_close(out.logits[i, :, :h, :w], ref, rtol=1e-4, atol=1e-5)


def test_histogram_loss_equals_pixel_cross_entropy():
    torch.manual_seed(0)
    labels = torch.from_numpy(block_labels(12, 15, 4, 5)).unsqueeze(0)
    gt = torch.randint(0, 3, (1, 12, 15))
    gt[0, :2] = 255
    s = int(labels.max()) + 1
    sp_logits = torch.randn(1, 3, s)
    ex = BIExample("a", torch.rand(3, 12, 15), gt[0], labels[0])
    hist = collate_bi([ex], 3)["histogram"]
    pix = superpixel_unpool(sp_logits, Assignment.from_labels(labels))
    ref = torch.nn.functional.cross_entropy(pix, gt, ignore_index=255)
    torch.testing.assert_close(histogram_cross_entropy(sp_logits, hist), ref)


def test_soft_sin_assignment_passes_gradients_into_sin_logits():
    from sin.inference import SINPredictor
    from sin.interpolation import soft_interpolate

    torch.manual_seed(0)
    predictor = SINPredictor(weights="untrained", fast=False)
    image = torch.rand(1, 3, 40, 52)
    logits, x = predictor.logits(image, n_segments=12)
    for lg in logits:
        lg.retain_grad()
    assignment = soft_interpolate(logits)
    assert assignment.index.shape[1] == 4
    head = random_head()
    out = head(torch.randn(1, 6, 5, 7), x, assignment)
    out.logits.square().mean().backward()
    grads = [lg.grad for lg in logits]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in predictor.model.parameters())


def test_head_input_errors(scene):
    image, labels, feats = scene
    head = random_head()
    with pytest.raises(ValueError, match="features"):
        head(feats[:, :3], image, Assignment.from_labels(labels))
    with pytest.raises(ValueError, match="resolution"):
        head(feats, image[..., :20], Assignment.from_labels(labels))
    with pytest.raises(ValueError, match="image"):
        head(feats, image[:, :2], Assignment.from_labels(labels))


def test_bi7_scales_start_the_filter_pairs_at_different_scales():
    from downstream.bilateral_inception.bi_training import BITrainConfig, build_head
    from downstream.bilateral_inception.trunks import tiny_trunk

    trunk = tiny_trunk(3)
    same = build_head(trunk, 3, BITrainConfig())
    multi = build_head(trunk, 3, BITrainConfig(bi7_scales=(0.25, 1, 4)))
    assert same.bi7.theta.tolist() == [1.0] * 6
    assert multi.bi7.theta.tolist() == [0.25, 0.25, 1.0, 1.0, 4.0, 4.0]
    assert multi.bi6.theta.tolist() == same.bi6.theta.tolist() == [1.0, 1.0]
