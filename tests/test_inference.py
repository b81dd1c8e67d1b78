import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sin
from sin.checkpoint import UntrainedWarning
from sin.connectivity import check_superpixels, is_4connected
from sin.geometry import grid_shape, network_size
from sin.inference import SINPredictor, resize_labels


@pytest.fixture(scope="module")
def predictor():
    return SINPredictor(weights="untrained")


def smooth_image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([np.sin(6 * xx + rng.uniform(0, 3)), np.cos(5 * yy + rng.uniform(0, 3)),
                    np.sin(4 * (xx + yy))], axis=-1)
    img = (img + 1) / 2 + rng.normal(0, 0.05, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 300), w=st.integers(1, 300), k=st.integers(1, 400), seed=st.integers(0, 99))
def test_any_size_any_count(predictor, h, w, k, seed):
    if h * w < 2:
        return
    img = smooth_image(h, w, seed)
    labels, info = predictor(img, k, return_info=True)
    check_superpixels(labels, (h, w))  # int32, contiguous 0..K-1, 4-connected
    n, m = grid_shape(k, h, w)
    assert info["grid"] == (n, m)
    assert info["n_superpixels"] == labels.max() + 1
    hn, wn = network_size(n, m)
    if hn <= h and wn <= w:  # pure up-sampling: exactly n*m superpixels, nothing repaired
        assert info["n_superpixels"] == n * m
        assert info["n_repaired_pixels"] == 0
    assert 0 <= info["n_repaired_pixels"] <= h * w


def test_requested_count_on_bsds_geometry(predictor):
    img = smooth_image(321, 481)
    for k, expected in [(600, 600), (200, 12 * 17), (54, 6 * 9)]:
        labels, info = predictor(img, k, return_info=True)
        assert info["n_superpixels"] == expected == labels.max() + 1
    assert predictor(img.transpose(1, 0, 2), 600).max() + 1 == 600  # portrait


def test_downsampling_is_repaired_and_counted(predictor):
    img = smooth_image(40, 50)
    labels, info = predictor(img, 1500, return_info=True)  # network grid far larger than the image
    assert network_size(*info["grid"])[0] > 40
    check_superpixels(labels, (40, 50))
    assert info["n_superpixels"] <= 40 * 50


def test_input_formats_agree(predictor):
    img = (smooth_image(60, 90) * 255).round().astype(np.uint8)
    ref = predictor(img, 30)
    assert np.array_equal(predictor(img.astype(np.float64) / 255.0, 30), ref)
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 7, np.uint8)], axis=-1)
    assert np.array_equal(predictor(rgba, 30), ref)
    assert np.array_equal(predictor(np.moveaxis(img, -1, 0), 30, channel_axis=0), ref)
    gray = img[..., 0]
    assert np.array_equal(predictor(gray, 30), predictor(np.repeat(gray[..., None], 3, -1), 30))
    assert np.array_equal(predictor(gray, 30, channel_axis=None), predictor(gray, 30))
    # torch batch gives the same maps as the numpy API, image by image
    batch = torch.from_numpy(np.stack([img, img[::-1].copy()])).permute(0, 3, 1, 2)
    labels, info = predictor.label_batch(batch, 30)
    assert labels.dtype == torch.int32 and labels.shape == (2, 60, 90)
    assert np.array_equal(labels[0].numpy(), ref)
    assert np.array_equal(labels[1].numpy(), predictor(img[::-1].copy(), 30))


def test_superpixels_function_with_tensor_batch():
    batch = torch.rand(3, 3, 33, 47)
    labels = sin.superpixels(batch, 12, weights="untrained")
    assert isinstance(labels, torch.Tensor) and labels.shape == (3, 33, 47)
    for lab in labels.numpy():
        check_superpixels(lab)


@pytest.mark.parametrize("bad,match", [
    (np.full((10, 10, 3), np.nan), "NaN"),
    (np.full((10, 10, 3), np.inf), "NaN or infinite"),
    (np.zeros((10, 10, 3)) + 2.0, r"\[0, 1\]"),
    (np.zeros((2, 10, 10, 3)), "2-D"),
    (np.zeros((10, 10, 2)), "channels"),
    (np.zeros((0, 10, 3)), "empty"),
    (np.zeros((1, 1, 3)), "pixel"),
    (np.zeros((10, 10, 3), dtype=np.int64), "dtype"),
    (np.zeros((10, 10, 3), dtype=object), "numeric"),
])
def test_bad_images(predictor, bad, match):
    with pytest.raises(ValueError, match=match):
        predictor(bad, 10)


@pytest.mark.parametrize("k", [0, -3, 2.5, "10", None, True])
def test_bad_n_segments(predictor, k):
    with pytest.raises(ValueError, match="n_segments"):
        predictor(np.zeros((10, 10, 3)), k)


def test_bad_tensor_batches(predictor):
    with pytest.raises(ValueError, match="channels"):
        predictor.label_batch(torch.zeros(1, 2, 10, 10), 4)
    with pytest.raises(ValueError, match="NaN"):
        predictor.label_batch(torch.full((1, 3, 10, 10), float("nan")), 4)
    with pytest.raises(ValueError, match="dtype"):
        predictor.label_batch(torch.zeros(1, 3, 10, 10, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match="shape"):
        predictor.label_batch(torch.zeros(10, 10), 4)


def test_fast_and_plain_paths_agree():
    img = smooth_image(100, 140, seed=3)
    fast = SINPredictor(weights="untrained", fast=True)
    plain = SINPredictor(weights="untrained", fast=False)
    a, b = fast(img, 60), plain(img, 60)
    assert (a == b).mean() > 0.999  # identical up to float ties


def test_missing_default_weights_warns(monkeypatch, tmp_path):
    monkeypatch.setattr(sin.checkpoint, "DEFAULT_WEIGHTS", tmp_path / "none.pt")
    with pytest.warns(UntrainedWarning, match="UNTRAINED"):
        p = SINPredictor()
    assert not p.trained


def test_explicit_weights_do_not_warn(tmp_path):
    path = tmp_path / "w.pt"
    sin.save_weights(sin.SINNet(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = SINPredictor(weights=path)
    assert p.trained


def test_resize_labels_nearest_preserves_connectivity_when_upsampling():
    rng = np.random.default_rng(0)
    logits = [torch.from_numpy(rng.normal(size=(1, 2) + s).astype(np.float32))
              for s in sin.geometry.level_shapes(3, 4).values()]
    lab = sin.hard_interpolate(logits)  # 33 x 49
    for size in [(33, 49), (34, 50), (70, 200), (100, 49), (33, 300)]:
        up = resize_labels(lab, *size)[0].numpy()
        assert up.shape == size and is_4connected(up) and np.unique(up).size == 12


def test_shipped_weights_load_trained_and_beat_the_grid_on_bsds500():
    """The package ships trained weights; on real images they must beat the regular grid.

    Both methods get the same seed grid (same K), so the gain is the learned interpolation.
    """
    from conftest import data_path
    from sin.checkpoint import DEFAULT_WEIGHTS, load_model
    from sin.datasets import BSDS500
    from sin.metrics import aggregate, evaluate
    from sin.providers import get_provider

    assert DEFAULT_WEIGHTS.is_file(), "sin/weights/sin_bsds500.pt is missing from the package"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedWarning)
        model = load_model()
    assert getattr(model, "trained", True)
    data = BSDS500(data_path("BSDS500"), "test")
    asa = {"sin": [], "grid": []}
    for item in list(data)[:3]:
        image_id, image, gts = item
        for name in asa:
            labels = get_provider(name)(image, 600)
            asa[name].append(aggregate(evaluate(labels, gts), "mean")["asa"])
    assert np.mean(asa["sin"]) > np.mean(asa["grid"]) + 0.01
