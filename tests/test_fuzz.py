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


def test_api_edge_cases_are_clear_value_errors():
    """The five API edge cases of issue 23 item 9 (were TypeError, AttributeError, RuntimeError, IndexError)."""
    from sin.interpolation import soft_interpolate
    from sin.io import overlay_boundaries
    from sin.pooling import Assignment, superpixel_pool

    ok = np.zeros((6, 7), int)
    _raises_value_error(M.evaluate, ok, None)
    _raises_value_error(M.evaluate, ok, 3)
    torch.manual_seed(0)
    with torch.no_grad():
        logits = sin.SINNet()(torch.rand(1, 3, 33, 49))
    assert soft_interpolate(logits).weight.shape == (1, 4, 33, 49)
    _raises_value_error(soft_interpolate, [lg.numpy() for lg in logits])
    _raises_value_error(soft_interpolate, list(reversed(logits)))
    _raises_value_error(soft_interpolate, [logits[1], logits[0], *logits[2:]])
    _raises_value_error(soft_interpolate, logits[:7])
    _raises_value_error(soft_interpolate, logits, temperature=float("nan"))
    a = Assignment.from_labels(torch.zeros((1, 8, 9), dtype=torch.int64))
    _raises_value_error(superpixel_pool, torch.zeros(3, 8, 9), a)
    _raises_value_error(superpixel_pool, np.zeros((1, 3, 8, 9)), a)
    assert superpixel_pool(torch.ones(1, 3, 8, 9), a)[0].shape == (1, 3, 1)
    _raises_value_error(overlay_boundaries, np.zeros((6, 8, 3), np.uint8), ok)
    _raises_value_error(overlay_boundaries, np.zeros((6, 7, 3), np.uint8), np.zeros((6, 7, 2), int))


# ---------------------------------------------------------------------------------- provider parameters
# (issue 23 item 8: every declared parameter, valid values run, invalid ones one ValueError; never a crash)
from param_strategies import NATIVE, fuzz_valid, invalid_values  # noqa: E402  (tests/param_strategies.py)

SLOW_PROVIDERS = {"sin", "ssn"}


@pytest.mark.parametrize("name", [n for n in PROVIDERS if n not in NATIVE])
def test_provider_parameters_valid_values_run(name):
    assert fuzz_valid(name, 2 if name in SLOW_PROVIDERS else 5) >= 1


def test_native_provider_parameters_never_crash():
    """SEEDS, LSC and fast-slic with valid parameter values, in a subprocess: a crash (segfault,
    SIGFPE) fails this test with the case that caused it instead of killing the test run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    names = [n for n in NATIVE if n in PROVIDERS]
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(here.parent), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(here / "param_strategies.py"), *(f"{n}=15" for n in names)],
                          capture_output=True, text=True, timeout=300, cwd=here.parent, env=env)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
    assert proc.returncode == 0, f"exit code {proc.returncode}; last output:\n{tail}"
    assert all(f"done {n}:" in proc.stdout for n in names), tail


@st.composite
def _bad_parameter(draw):
    name = draw(st.sampled_from(sin.available_providers()))
    declared = sin.providers.registry.lookup(name).declared
    if not declared:
        return name, None, None
    key = draw(st.sampled_from(sorted(declared)))
    return name, key, draw(invalid_values(declared[key]))


@settings(FUZZ, max_examples=150)
@given(case=_bad_parameter())
def test_provider_parameters_invalid_values_raise_one_value_error(case):
    from sin.providers.params import format_value

    name, key, value = case
    if key is None:
        return
    want = rf"provider '{name}': parameter '{key}' must be .*, got"
    with pytest.raises(ValueError, match=want):
        sin.get_provider(name, **{key: value})
    with pytest.raises(ValueError, match=want):
        sin.get_provider(name).with_params(**{key: value})
    text = format_value(value)
    if "," not in text and ":" not in text and "=" not in text:  # the CLI form, where it has one
        with pytest.raises(ValueError, match=want):
            sin.get_provider(f"{name}:{key}={text}")


@pytest.mark.parametrize("spec,key", [
    ("seeds:num_levels=50", "num_levels"), ("seeds:histogram_bins=0", "histogram_bins"),
    ("fastslic:subsample_stride=0", "subsample_stride"), ("slic:compactness=0", "compactness"),
    ("slic:compactness=abc", "compactness"), ("slic:compactness=-5", "compactness"),
    ("slic:first_ratio=0", "first_ratio"), ("fh:max_rounds=0", "max_rounds"), ("sin:weights=5", "weights"),
    ("lsc:ratio=-1", "ratio"), ("sin:precision=fp16", "precision"), ("sin:device=gpu", "device"),
    ("ers:connectivity=6", "connectivity"), ("snic:compactness=nan", "compactness")])
def test_issue_parameter_values_are_refused_before_running(spec, key):
    """The values of the issue (segfaults, SIGFPE, raw ZeroDivisionError/TypeError/AttributeError,
    silent nonsense) are refused when the provider is made, before any native code runs."""
    name = spec.partition(":")[0]
    if name not in sin.available_providers():
        pytest.skip(f"{name} is not installed here")
    with pytest.raises(ValueError, match=rf"provider '{name}': parameter '{key}' must be [^\n]+, got"):
        sin.get_provider(spec)


# ---------------------------------------------------------------------------------- spec strings
_SPEC_WORDS = st.sampled_from(["slic", "sin", "ers", "grid", "sin_msrc21", "nope", "h4.mod", "os.path", "json",
                               "sin.providers.grid", "compactness", "weights", "msrc21", "k", "1x", "", " "])
_SPEC_CHARS = st.text(alphabet=st.sampled_from(list("abc019_.:=,@ -'\"[]()")), max_size=12)


@settings(FUZZ, max_examples=200)
@given(parts=st.lists(st.one_of(_SPEC_WORDS, _SPEC_CHARS), min_size=1, max_size=6),
       seps=st.lists(st.sampled_from([":", "=", ",", "@", ".", ""]), min_size=6, max_size=6))
def test_spec_strings_give_a_provider_or_one_value_error(parts, seps):
    text = "".join(p + s for p, s in zip(parts, seps))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            p = sin.get_provider(text)
    except ValueError as exc:
        assert "\n" not in str(exc).strip() or "Traceback" not in str(exc)
        return
    assert isinstance(p, sin.Provider)
    assert len(p.fingerprint) == 16


# ---------------------------------------------------------------------------------- user-code identity
@settings(FUZZ, max_examples=10)
@given(a=st.integers(1, 6), b=st.integers(1, 6))
def test_closures_of_one_factory_never_share_cached_maps(tmp_path_factory, a, b):
    """Closures from one factory (same name, same file, same parameters) used to share a cache key."""
    from sin.providers import LabelCache

    def factory(n):
        def bands(image, n_segments):
            return (np.arange(image.shape[0]) * n // image.shape[0])[:, None].repeat(image.shape[1], 1)
        return bands

    cache = LabelCache(tmp_path_factory.mktemp("labels"))
    img = np.zeros((12, 10, 3), np.float32)
    fa, fb = factory(a), factory(b)
    la, _ = cache.labels(fa, img, 4)
    lb, _ = cache.labels(fb, img, 4)
    assert la.max() + 1 == a and lb.max() + 1 == b
    assert sin.get_provider(fa).fingerprint != sin.get_provider(fb).fingerprint
    assert not any(cache.root.rglob("*.npz"))  # undeclared code: never written to disk


# ---------------------------------------------------------------------------------- cache-file damage
@st.composite
def _damaged_maps(draw):
    kind = draw(st.sampled_from(["float", "negative", "gaps", "shape", "disconnected", "bytes", "empty"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    labels = np.repeat(np.repeat(np.arange(6).reshape(2, 3), 6, 0), 4, 1)  # 12 x 12, 6 blocks
    if kind == "float":
        labels = labels + rng.random(labels.shape)
    elif kind == "negative":
        labels = labels - draw(st.integers(1, 5))
    elif kind == "gaps":
        labels = labels * draw(st.integers(2, 9))
    elif kind == "shape":
        labels = labels[: draw(st.integers(1, 11))]
    elif kind == "disconnected":
        labels = labels.copy()
        labels[0, 0] = 5
    elif kind == "empty":
        labels = labels[:0]
    return kind, labels


@settings(FUZZ, max_examples=14)
@given(case=_damaged_maps())
def test_damaged_cache_files_are_recomputed_not_served(tmp_path_factory, case):
    from sin.providers import LabelCache
    from sin.providers.cache import LabelCacheWarning

    kind, bad = case
    cache = LabelCache(tmp_path_factory.mktemp("labels"))
    img = np.random.default_rng(0).random((12, 12, 3)).astype(np.float32)
    want, _ = cache.labels("grid", img, 6)
    path = cache.path(sin.get_provider("grid"), 6, img)
    if kind == "bytes":
        path.write_bytes(path.read_bytes()[:40])  # truncated by a killed writer
    else:
        np.savez_compressed(path, labels=bad, seconds=np.float64(0.1), image=np.str_(sin.providers.image_digest(img)))
    with pytest.warns(LabelCacheWarning, match="damaged"):
        got, _ = cache.labels("grid", img, 6)
    assert got.dtype == np.int32 and np.array_equal(got, want)
    again, _ = cache.labels("grid", img, 6)  # rewritten: served from the cache now, silently
    assert np.array_equal(again, want)
