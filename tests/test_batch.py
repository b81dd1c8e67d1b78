"""The parallel batch helper: same results as a serial loop, in order, with clear errors."""

import numpy as np
import pytest
from PIL import Image

from sin.providers import get_provider, parallel_map, process_pool, run_provider


@pytest.fixture(scope="module")
def pool():
    # one pool for the module: starting spawn workers costs seconds (each imports torch)
    with process_pool(2) as p:
        yield p


def test_parallel_map_keeps_order_and_matches_serial(pool):
    items = [str(i) for i in range(7)]
    assert parallel_map(int, items, executor=pool, progress=False) == list(range(7))
    assert parallel_map(int, items, processes=1, progress=False) == list(range(7))
    assert parallel_map(int, [], processes=2, progress=False) == []


def test_parallel_map_names_the_failing_item(pool):
    with pytest.raises(RuntimeError, match=r"item 2 \('x'\)") as info:
        parallel_map(int, ["1", "2", "x", "4"], executor=pool, progress=False)
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(RuntimeError, match="item 0"):
        parallel_map(int, ["y"], processes=1, progress=False)


def test_parallel_map_rejects_bad_process_counts():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="processes"):
            parallel_map(int, ["1"], processes=bad, progress=False)


def test_run_provider_parallel_equals_serial(tmp_path, rng, pool):
    images = [rng.integers(0, 256, size=(40 + 8 * i, 50, 3), dtype=np.uint8) for i in range(3)]
    path = tmp_path / "img.png"
    Image.fromarray(images[0]).save(path)
    inputs = [*images, path]  # arrays and a path (read in the worker)
    got = run_provider("slic", inputs, n_segments=20, executor=pool, progress=False)
    slic = get_provider("slic")
    want = [slic(im, 20) for im in images] + [slic(images[0], 20)]
    assert len(got) == 4
    for g, w in zip(got, want):
        assert g.dtype == np.int32
        np.testing.assert_array_equal(g, w)
    # provider parameters are passed through
    coarse = run_provider("slic", images[:1], n_segments=20, processes=1, progress=False, compactness=100.0)
    np.testing.assert_array_equal(coarse[0], slic(images[0], 20, compactness=100.0))


def test_run_provider_errors(tmp_path, pool):
    with pytest.raises(ValueError, match="unknown superpixel provider 'nope'; available: .*slic"):
        run_provider("nope", [np.zeros((8, 8, 3))], 4)
    with pytest.raises(ValueError, match="n_segments"):
        run_provider("grid", [np.zeros((8, 8, 3))], 0)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        run_provider("grid", [tmp_path / "missing.png"], 4)
    # a failure inside a worker names the image and keeps the provider's message
    with pytest.raises(RuntimeError, match=r"item 1 .*at least 16x16"):
        run_provider("seeds", [np.zeros((32, 32, 3)), np.zeros((8, 8, 3))], 4, executor=pool, progress=False)
