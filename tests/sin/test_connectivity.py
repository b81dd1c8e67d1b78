import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sin.connectivity import (
    check_superpixels,
    connected_components,
    enforce_connectivity,
    is_4connected,
    relabel_sequential,
)


def test_is_4connected_hand_cases():
    assert is_4connected(np.array([[0, 0], [1, 1]]))
    assert not is_4connected(np.array([[0, 1], [1, 0]]))  # diagonal touch is not 4-connected
    assert not is_4connected(np.array([[0, 1, 0]]))
    assert is_4connected(np.array([[5]]))


def test_relabel_sequential():
    out = relabel_sequential(np.array([[10, 3], [3, 7]]))
    assert out.dtype == np.int32 and out.tolist() == [[2, 0], [0, 1]]


def test_enforce_connectivity_hand_cases():
    # two equal fragments of label 0: the first one (lowest component) keeps it
    lab, changed = enforce_connectivity(np.array([[0, 1, 0]]))
    assert lab.tolist() == [[0, 1, 1]] and changed == 1
    # the small fragment of label 2 joins the neighbour it shares the longest border with
    lab, changed = enforce_connectivity(np.array([
        [2, 2, 2, 1, 1],
        [0, 0, 0, 1, 2],
        [0, 0, 0, 1, 1],
    ]))
    assert lab.tolist() == [[2, 2, 2, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]
    assert changed == 1
    # checkerboard: each label keeps its first fragment; each stray pixel joins the kept
    # neighbour (the bottom-right 0 touches only the kept 1 above it and a stray 1)
    lab, changed = enforce_connectivity(np.array([[0, 1], [1, 0]]))
    assert lab.tolist() == [[0, 1], [0, 1]] and changed == 2


@settings(max_examples=60, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 25), st.integers(1, 25)), elements=st.integers(0, 6)))
def test_enforce_connectivity_properties(labels):
    out, changed = enforce_connectivity(labels)
    check_superpixels(out, labels.shape)
    # pixels of the largest fragment of every label keep their label (up to relabelling)
    comp, _ = connected_components(labels)
    assert changed == 0 if is_4connected(labels) else changed > 0
    # the partition only coarsens: pixels in one input component stay together
    for c in np.unique(comp):
        assert np.unique(out[comp == c]).size == 1


def test_check_superpixels_errors():
    with pytest.raises(ValueError, match="int32"):
        check_superpixels(np.zeros((3, 3), np.int64))
    with pytest.raises(ValueError, match="contiguous"):
        check_superpixels(np.array([[0, 2]], np.int32))
    with pytest.raises(ValueError, match="4-connected"):
        check_superpixels(np.array([[0, 1, 0]], np.int32))
    check_superpixels(np.array([[0, 1, 0]], np.int32), connected=False)
    with pytest.raises(ValueError, match="shape"):
        check_superpixels(np.zeros((3, 3), np.int32), (3, 4))
