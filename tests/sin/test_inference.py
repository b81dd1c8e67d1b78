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
from sin.inference import MAX_NETWORK_PIXELS, SINPredictor, _unit_tensor, resize_labels, resolve_precision
from sin.image import as_float_rgb, rgb_view


@pytest.fixture(scope="module")
def predictor():
    return SINPredictor(weights="untrained", precision="fp32")


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
    fast = SINPredictor(weights="untrained", fast=True, precision="fp32")
    plain = SINPredictor(weights="untrained", fast=False, precision="fp32")
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


# ------------------------------------------------------------------ issue 16: precision and wasted work
def _head_fixture_cases():
    """The inputs of tests/data/sin_fp32_head_labels.npz (labels computed with git HEAD 4c606bf,
    before precision/validation/resize changes; data-free: the bundled sample and a synthetic image)."""
    from PIL import Image

    from sin.io import SAMPLE_IMAGE, read_image

    img = read_image(SAMPLE_IMAGE)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:97, 0:143]
    synth = np.stack([(xx * 1.7) % 256, (yy * 2.3) % 256, ((xx + yy) * 0.9) % 256], -1).astype(np.uint8)
    synth = np.clip(synth.astype(int) + rng.integers(-20, 21, synth.shape), 0, 255).astype(np.uint8)
    return {
        "sample_481x321_k600": (np.asarray(Image.fromarray(img).resize((481, 321), Image.BICUBIC)), 600, -1),
        "sample_321x481_k200": (np.asarray(Image.fromarray(img).resize((321, 481), Image.BICUBIC)), 200, -1),
        "sample_native_k1000": (img, 1000, -1),
        "synth_97x143_k900_down": (synth, 900, -1),
        "synth_gray_float_k50": (synth[..., 0].astype(np.float64) / 255, 50, None),
    }


def test_fp32_labels_bit_identical_to_head():
    from conftest import TEST_DATA

    ref = np.load(TEST_DATA / "sin_fp32_head_labels.npz")
    for name, (img, k, axis) in _head_fixture_cases().items():
        labels = sin.superpixels(img, k, channel_axis=axis, precision="fp32")
        assert labels.dtype == np.int32
        assert np.array_equal(labels, ref[name]), name


def test_bf16_labels_close_to_fp32_and_valid():
    img, k, _ = _head_fixture_cases()["sample_481x321_k600"]
    a = sin.superpixels(img, k, precision="fp32")
    b, info = sin.superpixels(img, k, precision="bf16", return_info=True)
    assert info["precision"] == "bf16"
    check_superpixels(b, img.shape[:2])
    assert b.max() + 1 == 600
    assert 0.97 < (a == b).mean() < 1.0  # bf16 really ran (not all equal), and agrees closely


def test_resolve_precision(monkeypatch):
    import sin.inference as inf

    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    got, why = resolve_precision("auto", explain=True)
    assert got in ("fp32", "bf16") and why.startswith("auto: ")
    assert resolve_precision("auto") == got  # deterministic per machine
    for bad in ("fp16", "FP32", None, 32):
        with pytest.raises(ValueError, match="precision"):
            resolve_precision(bad)
    # a CPU without native bf16 falls back to fp32 and says so
    monkeypatch.setattr(inf, "_RESOLVED", {})
    monkeypatch.setattr(inf, "_cpu_bf16_native", lambda: (False, "CPU has neither AVX512-BF16 nor AMX"))
    assert resolve_precision("auto", explain=True) == ("fp32", "auto: CPU has neither AVX512-BF16 nor AMX")
    monkeypatch.setattr(inf, "_RESOLVED", {})
    monkeypatch.setattr(inf, "_cpu_bf16_native", lambda: (True, "CPU has avx512_bf16"))
    assert resolve_precision("auto") == "bf16"
    assert SINPredictor(weights="untrained").precision == "bf16"


def test_cpu_flag_detection_reads_proc_cpuinfo(monkeypatch, tmp_path):
    import builtins

    import sin.inference as inf

    real_open = builtins.open
    for flags, expected in (("fpu avx2 avx512f", False), ("fpu avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True)):
        fake = tmp_path / "cpuinfo"
        fake.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(builtins, "open",
                            lambda p, *a, fake=fake, **kw: real_open(fake if p == "/proc/cpuinfo" else p, *a, **kw))
        assert inf._cpu_bf16_native()[0] is expected, flags


def test_sin_provider_precision_parameter_and_fingerprint():
    p = sin.get_provider("sin")
    assert p.params["precision"] == "auto"
    fp = {x: sin.get_provider(f"sin:precision={x}").fingerprint for x in ("fp32", "bf16", "auto")}
    assert fp["fp32"] != fp["bf16"]
    # the fingerprint sees what "auto" resolves to on this machine (maps cached under one are the other's)
    assert fp["auto"] == fp[resolve_precision("auto")]
    img = smooth_image(40, 60)
    assert np.array_equal(sin.get_provider("sin:precision=fp32,weights=untrained")(img, 20),
                          sin.superpixels(img, 20, weights="untrained", precision="fp32"))
    with pytest.raises(ValueError, match="precision"):
        sin.get_provider("sin:precision=fp16,weights=untrained")(img, 20)
    from sin.providers import sin_provider

    assert sin_provider.resolved_params({"precision": "auto", "device": "cpu"})["precision"] == resolve_precision("auto")


@pytest.mark.parametrize("make", [
    lambda img: img,                                        # uint8 RGB
    lambda img: img.astype(np.uint16) * 257,                # uint16
    lambda img: img.astype(np.float64) / 255,               # float64
    lambda img: (img.astype(np.float32) / 255)[:, ::-1],    # negative strides
    lambda img: img > 127,                                  # bool
    lambda img: np.concatenate([img, img[..., :1]], -1),    # RGBA
    lambda img: img[..., 1],                                # grayscale
    lambda img: np.moveaxis(img, -1, 0),                    # channels first (channel_axis=0)
])
def test_one_pass_conversion_equals_as_float_rgb(make):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    base[0, :3, 0] = (0, 255, 128)
    img = make(base)
    axis = 0 if img.shape[0] == 3 else -1
    ref = torch.from_numpy(as_float_rgb(img, channel_axis=axis)).permute(2, 0, 1)[None]
    got = _unit_tensor(rgb_view(img, channel_axis=axis))
    assert got.dtype == torch.float32 and got.shape == ref.shape and got.stride() == ref.stride()
    assert torch.equal(got, ref)


def test_all_uint8_values_convert_exactly():
    img = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    assert torch.equal(_unit_tensor(rgb_view(img))[0].permute(1, 2, 0), torch.from_numpy(as_float_rgb(img)))


def test_resize_labels_is_int32():
    lab = torch.arange(12, dtype=torch.int64).reshape(1, 3, 4)
    out = resize_labels(lab, 7, 9)
    assert out.dtype == torch.int32 and out.shape == (1, 7, 9)
    rows = [int((i + 0.5) * 3 / 7) for i in range(7)]  # centre-aligned nearest, by hand
    cols = [int((j + 0.5) * 4 / 9) for j in range(9)]
    assert rows == [0, 0, 1, 1, 1, 2, 2]
    assert out[0].tolist() == [[int(lab[0, r, c]) for c in cols] for r in rows]


# ------------------------------------------------------------------ issue 15: model cache, resource limits
def test_model_cache_keyed_by_weights_content(tmp_path):
    img = smooth_image(50, 70, seed=4)
    path = tmp_path / "w.pt"
    torch.manual_seed(1)
    sin.save_weights(sin.SINNet(), path)
    a = sin.superpixels(img, 30, weights=path, precision="fp32")
    torch.manual_seed(2)
    sin.save_weights(sin.SINNet(), path)  # rewritten at the same path
    b = sin.superpixels(img, 30, weights=path, precision="fp32")
    fresh = SINPredictor(weights=path, precision="fp32")(img, 30)
    assert np.array_equal(b, fresh) and not np.array_equal(a, b)
    # state dicts are never shared through the cache, even if they print the same
    torch.manual_seed(3)
    s1 = sin.SINNet().state_dict()
    torch.manual_seed(4)
    s2 = sin.SINNet().state_dict()
    l1 = sin.superpixels(img, 30, weights=s1, precision="fp32")
    l2 = sin.superpixels(img, 30, weights=s2, precision="fp32")
    assert np.array_equal(l2, SINPredictor(weights=s2, precision="fp32")(img, 30))
    assert not np.array_equal(l1, l2)
    # the same content under another name shares one network
    import shutil
    import sin.inference as inf

    copy = tmp_path / "copy.pt"
    shutil.copy(path, copy)
    assert inf._get_predictor(path, "cpu", "fp32") is inf._get_predictor(copy, "cpu", "fp32")


def test_huge_count_is_limited_before_allocating():
    # the cap is on the network input itself (what would have grown to 256x the image, 7 GB);
    # no wall-clock bound here: CI machines may be loaded
    img = smooth_image(321, 481)
    with pytest.warns(UserWarning, match="network input"):
        labels, info = sin.superpixels(img, 10**6, weights="untrained", return_info=True)
    hn, wn = info["network_size"]
    assert hn * wn <= MAX_NETWORK_PIXELS and (hn, wn) != (5121, 7681)
    check_superpixels(labels, img.shape[:2])


def test_counts_below_the_limit_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sin.superpixels(smooth_image(64, 64), 4096, weights="untrained")  # one seed per pixel, 1009x1009 input


def test_plain_path_in_bf16_keeps_the_fp32_model_for_logits():
    p = SINPredictor(weights="untrained", fast=False, precision="bf16")
    assert next(p.model.parameters()).dtype == torch.float32
    labels = p(smooth_image(60, 80), 20)
    check_superpixels(labels, (60, 80))
    logits, _ = p.logits(torch.rand(1, 3, 40, 52), 12)
    assert logits[0].dtype == torch.float32 and logits[0].requires_grad
