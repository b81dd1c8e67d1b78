"""The benchmarks that run many images through :func:`sin.parallel.label_maps` give the same tables
on a Dask cluster (``--scheduler tcp://HOST:PORT``) as in this process (``--processes 1``)."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import data_path, write_folder_segmentation
from sin.io import write_labels

#: Columns that hold times (they differ from run to run); every other column must be equal.
TIMES = {"seconds", "provider_s", "so_s", "provider_cpu_s", "so_cpu_s"}


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a local Dask cluster: two worker processes, one thread each."""
    distributed = pytest.importorskip("distributed")
    with pytest.MonkeyPatch.context() as mp:  # the workers inherit it: nothing lands in the repo's cache/
        mp.setenv("SIN_CACHE_DIR", str(tmp_path_factory.mktemp("worker_cache")))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=40) as cluster:
            yield cluster.scheduler_address


def _images(rng, n=3, shape=(40, 56)):
    """``n`` images of flat colour regions (+ noise) and their region maps."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = []
    for k in range(n):
        reg = (yy // (shape[0] // 2)) * 2 + ((xx + 4 * k) // (shape[1] // 2)).clip(0, 1)
        palette = rng.integers(0, 256, size=(reg.max() + 1, 3))
        out.append((np.clip(palette[reg] + rng.normal(0, 4, reg.shape + (3,)), 0, 255).astype(np.uint8), reg))
    return out


def _next_out(tmp_path):
    return tmp_path / f"out{len(list(tmp_path.glob('out*')))}"


def _run_table(module, argv) -> None:
    """A table script's ``run`` through its parser and config (as ``main`` does), checking it succeeded."""
    from sin import argtypes as A

    _, code = module.run(A.config_from_args(module.Config, module.build_parser().parse_args(argv)), argv)
    assert code == 0


def superpixel_quality(tmp_path, flags):
    from benchmarks import superpixel_quality as Q

    imgs, labs = tmp_path / "images", tmp_path / "labels"
    if not imgs.is_dir():
        imgs.mkdir()
        labs.mkdir()
        for k, (img, reg) in enumerate(_images(np.random.default_rng(0))):
            Image.fromarray(img).save(imgs / f"im{k}.png")
            write_labels(reg, labs / f"im{k}.npy")
    out = _next_out(tmp_path)
    _run_table(Q, ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--providers", "grid", "slic",
                   "--n-segments", "8", "20", "--out", str(out), "--cache", str(out / "cache"), "--no-progress",
                   "--no-plots", *flags])
    return pd.read_csv(out / "pairs.csv.gz", dtype={"image": str})


def sod_table(tmp_path, flags):
    from benchmarks import sod_table as S

    root = tmp_path / "toy"
    if not root.is_dir():
        for k, (img, reg) in enumerate(_images(np.random.default_rng(1))):
            for d, arr in (("images", img), ("ground_truth_mask", (reg == 0).astype(np.uint8) * 255)):
                (root / d).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(root / d / f"{k:04d}.{'jpg' if d == 'images' else 'png'}")
    out = _next_out(tmp_path)
    _run_table(S, ["--dataset", "toy", "--data-root", str(root), "--providers", "grid", "slic", "--n-segments", "200",
                   "400", "--out", str(out), "--cache", str(out / "cache"), "--quiet", "--examples", "1", *flags])
    return pd.read_csv(out / "table2_toy_per_image.csv.gz", dtype={"image": str})


def e2e_superpixels(tmp_path, flags):
    from benchmarks import e2e_superpixels as E
    from sin.checkpoint import DEFAULT_WEIGHTS

    root = tmp_path / "seg"
    if not root.is_dir():
        samples = {f"im{k}": (img, reg.astype(np.uint8)) for k, (img, reg) in enumerate(_images(np.random.default_rng(2)))}
        write_folder_segmentation(root, samples, "0 a\n1 b\n2 c\n3 d\n255 void\n")
    out = _next_out(tmp_path)
    assert E.main(["--dataset", "folder", "--data-root", str(root), "--tuned", str(DEFAULT_WEIGHTS), "--n-segments",
                   "12", "--n-boot", "50", "--figure-images", "1", "--no-progress", "--out", str(out), "--cache",
                   str(out / "cache"), *flags]) == 0
    return pd.read_csv(out / "asa_per_image.csv", dtype={"image": str})


def training_readme_facts(tmp_path, flags):
    from benchmarks import training_readme_facts as T
    from sin.datasets import BSDS500
    from sin.parallel import executor_from_args
    from sin.providers import LabelCache

    data = BSDS500(data_path("BSDS500"), "test")
    out = _next_out(tmp_path)
    with executor_from_args(T.build_parser().parse_args(flags)) as executor:
        return T.reference_rows(data, 3, sizes=(60, 150), providers=("slic", "grid"), cache=LabelCache(out),
                                executor=executor, progress=False)


def _transitions(dask_scheduler) -> int:
    return dask_scheduler.transition_counter


@pytest.mark.parametrize("script", [superpixel_quality, sod_table, e2e_superpixels, training_readme_facts],
                         ids=lambda f: f.__name__)
def test_scheduler_gives_the_local_tables(script, scheduler, tmp_path):
    from distributed import Client

    here = script(tmp_path, ["--processes", "1"])
    with Client(scheduler, set_as_default=False) as client:
        before = client.run_on_scheduler(_transitions)
        there = script(tmp_path, ["--scheduler", scheduler])
        assert client.run_on_scheduler(_transitions) > before  # the cluster did the work
    assert len(here) > 0
    cols = [c for c in here.columns if c not in TIMES]
    pd.testing.assert_frame_equal(here[cols], there[cols])
