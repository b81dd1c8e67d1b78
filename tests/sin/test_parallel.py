"""sin.parallel: one runner for many images (any executor, the label cache, image sources, failures)."""

import argparse
import functools
import sys

import numpy as np
import pytest
from PIL import Image

from sin.io import read_image
from sin.parallel import (Failure, ImageTooLarge, ItemError, SerialExecutor, Segmentation, add_executor_args,
                          drop_image, executor_from_args, format_pixels, image_source, iter_label_maps, label_maps,
                          parallel_map, process_pool)
from sin.providers import LabelCache, get_provider
from tests.parallel_helpers import calls, marked_image

# "@1" declares the helper's code version, so its maps are cached on disk across processes (issue 23.3)
HELPER = "tests.parallel_helpers:counting_grid@1"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIN_CACHE_DIR", str(tmp_path / "sin_cache"))


@pytest.fixture(scope="module")
def pool():
    with process_pool(2) as p:  # one pool: starting spawn workers costs seconds
        yield p


@pytest.fixture
def log(tmp_path):
    d = tmp_path / "log"
    d.mkdir()
    return d


def _images(n, shape=(24, 32)):
    return [marked_image(i, shape) for i in range(n)]


def _first_pixel(image):  # a top-level image source: picklable
    return marked_image(int(image), (20, 30))


def _shape_count(image):  # n_segments as a function of the loaded image (like the SO count rule)
    return int(image.shape[0] * image.shape[1] // 100)


def _pair(seg: Segmentation):
    return seg.n_segments, int(seg.labels.max()) + 1, seg.cached


# ------------------------------------------------------------------------------------------ results
def test_pool_equals_serial_in_input_order(pool, tmp_path):
    imgs = _images(5)
    Image.fromarray(imgs[1]).save(tmp_path / "one.png")
    items = [imgs[0], tmp_path / "one.png", str(tmp_path / "one.png"), image_source(_first_pixel, 3),
             functools.partial(_first_pixel, 4)]
    serial = label_maps("slic", items, 20, processes=1, progress=False)
    for executor in (pool, SerialExecutor()):
        got = label_maps("slic", items, 20, executor=executor, progress=False)
        assert [g.tobytes() for g in got] == [s.tobytes() for s in serial]
    slic = get_provider("slic")
    want = [slic(imgs[0], 20), slic(imgs[1], 20), slic(imgs[1], 20), slic(marked_image(3, (20, 30)), 20),
            slic(marked_image(4, (20, 30)), 20)]
    for g, w in zip(serial, want):
        assert g.dtype == np.int32
        np.testing.assert_array_equal(g, w)


def test_counts_per_image_several_and_computed_in_the_worker(pool):
    imgs = _images(3)
    per_image = label_maps(HELPER, imgs, [4, 9, 16], processes=1, progress=False, then=_pair)
    assert [n for n, _, _ in per_image] == [4, 9, 16]
    several = label_maps(HELPER, imgs, [(4, 9), 16, (25,)], executor=pool, progress=False, then=_pair)
    assert [[n for n, _, _ in r] if isinstance(r, list) else r[0] for r in several] == [[4, 9], 16, [25]]
    computed = label_maps(HELPER, imgs, _shape_count, executor=pool, progress=False, then=_pair)
    assert [n for n, _, _ in computed] == [24 * 32 // 100] * 3
    with pytest.raises(ValueError, match="2 entries for 3 images"):
        label_maps(HELPER, imgs, [4, 9], processes=1, progress=False)
    with pytest.raises(ValueError, match="n_segments"):
        label_maps(HELPER, imgs, 40.7, processes=1, progress=False)  # never answered from the K=40 entry
    with pytest.raises(ValueError, match="n_segments"):
        label_maps(HELPER, imgs, [4, 0, 9], processes=1, progress=False)


def test_then_runs_in_the_worker_and_drop_image_keeps_the_record(pool):
    got = label_maps(HELPER, _images(2), 9, executor=pool, progress=False, then=drop_image)
    assert all(isinstance(r, Segmentation) and r.image is None and r.labels.shape == (24, 32) for r in got)
    assert [r.n_segments for r in got] == [9, 9] and not any(r.cached or r.downscaled for r in got)
    assert all(r.source is None for r in got)  # arrays are not sent back


def test_iter_label_maps_yields_as_finished_and_pulls_lazily():
    pulled = []

    def images():
        for i in range(4):
            pulled.append(i)
            yield marked_image(i)

    it = iter_label_maps(HELPER, images(), 4, executor=SerialExecutor())
    first = next(it)
    assert first[0] == 0 and pulled == [0]  # one image at a time in this process
    it.close()
    assert pulled == [0]


# ------------------------------------------------------------------------------------------ failures
def test_any_exception_is_that_images_failure(pool, log):
    imgs = _images(5)
    spec = f"{HELPER}:log={log},fail_on=1,exit_on=3"
    for executor in (pool, SerialExecutor()):
        got = label_maps(spec, imgs, 4, executor=executor, progress=False, errors="collect")
        assert [type(r).__name__ for r in got] == ["ndarray", "Failure", "ndarray", "Failure", "ndarray"]
        assert got[1].index == 1 and got[1].error == "ZeroDivisionError: the user function divided by zero"
        assert got[3].error.startswith("SystemExit: 3") and "array (24, 32, 3) uint8" in str(got[3])
    with pytest.raises(ItemError, match=r"failed on image 1 \(array \(24, 32, 3\) uint8\): ZeroDivisionError") as info:
        label_maps(spec, imgs, 4, executor=pool, progress=False)
    assert isinstance(info.value.__cause__, ZeroDivisionError) and isinstance(info.value, RuntimeError)


def test_failures_name_paths_and_sources(tmp_path, pool):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    got = label_maps("grid", [bad, image_source(_first_pixel, 2, name="dataset/item-2")], 4, executor=pool,
                     progress=False, errors="collect")
    assert isinstance(got[0], Failure) and got[0].item == str(bad) and "cannot read image" in got[0].error
    assert isinstance(got[1], np.ndarray)
    with pytest.raises(FileNotFoundError, match="missing.png"):  # before any work starts
        label_maps("grid", [tmp_path / "missing.png"], 4, processes=1, progress=False)
    with pytest.raises(ValueError, match="errors must be"):
        label_maps("grid", [marked_image(0)], 4, errors="ignore")
    with pytest.raises(TypeError, match="compactness"):
        label_maps("slic", [marked_image(0)], 4, processes=1, compactness=3)  # parameters belong to the provider


def test_parallel_map_collects_failures(pool):
    got = parallel_map(int, ["1", "x", "3"], executor=pool, progress=False, errors="collect")
    assert got[0] == 1 and got[2] == 3 and isinstance(got[1], Failure) and "invalid literal" in got[1].error


# ------------------------------------------------------------------------------------------ label cache
def test_cache_settings_travel_to_the_workers(tmp_path, pool, log):
    imgs = _images(4)
    spec = f"{HELPER}:log={log}"
    cache = LabelCache(tmp_path / "labels")
    first = label_maps(spec, imgs, 9, cache=cache, executor=pool, progress=False, then=_pair)
    assert calls(log) == {0: 1, 1: 1, 2: 1, 3: 1} and not any(c for _, _, c in first)
    again = label_maps(spec, imgs, 9, cache=tmp_path / "labels", executor=pool, progress=False, then=_pair)
    assert calls(log) == {0: 1, 1: 1, 2: 1, 3: 1} and all(c for _, _, c in again)  # reused, not recomputed
    label_maps(spec, imgs, 9, cache=LabelCache(tmp_path / "labels", recompute=True), executor=pool, progress=False)
    assert calls(log) == {0: 2, 1: 2, 2: 2, 3: 2}  # recompute: the setting reached the workers
    assert not (tmp_path / "sin_cache").exists()  # root respected: nothing in the default cache


def test_size_limit_message_and_downscaled_maps_not_cached(tmp_path):
    cache = LabelCache(tmp_path / "labels")
    img = marked_image(0, (40, 50))
    with pytest.raises(ItemError, match=r"2000 pixels, above its limit of 100 pixels.*downscale=True") as info:
        label_maps("slic", [img], 20, processes=1, progress=False, max_pixels=100, cache=cache)
    assert isinstance(info.value.__cause__, ImageTooLarge)
    small = label_maps("slic", [img], 20, processes=1, progress=False, max_pixels=100, downscale=True, cache=cache,
                       then=drop_image)[0]
    assert small.downscaled and small.labels.shape == (40, 50) and not list((tmp_path / "labels").rglob("*.npz"))
    full = label_maps("slic", [img], 20, processes=1, progress=False, max_pixels=None, cache=cache)[0]
    np.testing.assert_array_equal(full, get_provider("slic")(img, 20))
    assert len(list((tmp_path / "labels").rglob("*.npz"))) == 1  # full-size maps only
    assert format_pixels(5000) == "5000 pixels" and format_pixels(12_000_000) == "12.0 MP"
    assert format_pixels(100_000) == "0.1 MP"


def test_default_size_limit_is_the_registered_one():
    from sin.parallel import _default_limit

    # the runner checks sizes itself (to word the advice and keep downscaled maps out of the cache)
    assert _default_limit(get_provider("ers")) == 4_000_000 and _default_limit(get_provider("grid")) is None


# ------------------------------------------------------------------------------------------ resume after a kill
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL of a worker")
def test_a_worker_killed_mid_run_loses_nothing_on_resume(tmp_path, log):
    imgs = _images(8)
    spec = f"{HELPER}:log={log},die_on=5,sleep=0.05"
    cache = LabelCache(tmp_path / "labels")
    provider = get_provider(spec)
    # fork: workers start without importing torch again (the helper provider is plain numpy)
    first = label_maps(spec, imgs, 9, cache=cache, processes=2, mp_context="fork", progress=False, errors="collect")
    failed = [r.index for r in first if isinstance(r, Failure)]
    assert 5 in failed and "worker process died" in first[5].error
    stored = {i for i, img in enumerate(imgs) if cache.load(provider, img, 9) is not None}
    assert stored and 5 not in stored and {i for i in range(8) if i not in failed} <= stored
    before = calls(log)
    again = label_maps(spec, imgs, 9, cache=cache, processes=1, progress=False)  # resumed here
    resumed = {i: n - before.get(i, 0) for i, n in calls(log).items() if n - before.get(i, 0)}
    assert set(resumed) == set(range(8)) - stored and all(n == 1 for n in resumed.values())
    serial = label_maps(f"{HELPER}:log={tmp_path}", imgs, 9, processes=1, progress=False)
    assert [a.tobytes() for a in again] == [s.tobytes() for s in serial]


# ------------------------------------------------------------------------------------------ command-line flags
def test_executor_args_one_line_errors_and_no_dask(monkeypatch, capsys):
    from sin.cli import _Parser

    parser = _Parser(prog="t")
    add_executor_args(parser, processes=3)
    args = parser.parse_args([])
    assert args.processes == 3 and args.scheduler is None
    with executor_from_args(parser.parse_args(["--processes", "1"])) as ex:
        assert isinstance(ex, SerialExecutor)
    assert parser.parse_args(["--scheduler", "127.0.0.1:8786"]).scheduler == "tcp://127.0.0.1:8786"
    for argv, text in ((["--scheduler", "http://x"], "tcp://HOST:PORT"),
                       (["--processes", "2", "--scheduler", "tcp://h:1"], "not allowed with"),
                       (["--processes", "0"], "positive integer")):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0], err
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the dask extra were not installed
    with pytest.raises(SystemExit):
        parser.parse_args(["--scheduler", "tcp://127.0.0.1:8786"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "sin-superpixels[dask]"' in err[0]
    with pytest.raises(ValueError, match="sin-superpixels\\[dask\\]"):
        with executor_from_args(argparse.Namespace(processes=1, scheduler="tcp://127.0.0.1:8786")):
            pass


# ------------------------------------------------------------------------------------------ Dask
@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        yield cluster


def test_dask_cluster_gives_byte_identical_maps(dask_cluster, tmp_path):
    from distributed import Client

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(marked_image(i, (30 + 4 * i, 40))).save(paths[-1])
    items = [*paths, image_source(read_image, paths[0]), marked_image(9)]
    serial = label_maps("slic", items, 25, processes=1, progress=False)
    with Client(dask_cluster, set_as_default=False) as client:
        got = label_maps("slic", items, 25, executor=client.get_executor(), progress=False,
                         cache=LabelCache(tmp_path / "labels"))
    assert [g.tobytes() for g in got] == [s.tobytes() for s in serial]
    assert len(list((tmp_path / "labels").rglob("*.npz"))) == 5  # stored by the workers (im0 twice: one map)

    # the same through the command line: --scheduler tcp://HOST:PORT
    from sin.cli import main

    seg = ["segment", *map(str, paths), "-p", "slic", "-k", "25", "--format", "npy"]
    assert main(seg + ["-o", str(tmp_path / "serial")]) == 0
    assert main(seg + ["-o", str(tmp_path / "dask"), "--scheduler", dask_cluster.scheduler_address]) == 0
    for p in paths:
        for name in (f"{p.stem}.npy", f"{p.stem}_overlay.png"):
            assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes()
