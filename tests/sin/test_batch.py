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
    with pytest.raises(RuntimeError, match=r"image 1 .*at least 16x16"):
        run_provider("seeds", [np.zeros((32, 32, 3)), np.zeros((8, 8, 3))], 4, executor=pool, progress=False)


def _alive(pid: int) -> bool:
    import os

    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()  # a zombie has exited (its parent has not reaped it)
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="uses /proc and kill -9")
def test_pool_workers_die_with_their_parent(tmp_path):
    """kill -9 of a parent with busy workers: the workers are gone within seconds (before: they
    ran their queue to the end as orphans, for minutes)."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    pids_file = tmp_path / "pids"
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        from sin.providers.batch import process_pool
        if __name__ == "__main__":
            pool = process_pool(2, mp_context="fork")  # fork: no second torch import; same initializer
            futures = [pool.submit(time.sleep, 0.5) for _ in range(4)]
            [f.result() for f in futures]
            pids = list(pool._processes)
            for _ in range(4):
                pool.submit(time.sleep, 120)   # busy workers: orphans would live 2 minutes
            time.sleep(0.5)
            open({str(pids_file)!r}, "w").write(" ".join(map(str, pids)))
            time.sleep(300)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=os.getcwd())
    try:
        deadline = time.time() + 120
        while not pids_file.exists() or not pids_file.read_text().strip():
            assert proc.poll() is None, "the parent script failed"
            assert time.time() < deadline, "the pool did not start"
            time.sleep(0.2)
        workers = [int(p) for p in pids_file.read_text().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 10
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    left = [p for p in workers if _alive(p)]
    for p in left:  # never leave them behind, even when the test fails
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent"
