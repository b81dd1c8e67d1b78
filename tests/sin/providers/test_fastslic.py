"""The optional ``fastslic`` provider (skipped when fast-slic is not installed)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sin.connectivity import check_superpixels, is_4connected
from sin.providers import available_providers, get_provider

fast_slic = pytest.importorskip("fast_slic")


def test_registered_as_extra():
    assert "fastslic" in available_providers()
    assert "fastslic" not in available_providers(include_extras=False)
    p = get_provider("fastslic")
    assert p.connected and p.extra and "fast-slic" in p.spec.version


def test_count_is_calibrated_on_noise_and_natural_images():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (321, 481, 3), dtype=np.uint8)  # uncalibrated: 39 of 600
    p = get_provider("fastslic")
    for k in (100, 600):
        labels = p(noise, k)
        check_superpixels(labels, noise.shape[:2])
        assert abs(labels.max() + 1 - k) <= 0.1 * k
    with warnings.catch_warnings():  # the registry warns about such a count: that is the point here
        warnings.simplefilter("ignore")
        raw = get_provider("fastslic:calibrate=False")(noise, 600)
    assert raw.max() + 1 < 300  # the failure calibration repairs


@pytest.mark.parametrize("shape,k", [((2, 1), 5), ((1, 2), 600), ((100, 100), 20000), ((8, 2000), 10**6)])
def test_requests_beyond_the_pixel_count_are_clamped_not_crashing(shape, k):
    # fast-slic itself dies with SIGFPE when asked for more components than pixels
    img = np.random.default_rng(1).integers(0, 256, shape + (3,), dtype=np.uint8)
    labels = get_provider("fastslic")(img, k)
    check_superpixels(labels, shape)
    assert labels.max() + 1 <= min(shape[0] * shape[1], 32767)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(2, 120), w=st.integers(2, 120), k=st.integers(1, 800), seed=st.integers(0, 9),
       compactness=st.sampled_from([1.0, 10.0, 40.0]))
def test_labels_are_4connected(h, w, k, seed, compactness):
    rng = np.random.default_rng(seed)
    img = (rng.random((h // 3 + 1, w // 3 + 1, 3)) * 255).astype(np.uint8).repeat(3, 0).repeat(3, 1)[:h, :w]
    img = np.clip(img.astype(int) + rng.integers(-30, 31, img.shape), 0, 255).astype(np.uint8)
    labels = get_provider(f"fastslic:compactness={compactness}")(img, k, check=True)
    assert is_4connected(labels)
