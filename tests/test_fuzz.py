"""Property-based fuzzing of the public entry points (issue 15).

On random *valid* inputs every entry point returns a well-formed result; on *invalid* inputs
(NaN, empty, wrong dtype or ndim, K <= 0, non-integer K, out-of-range values) it raises
``ValueError`` and never another exception type. Few examples each (``deadline=None``), so the
module runs in well under 30 s.
"""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sin
from sin import metrics as M
from sin.connectivity import is_4connected
from sin.providers import SuperpixelCountWarning

FUZZ = settings(max_examples=6, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

BAD_IMAGES = {
    "nan": lambda: np.full((20, 20, 3), np.nan, np.float32),
    "inf": lambda: np.full((20, 20, 3), np.inf),
    "empty": lambda: np.zeros((0, 20, 3), np.uint8),
    "empty_w": lambda: np.zeros((20, 0, 3), np.float32),
    "1d": lambda: np.zeros(20, np.uint8),
    "4d": lambda: np.zeros((2, 20, 20, 3), np.uint8),
    "7_channels": lambda: np.zeros((20, 20, 7), np.uint8),
    "complex": lambda: np.zeros((20, 20, 3), np.complex64),
    "strings": lambda: np.full((20, 20, 3), "a"),
    "objects": lambda: np.empty((20, 20, 3), object),
    "float_above_1": lambda: np.full((20, 20, 3), 3.0),
    "negative_float": lambda: np.full((20, 20, 3), -0.5),
    "one_pixel": lambda: np.zeros((1, 1, 3), np.uint8),
}
BAD_K = [0, -1, -600, 2.5, "10", None, True, float("nan"), float("inf")]


@st.composite
def images(draw, min_side=16, max_side=48):
    h, w = draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["uint8", "float", "blocks", "gray", "rgba"]))
    if kind == "blocks":
        small = rng.random((4, 4, 3))
        img = small[(np.arange(h) * 4) // h][:, (np.arange(w) * 4) // w].astype(np.float32)
    elif kind == "uint8":
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "gray":
        img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    elif kind == "rgba":
        img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    else:
        img = rng.random((h, w, 3)).astype(np.float32)
    k = draw(st.integers(2, max(2, min(60, h * w // 8))))
    return img, k


def _channel_axis(img):
    return None if img.ndim == 2 else -1


def _well_formed(labels, shape):
    labels = np.asarray(labels)
    assert labels.shape == tuple(shape) and labels.dtype == np.int32
    assert labels.min() == 0 and np.array_equal(np.unique(labels), np.arange(labels.max() + 1))


def _raises_value_error(fn, *args, **kwargs):
    """``fn`` must fail with ValueError (a subclass is fine), never TypeError/IndexError/..."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(*args, **kwargs)
    except ValueError:
        return
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{getattr(fn, '__name__', fn)} raised {type(exc).__name__}: {exc}")
    pytest.fail(f"{getattr(fn, '__name__', fn)} accepted an invalid input")


# ---------------------------------------------------------------------------------- sin.superpixels
@FUZZ
@given(case=images())
def test_superpixels_valid_inputs(case):
    img, k = case
    labels = sin.superpixels(img, k, channel_axis=_channel_axis(img))
    _well_formed(labels, img.shape[:2])
    assert is_4connected(labels)


@pytest.mark.parametrize("bad", sorted(BAD_IMAGES))
def test_superpixels_bad_images(bad):
    _raises_value_error(sin.superpixels, BAD_IMAGES[bad](), 10)


@pytest.mark.parametrize("k", BAD_K, ids=repr)
def test_superpixels_bad_counts(k):
    _raises_value_error(sin.superpixels, np.zeros((20, 20, 3), np.uint8), k)


def test_superpixels_huge_count_is_refused_or_clamped():
    img = np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = sin.superpixels(img, 10**9)
    except ValueError:
        return
    _well_formed(labels, img.shape[:2])
    assert labels.max() + 1 <= img.shape[0] * img.shape[1]


# ---------------------------------------------------------------------------------- every provider
def _providers():
    names = []
    for name in sin.available_providers():
        p = sin.get_provider(name)
        if p.weights_file is not None and not p.weights_file.is_file():
            continue  # deep method without its weights here (e.g. SSN in a fresh checkout)
        names.append(name)
    return names


PROVIDERS = _providers()


@pytest.mark.parametrize("name", PROVIDERS)
@settings(FUZZ, max_examples=4)
@given(case=images(min_side=16, max_side=40))
def test_providers_valid_inputs(name, case):
    img, k = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuperpixelCountWarning)  # counts are test_provider_policy's job
        warnings.simplefilter("ignore", UserWarning)
        labels = sin.get_provider(name)(img, k, channel_axis=_channel_axis(img), check=True)
    _well_formed(labels, img.shape[:2])


@pytest.mark.parametrize("name", PROVIDERS)
def test_providers_invalid_inputs(name):
    p = sin.get_provider(name)
    for bad in sorted(BAD_IMAGES):
        _raises_value_error(p, BAD_IMAGES[bad](), 10)
    for k in BAD_K:
        _raises_value_error(p, np.zeros((20, 20, 3), np.uint8), k)
    _raises_value_error(sin.get_provider, name + ":no_such_parameter=1")


# ---------------------------------------------------------------------------------- metrics
@st.composite
def label_pairs(draw):
    h, w = draw(st.integers(2, 30)), draw(st.integers(2, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    labels = rng.integers(0, draw(st.integers(1, 12)), (h, w))
    gts = [rng.integers(0, draw(st.integers(1, 6)), (h, w)) for _ in range(draw(st.integers(1, 3)))]
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if draw(st.booleans()) else None
    tol = draw(st.one_of(st.none(), st.integers(0, 40), st.just(10**12)))
    return labels, gts, image, tol


@FUZZ
@given(case=label_pairs())
def test_metrics_valid_inputs(case):
    labels, gts, image, tol = case
    df = M.evaluate(labels, gts, image, tolerance=tol)
    assert len(df) == len(gts)
    for col in ("asa", "rec", "pre"):
        assert ((df[col] >= 0) & (df[col] <= 1)).all(), col
    assert (df["ue"] >= 0).all()
    for mode in ("mean", "worst", "best"):
        agg = M.aggregate(df, mode)  # without image ids too (was: all NaN for worst/best)
        assert np.isfinite(agg["asa"]) and np.isfinite(agg["rec"])


def test_metrics_invalid_inputs():
    ok = np.zeros((6, 7), int)
    bad_maps = [np.full((6, 7), np.nan), np.zeros((0, 7), int), np.zeros(7, int), np.zeros((2, 6, 7), int),
                np.full((6, 7), -1), np.full((6, 7), 0.5), np.full((6, 7), "a"), np.zeros((6, 8), int)]
    for bad in bad_maps:
        _raises_value_error(M.evaluate, bad, [ok])
        _raises_value_error(M.evaluate, ok, [bad])
        _raises_value_error(M.achievable_segmentation_accuracy, bad, ok)
    for tol in ("2", -1, 1.5, float("nan"), float("inf"), True, [1]):
        _raises_value_error(M.evaluate, ok, [ok], tolerance=tol)
        _raises_value_error(M.boundary_recall, ok, ok, tolerance=tol)
    _raises_value_error(M.evaluate, ok, [])
    _raises_value_error(M.evaluate, ok, [ok], image=np.zeros((6, 7, 3)) + np.nan)
    _raises_value_error(M.aggregate, M.evaluate(ok, [ok]), "median")


# ---------------------------------------------------------------------------------- saliency optimization
@FUZZ
@given(case=images(min_side=20, max_side=40))
def test_so_saliency_valid_inputs(case):
    from downstream.saliency_optimization import so_saliency

    img, k = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sal = so_saliency(img, "grid", max(4, k), channel_axis=_channel_axis(img))
    sal = np.asarray(sal)
    assert sal.shape == img.shape[:2] and np.isfinite(sal).all()
    assert sal.min() >= 0 and sal.max() <= 1


def test_so_saliency_invalid_inputs():
    from downstream.saliency_optimization import so_saliency

    for bad in sorted(BAD_IMAGES):
        _raises_value_error(so_saliency, BAD_IMAGES[bad](), "grid", 20)
    for k in [k for k in BAD_K if k is not None] + [10**6]:  # None: the preset's count rule
        _raises_value_error(so_saliency, np.zeros((20, 20, 3), np.uint8), "grid", k)
    _raises_value_error(so_saliency, np.zeros((20, 20, 3), np.uint8), "grid", None, preset=None)
    _raises_value_error(so_saliency, np.zeros((20, 20, 3), np.uint8), "no_such_provider", 20)


# ---------------------------------------------------------------------------------- Bilateral Inception
def _bi_head(c=8, classes=3):
    from downstream.bilateral_inception.model import BilateralInceptionHead

    torch.manual_seed(0)
    return BilateralInceptionHead(c, classes).eval()


@FUZZ
@given(h=st.integers(8, 32), w=st.integers(8, 32), k=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_bi_head_valid_inputs(h, w, k, seed):
    from sin.pooling import Assignment

    rng = np.random.default_rng(seed)
    labels = torch.as_tensor(rng.integers(0, k, (1, h, w)))
    feats = torch.as_tensor(rng.standard_normal((1, 8, max(1, h // 4), max(1, w // 4))), dtype=torch.float32)
    image = torch.as_tensor(rng.random((1, 3, h, w)), dtype=torch.float32)
    with torch.no_grad():
        out = _bi_head()(feats, image, Assignment.from_labels(labels))
    assert out.logits.shape == (1, 3, h, w) and torch.isfinite(out.logits).all()


def test_bi_head_invalid_inputs():
    from sin.pooling import Assignment

    _raises_value_error(Assignment.from_labels, torch.zeros((1, 0, 5), dtype=torch.int64))
    _raises_value_error(Assignment.from_labels, torch.zeros((0, 4, 5), dtype=torch.int64))
    _raises_value_error(Assignment.from_labels, torch.full((1, 4, 5), -1))
    _raises_value_error(Assignment.from_labels, torch.zeros((1, 4, 5)))
    _raises_value_error(Assignment.from_labels, torch.zeros((4,), dtype=torch.int64))


@pytest.mark.parametrize("what", [
    "nan_features", "wrong_channels", "image_size", "feature_ndim"])
def test_bi_head_forward_invalid_inputs(what):
    from sin.pooling import Assignment

    a = Assignment.from_labels(torch.zeros((1, 12, 16), dtype=torch.int64))
    feats, image = torch.zeros(1, 8, 3, 4), torch.zeros(1, 3, 12, 16)
    if what == "nan_features":
        feats = torch.full((1, 8, 3, 4), float("nan"))
    elif what == "wrong_channels":
        feats = torch.zeros(1, 5, 3, 4)
    elif what == "image_size":
        image = torch.zeros(1, 3, 10, 16)
    else:
        feats = torch.zeros(8, 3, 4)
    with torch.no_grad():
        _raises_value_error(_bi_head(), feats, image, a)


# ---------------------------------------------------------------------------------- library edge cases
def test_empty_maps_are_clear_value_errors():
    from sin.connectivity import enforce_connectivity

    _raises_value_error(enforce_connectivity, np.zeros((0, 0), int))
    _raises_value_error(enforce_connectivity, np.zeros((3, 0), int))
    _raises_value_error(enforce_connectivity, np.zeros(5, int))
    _raises_value_error(enforce_connectivity, np.zeros((3, 3)) + 0.5)
