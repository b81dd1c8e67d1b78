"""``ssn`` provider: differentiable SLIC against a dense reference, input scaling, weights, contract, ASA."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sin.connectivity import check_superpixels
from sin.providers import available_providers, get_provider
from sin.providers.ssn import (
    SSNFeatureNet,
    default_ssn_weights,
    load_ssn_model,
    ssn_input,
    ssn_iterations,
)


def _weights() -> Path:
    p = default_ssn_weights()
    if not p.is_file():
        pytest.skip(f"SSN weights not available: {p}")
    return p


def dense_reference(features: torch.Tensor, n: int, m: int, n_iter: int):
    """Straightforward dense SSN iterations in float64: every pixel vs every centroid, masked to 3x3 cells."""
    c, h, w = features.shape
    f = features.double().reshape(c, h * w).T
    cy = torch.clamp((torch.arange(h, dtype=torch.float64) * n / h).long(), max=n - 1)
    cx = torch.clamp((torch.arange(w, dtype=torch.float64) * m / w).long(), max=m - 1)
    py, px = cy[:, None].expand(h, w).reshape(-1), cx[None, :].expand(h, w).reshape(-1)
    k = n * m
    ky, kx = torch.arange(k) // m, torch.arange(k) % m
    allowed = ((py[:, None] - ky[None]).abs() <= 1) & ((px[:, None] - kx[None]).abs() <= 1)
    cent = F.adaptive_avg_pool2d(features.double()[None], (n, m))[0].reshape(c, k).T
    for _ in range(n_iter):
        a = torch.softmax(-torch.cdist(f, cent).masked_fill(~allowed, float("inf")), dim=1)
        cent = (a.T @ f) / a.sum(0)[:, None]
    return a.argmax(1).reshape(h, w), a, cent.T, py, px


def asa(labels: np.ndarray, gt: np.ndarray) -> float:
    """Achievable segmentation accuracy: each superpixel votes for its majority ground-truth segment."""
    k, g = int(labels.max()) + 1, int(gt.max()) + 1
    table = np.bincount(labels.ravel().astype(np.int64) * g + gt.ravel(), minlength=k * g).reshape(k, g)
    return float(table.max(1).sum() / labels.size)


# ------------------------------------------------------------------ differentiable SLIC
@pytest.mark.parametrize("c,h,w,n,m", [(5, 37, 53, 4, 6), (20, 30, 30, 3, 3), (3, 16, 9, 5, 2), (4, 10, 12, 1, 1)])
def test_iterations_match_dense_reference(c, h, w, n, m):
    torch.manual_seed(c + h)
    feat = torch.randn(c, h, w) * 2 + torch.linspace(0, 5, w)[None, None, :]
    labels, aff, cent = ssn_iterations(feat, (n, m), n_iter=5)
    ref_labels, ref_a, ref_cent, py, px = dense_reference(feat, n, m, 5)
    np.testing.assert_array_equal(labels.numpy(), ref_labels.numpy())
    np.testing.assert_allclose(cent.double().numpy(), ref_cent.numpy(), atol=1e-4)
    # the 9 affinities of every pixel are the dense ones of its 3x3 cells (0 outside the grid)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    for o, (dy, dx) in enumerate(offsets):
        ny, nx = py + dy, px + dx
        ok = (ny >= 0) & (ny < n) & (nx >= 0) & (nx < m)
        expected = torch.zeros(h * w, dtype=torch.float64)
        expected[ok] = ref_a[ok.nonzero()[:, 0], (ny * m + nx)[ok]]
        np.testing.assert_allclose(aff[o].reshape(-1).double().numpy(), expected.numpy(), atol=1e-5)


def test_iterations_two_regions_hand_computed():
    # one feature channel: 0 left of column 7, 10 from column 7; a 1x2 grid splits at column 10.
    # Initial centroids 3 (= (7*0 + 3*10) / 10) and 10: the 10-valued pixels of cell 0 are at distance
    # 0 from centroid 1 and 7 from centroid 0, so they move to superpixel 1 and the boundary lands on 7.
    feat = torch.zeros(1, 4, 20)
    feat[..., 7:] = 10.0
    labels, aff, cent = ssn_iterations(feat, (1, 2), n_iter=3)
    np.testing.assert_array_equal(labels.numpy(), np.broadcast_to(np.arange(20) >= 7, (4, 20)).astype(np.int64))
    np.testing.assert_allclose(cent[0].numpy(), [0.0, 10.0], atol=1e-2)
    np.testing.assert_allclose(aff.sum(0).numpy(), 1.0, atol=1e-6)


def test_iterations_are_differentiable():
    feat = torch.randn(6, 24, 30, requires_grad=True)
    _, aff, cent = ssn_iterations(feat, (3, 4), n_iter=4)
    (cent.pow(2).sum() + aff[4].sum()).backward()
    assert feat.grad is not None and torch.isfinite(feat.grad).all() and feat.grad.abs().sum() > 0


@pytest.mark.parametrize("args,match", [
    ((torch.zeros(5, 5), (1, 1)), r"\(C, H, W\)"),
    ((torch.zeros(2, 5, 5), (6, 1)), "does not fit"),
    ((torch.zeros(2, 5, 5), (0, 1)), "does not fit"),
])
def test_iterations_bad_args(args, match):
    with pytest.raises(ValueError, match=match):
        ssn_iterations(*args)
    with pytest.raises(ValueError, match="n_iter"):
        ssn_iterations(torch.zeros(2, 5, 5), (1, 1), n_iter=0)


# ------------------------------------------------------------------ input scaling
def test_input_scaling_hand_computed():
    img = np.ones((10, 20, 3), np.float32)  # white: L = 100, a = b = 0
    x = ssn_input(img, 16)  # s = int(sqrt(16)) = 4; pos = 2.5 * max(4/10, 4/20) = 1.0
    assert x.shape == (1, 5, 10, 20) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0, 0].numpy(), 26.0, atol=5e-3)  # 0.26 * 100
    np.testing.assert_allclose(x[0, 1:3].numpy(), 0.0, atol=5e-3)  # skimage's D65 white: |a|, |b| < 0.01
    np.testing.assert_allclose(x[0, 3].numpy(), np.broadcast_to(np.arange(10)[:, None], (10, 20)), atol=1e-6)
    np.testing.assert_allclose(x[0, 4].numpy(), np.broadcast_to(np.arange(20)[None, :], (10, 20)), atol=1e-6)


# ------------------------------------------------------------------ weights
def test_missing_weights_raise(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no_such.pth"):
        load_ssn_model(tmp_path / "no_such.pth")
    monkeypatch.setenv("SIN_SSN_WEIGHTS", str(tmp_path / "env_missing.pth"))
    assert default_ssn_weights() == tmp_path / "env_missing.pth"
    with pytest.raises(FileNotFoundError, match="SIN_SSN_WEIGHTS"):
        get_provider("ssn")(np.random.rand(16, 16, 3), n_segments=4)


def test_bad_weights_raise(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(os.urandom(1000))
    with pytest.raises(ValueError, match="cannot read"):
        load_ssn_model(garbage)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="missing"):
        load_ssn_model(tmp_path / "other.pth")
    sd = SSNFeatureNet().state_dict()
    sd["feature_extract.output_conv.0.bias"] = torch.zeros(16)
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match="output_conv"):
        load_ssn_model(tmp_path / "shape.pth")


def test_random_weights_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = SSNFeatureNet().eval()
    torch.save(net.state_dict(), tmp_path / "r.pth")
    loaded = load_ssn_model(tmp_path / "r.pth")
    x = torch.randn(1, 5, 20, 24)
    with torch.no_grad():
        out = loaded(x)
        # the loaded model runs channels-last (other conv kernels): equal up to float rounding
        np.testing.assert_allclose(out.numpy(), net(x).numpy(), rtol=1e-4, atol=1e-5)
    assert out.shape == (1, 20, 20, 24)
    np.testing.assert_array_equal(out[:, 15:].numpy(), x.numpy())  # the input is appended to the 15 features


def test_real_weights_load():
    model = load_ssn_model(_weights())
    n = sum(v.numel() for v in model.state_dict().values())
    assert abs(n - 215_000) < 1_000  # "215k params" of the weights' README
    assert load_ssn_model(_weights()) is model  # cached


# ------------------------------------------------------------------ provider contract
def test_registered_as_extra():
    assert "ssn" in available_providers()
    assert "ssn" not in available_providers(include_extras=False)
    p = get_provider("ssn")
    assert p.connected and p.connectivity == "post-processing" and p.extra


@pytest.mark.parametrize("h,w,k", [(40, 56, 30), (23, 31, 7), (64, 48, 100)])
def test_contract_random_images(h, w, k, rng):
    _weights()
    img = rng.random((h, w, 3)).astype(np.float32)
    labels = get_provider("ssn")(img, n_segments=k, check=True)
    check_superpixels(labels, (h, w), connected=True)
    assert labels.dtype == np.int32 and labels.flags.c_contiguous
    assert 0.5 * k <= labels.max() + 1 <= 1.5 * k


def test_uint8_and_float_agree(rng):
    _weights()
    img = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    p = get_provider("ssn")
    np.testing.assert_array_equal(p(img, n_segments=12), p(img.astype(np.float32) / 255, n_segments=12))


# ------------------------------------------------------------------ real data
@pytest.mark.data
def test_asa_beats_grid_on_bsds():
    weights = _weights()
    import scipy.io
    from conftest import data_path

    from sin.io import read_image

    for image_id in ("100007",):  # one image keeps the test short; see the slow test below
        img = read_image(data_path("BSDS500", "images", "test", f"{image_id}.jpg"))
        mat = scipy.io.loadmat(data_path("BSDS500", "groundTruth", "test", f"{image_id}.mat"))["groundTruth"][0]
        gts = [mat[t][0][0][0].astype(np.int64) for t in range(len(mat))]
        ssn = get_provider("ssn")(img, n_segments=600, weights=weights)
        grid = get_provider("grid")(img, n_segments=600)
        a_ssn = np.mean([asa(ssn, g) for g in gts])
        a_grid = np.mean([asa(grid, g) for g in gts])
        assert 500 <= ssn.max() + 1 <= 700
        assert a_ssn > a_grid + 0.01, (image_id, a_ssn, a_grid)
        assert a_ssn > 0.95, (image_id, a_ssn)


@pytest.mark.slow
@pytest.mark.data
def test_asa_five_bsds_images_vs_slic_and_grid():
    """``pytest -m slow tests/sin/providers/test_ssn.py -s``: ASA at K = 600 on the first 5 BSDS500 test images."""
    weights = _weights()
    import scipy.io
    from conftest import data_path

    from sin.io import read_image

    ids = sorted(p.stem for p in data_path("BSDS500", "images", "test").glob("*.jpg"))[:5]
    scores = {"ssn": [], "slic": [], "grid": []}
    for image_id in ids:
        img = read_image(data_path("BSDS500", "images", "test", f"{image_id}.jpg"))
        mat = scipy.io.loadmat(data_path("BSDS500", "groundTruth", "test", f"{image_id}.mat"))["groundTruth"][0]
        gts = [mat[t][0][0][0].astype(np.int64) for t in range(len(mat))]
        for name, values in scores.items():
            params = {"weights": weights} if name == "ssn" else {}
            labels = get_provider(name)(img, n_segments=600, check=True, **params)
            values.append(np.mean([asa(labels, g) for g in gts]))
    means = {k: float(np.mean(v)) for k, v in scores.items()}
    print("mean ASA over", ids, means)
    assert means["ssn"] > 0.95
    assert means["ssn"] > means["slic"] > means["grid"]
