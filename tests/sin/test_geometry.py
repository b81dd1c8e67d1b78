"""sin.geometry.grid_shape: symmetric in the two orientations, close to the request."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sin.geometry import grid_shape, level_shapes, network_size


def _old_rule(k, h, w):  # HEAD's rule (rows first), kept for the landscape regression check
    n = max(1, min(h, int(round(math.sqrt(k * h / w)))))
    return n, max(1, min(w, int(round(k / n))))


def test_thin_strips_get_the_requested_count_in_both_orientations():
    # issue 15 item 8: 158 superpixels for K=100 on 2000x8, 100 on 8x2000
    assert grid_shape(100, 2000, 8) == (100, 1)
    assert grid_shape(100, 8, 2000) == (1, 100)


def test_paper_grids():
    assert grid_shape(600, 321, 481) == (20, 30)
    assert grid_shape(600, 481, 321) == (30, 20)
    assert grid_shape(200, 321, 481) == (12, 17)


@settings(max_examples=300, deadline=None)
@given(h=st.integers(1, 5000), w=st.integers(1, 5000), k=st.integers(1, 20000))
def test_transposed_image_gets_transposed_grid(h, w, k):
    n, m = grid_shape(k, h, w)
    assert grid_shape(k, w, h) == (m, n) or h == w
    assert 1 <= n <= h and 1 <= m <= w


@settings(max_examples=300, deadline=None)
@given(h=st.integers(1, 3000), extra=st.integers(0, 3000), k=st.integers(1, 20000))
def test_landscape_grids_unchanged_and_never_further_from_k(h, extra, k):
    w = h + extra  # landscape or square: the rule before the fix
    n, m = grid_shape(k, h, w)
    old = _old_rule(k, h, w)
    assert abs(n * m - k) <= abs(old[0] * old[1] - k)
    assert (n, m) == old


@settings(max_examples=300, deadline=None)
@given(h=st.integers(1, 3000), w=st.integers(1, 3000), k=st.integers(1, 5000))
def test_count_close_to_request_when_unclamped(h, w, k):
    n, m = grid_shape(k, h, w)
    short, long_ = sorted((h, w))
    if k <= short * short:  # the grid fits without clamping: rounding error only
        assert abs(n * m - k) <= max(n, m) / 2 + 1


def test_network_and_level_shapes():
    assert network_size(20, 30) == (305, 465)
    assert level_shapes(2, 3)["0v"] == (17, 33)  # k -> 2k - 1 four times: 2 -> 17, 3 -> 33
    with pytest.raises(ValueError):
        network_size(0, 3)
    with pytest.raises(ValueError):
        grid_shape(0, 10, 10)
