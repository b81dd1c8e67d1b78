"""End-to-end quality benchmark on two tiny generated images (fast, no real data needed)."""

import gzip
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks import superpixel_quality
from benchmarks._common import markdown_table
from benchmarks._report import read_sidecar, write_sidecar
from sin import argtypes as A
from sin.io import write_labels


def _run(argv, rc=0):
    """The benchmark's summary for ``argv`` (through the parser and its config), checking the exit code."""
    config = A.config_from_args(superpixel_quality.Config, superpixel_quality.build_parser().parse_args(argv))
    summary, code = superpixel_quality.run(config, argv)
    assert code == rc
    return summary


def _make_folder(root, rng):
    """Two 48x64 images made of flat colour regions (+ noise) and their region maps as GT."""
    imgs, labs = root / "images", root / "labels"
    imgs.mkdir()
    labs.mkdir()
    yy, xx = np.mgrid[:48, :64]
    regions = [(yy // 24) * 2 + (xx // 32),                 # 4 quadrants
               (xx + yy > 50).astype(int) + 2 * (yy > 30)]  # a diagonal and a horizontal cut
    for k, reg in enumerate(regions):
        palette = rng.integers(0, 256, size=(reg.max() + 1, 3))
        img = np.clip(palette[reg] + rng.normal(0, 4, size=reg.shape + (3,)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(imgs / f"im{k}.png")
        if k == 0:  # two annotations: the regions, and a coarser one (1-based, as BSDS500)
            write_labels(reg, labs / f"im{k}-0.png")
            write_labels((reg // 2) + 1, labs / f"im{k}-1.csv")
        else:
            write_labels(reg, labs / f"im{k}.npy")
    return imgs, labs


def test_quality_pipeline_end_to_end(tmp_path, rng, capsys):
    imgs, labs = _make_folder(tmp_path, rng)
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--providers", "grid", "slic",
            "--n-segments", "12", "30", "--processes", "1", "--out", str(out), "--cache", str(cache), "--no-progress"]
    summary = _run(argv)
    for name in ("quality.csv", "pairs.csv.gz", "quality.md", "quality.json", "matched.csv", "asa_vs_k.png", "co_vs_k.png",
                 "br_bp.png", "fig5.png"):
        assert (out / name).stat().st_size > 0, name
    q = pd.read_csv(out / "quality.csv")
    assert list(q["method"]) == ["grid", "grid", "slic", "slic"] and list(q["n_segments"]) == [12, 30, 12, 30]
    assert (q["n_images"] == 2).all() and (q["n_pairs"] == 3).all()  # im0 has two GTs, im1 one
    for col in ("asa", "rec", "pre", "co", "ev"):
        assert q[col].between(0, 1).all(), col
    assert np.allclose(q["ue"], 1 - q["asa"])
    assert (abs(q["sp"] / q["n_segments"] - 1) < 0.5).all()  # about the requested counts
    # the grid is the most compact (squares: CO near pi/4)
    assert q[q.method == "grid"]["co"].min() > q[q.method == "slic"]["co"].max()
    # SLIC follows the flat colour regions: better boundaries than the grid at the same K
    assert q[q.method == "slic"]["rec"].mean() > q[q.method == "grid"]["rec"].mean()
    pairs = pd.read_csv(out / "pairs.csv.gz")
    assert len(pairs) == 2 * 2 * 3 and set(pairs["image"]) == {"im0", "im1"}
    # the summary is the mean over pairs of the raw rows
    g = pairs[(pairs.method == "slic") & (pairs.n_segments == 30)]
    row = q[(q.method == "slic") & (q.n_segments == 30)].iloc[0]
    assert row["asa"] == pytest.approx(g["asa"].mean(), rel=1e-5)
    assert row["sp"] == pytest.approx(g.drop_duplicates("image")["sp"].mean())
    md = (out / "quality.md").read_text()
    assert "| grid | 12 |" in md and "Aggregation: **mean**" in md
    record = read_sidecar(out / "quality.md")
    assert [p["method"] for p in record["providers"]] == ["grid", "slic"] and record["failures"] == []
    assert record["protocol"]["dataset"] == "folder" and record["protocol"]["processes"] == 1
    assert len(list(cache.rglob("*.npz"))) == 2 * 2 * 2
    err = capsys.readouterr().err
    assert "8 label maps computed, 0 from cache" in err

    # resumable: a second run reuses every cached map and gives the same numbers
    again = _run(argv + ["--aggregate", "worst", "--no-plots"])
    assert "0 label maps computed, 8 from cache" in capsys.readouterr().err
    assert np.allclose(again["sp"], summary["sp"])
    # worst GT: per image the minimum ASA / maximum UE_NP over its GTs, then the mean over images
    worst = again.set_index(["method", "n_segments"])
    per_image = pairs.groupby(["method", "n_segments", "image"])
    expected_asa = per_image["asa"].min().groupby(["method", "n_segments"]).mean()
    expected_ue_np = per_image["ue_np"].max().groupby(["method", "n_segments"]).mean()
    assert np.allclose(worst["asa"], expected_asa.loc[worst.index], rtol=1e-5)
    assert np.allclose(worst["ue_np"], expected_ue_np.loc[worst.index], rtol=1e-5)
    with gzip.open(out / "pairs.csv.gz", "rt") as f:
        assert f.readline().startswith("method,n_segments,image,ground_truth,ue,oe,rec,pre")


def test_corrupted_cache_file_is_recomputed(tmp_path, rng, capsys):
    imgs, labs = _make_folder(tmp_path, rng)
    argv = ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--providers", "grid",
            "--n-segments", "12", "--processes", "1", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c"),
            "--no-progress", "--no-plots"]
    first = _run(argv)
    victim = min((tmp_path / "c").rglob("*.npz"))
    victim.write_bytes(b"garbage")
    second = _run(argv)
    assert "1 label maps computed, 1 from cache" in capsys.readouterr().err
    same = [c for c in first.columns if c != "seconds_per_image"]  # the recomputed map has a new timing
    pd.testing.assert_frame_equal(first[same], second[same])
    _run(argv + ["--recompute"])
    assert "2 label maps computed, 0 from cache" in capsys.readouterr().err


def test_unknown_methods_are_reported_with_the_available_ones(tmp_path, rng, capsys):
    imgs, labs = _make_folder(tmp_path, rng)
    base = ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--n-segments", "12",
            "--processes", "1", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c"), "--no-progress",
            "--no-plots"]
    assert superpixel_quality.main(base + ["--providers", "grid", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.match(r"error: unknown superpixel provider 'nosuch'; available: .*grid", err)
    summary = _run(base + ["--providers", "grid", "nosuch", "--skip-unavailable"])
    assert list(summary["method"]) == ["grid"]
    assert superpixel_quality.main(["--dataset", "folder", "--providers", "grid"]) == 2
    assert "--images" in capsys.readouterr().err


def test_matched_reads_each_curve_at_equal_actual_counts():
    summary = pd.DataFrame({"method": ["a", "a", "a", "b", "b"], "n_segments": [200, 300, 600, 300, 600],
                            "sp": [200.0, 294.0, 600.0, 305.0, 590.0], "asa": [0.90, 0.93, 0.96, 0.94, 0.97],
                            "rec": [0.60, 0.69, 0.78, 0.70, 0.80], "co": [0.5, 0.5, 0.5, 0.3, 0.4]})
    got = superpixel_quality.matched(summary, at=(300, 600)).set_index("method")
    # a: between (294, 0.69) and (600, 0.78) -> 0.69 + 6/306 * 0.09
    assert got.loc["a", "rec@300"] == pytest.approx(0.69 + 6 / 306 * 0.09)
    assert got.loc["a", "asa@600"] == pytest.approx(0.96)
    # b starts at 305 and ends at 590: both targets are outside its range, no extrapolation
    assert np.isnan(got.loc["b", "rec@300"]) and np.isnan(got.loc["b", "co@600"])
    assert list(got.columns) == ["asa@300", "rec@300", "co@300", "asa@600", "rec@600", "co@600"]


def test_markdown_table_formats():
    df = pd.DataFrame({"m": ["a", "b"], "k": [200, 300], "v": [0.123456, np.nan]})
    assert markdown_table(df, {"v": ".3f"}).splitlines() == [
        "| m | k | v |", "|---|---|---|", "| a | 200 | 0.123 |", "| b | 300 |  |"]


@pytest.mark.slow
def test_quality_pipeline_in_worker_processes(tmp_path, rng):
    imgs, labs = _make_folder(tmp_path, rng)
    common = ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--providers", "grid", "slic",
              "--n-segments", "12", "--no-progress", "--no-plots"]
    serial = _run(common + ["--processes", "1", "--out", str(tmp_path / "a"),
                                               "--cache", str(tmp_path / "ca")])
    parallel = _run(common + ["--processes", "2", "--out", str(tmp_path / "b"),
                                                 "--cache", str(tmp_path / "cb")])
    cols = ["method", "n_segments", "sp", "asa", "rec", "pre", "co"]
    pd.testing.assert_frame_equal(serial[cols], parallel[cols])


# ------------------------------------------------------------------ provider seam, dataset identity
def test_other_copy_of_the_dataset_with_other_pixels_is_recomputed(tmp_path, rng):
    """Same image ids and GTs, different pixels, one cache: the second copy must get its own maps."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a_imgs, labs = _make_folder(tmp_path / "a", rng)
    b_imgs, _ = _make_folder(tmp_path / "b", rng)  # same names; swapped below for other layouts too
    (b_imgs / "im0.png").write_bytes((a_imgs / "im1.png").read_bytes())
    (b_imgs / "im1.png").write_bytes((a_imgs / "im0.png").read_bytes())
    cache = tmp_path / "cache"

    def run(imgs, out, cache_dir):
        return _run(["--dataset", "folder", "--images", str(imgs), "--labels", str(labs),
                                        "--providers", "slic", "--n-segments", "12", "--processes", "1",
                                        "--out", str(out), "--cache", str(cache_dir), "--no-progress", "--no-plots"])

    cols = ["sp", "asa", "rec", "pre", "co", "ev"]
    first = run(a_imgs, tmp_path / "out_a", cache)
    shared = run(b_imgs, tmp_path / "out_b", cache)  # same ids, same cache folder name ("images")
    fresh = run(b_imgs, tmp_path / "out_b2", tmp_path / "other_cache")
    pd.testing.assert_frame_equal(shared[cols], fresh[cols])
    assert not np.allclose(shared[cols].to_numpy(float), first[cols].to_numpy(float))


def test_user_provider_from_an_import_path(tmp_path, rng, monkeypatch):
    """``--providers package.module:function[:k=v]``: a user's own method runs like a built-in one."""
    pkg = tmp_path / "userspx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "stripes.py").write_text(
        "import numpy as np\n\n"
        "def stripes(image, n_segments, width=None):\n"
        "    # vertical stripes: n_segments of them, or of a fixed width\n"
        "    w = image.shape[1]\n"
        "    step = width or max(1, w // n_segments)\n"
        "    return (np.arange(w)[None, :] // step).repeat(image.shape[0], 0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    imgs, labs = _make_folder(tmp_path, rng)
    out = tmp_path / "out"
    summary = _run(
        ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--providers", "userspx.stripes:stripes@1",
         "userspx.stripes:stripes@1:width=16", "--n-segments", "8", "--processes", "1", "--out", str(out),
         "--cache", str(tmp_path / "c"), "--no-progress", "--no-plots"])
    assert list(summary["method"]) == ["stripes", "stripes:width=16"]
    assert list(summary["sp"]) == [8.0, 4.0]  # 64 px wide: 8 stripes of 8 px, 4 of 16 px
    md = (out / "quality.md").read_text()
    assert "| stripes |" in md and "| stripes:width=16 |" in md
    tags = {p.relative_to(tmp_path / "c" / "labels").parts[0] for p in (tmp_path / "c").rglob("*.npz")}
    # one cache tag per setting (on disk because "@1" declares the code's version; see sin.providers.registry)
    assert len(tags) == 2 and all(t.startswith("stripes-") for t in tags)


def test_bad_numbers_of_segments_and_processes_fail_with_one_line(capsys):
    for argv in (["--n-segments", "0"], ["--processes", "0"], ["--n-segments", "x"]):
        with pytest.raises(SystemExit):
            superpixel_quality.build_parser().parse_args(argv)
        assert "positive integer" in capsys.readouterr().err


# ------------------------------------------------------------------ paired intervals
def test_paired_bootstrap_constant_differences_give_a_zero_width_interval():
    from benchmarks._common import paired_bootstrap

    mean, lo, hi = paired_bootstrap(np.full(50, 0.25), n_boot=500)
    assert mean == lo == hi == pytest.approx(0.25)
    # weights do not matter for equal differences
    assert paired_bootstrap(np.full(7, -1.0), n_boot=200, weights=np.arange(1, 8)) == pytest.approx((-1, -1, -1))


def test_paired_bootstrap_matches_the_normal_interval():
    from benchmarks._common import paired_bootstrap

    d = np.random.default_rng(1).normal(0.3, 2.0, size=400)
    mean, lo, hi = paired_bootstrap(d, n_boot=20000, seed=3)
    half = 1.96 * d.std(ddof=1) / np.sqrt(d.size)  # about 0.196
    assert mean == pytest.approx(d.mean())
    assert lo == pytest.approx(mean - half, abs=0.02) and hi == pytest.approx(mean + half, abs=0.02)
    assert paired_bootstrap(d, n_boot=2000, seed=5) == paired_bootstrap(d, n_boot=2000, seed=5)  # seeded


def test_paired_bootstrap_weighted_mean_and_bad_input():
    from benchmarks._common import paired_bootstrap

    mean, lo, hi = paired_bootstrap([1.0, 4.0], n_boot=1000, weights=[3, 1])
    assert mean == pytest.approx((3 * 1 + 4) / 4)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(4.0)  # resamples of one unit only give 1 or 4
    for bad in ([], [np.nan, 1.0], [[1.0, 2.0]]):
        with pytest.raises(ValueError):
            paired_bootstrap(bad)
    with pytest.raises(ValueError, match="weights"):
        paired_bootstrap([1.0, 2.0], weights=[1.0])
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap([1.0, 2.0], n_boot=0)


def _pairs_table():
    """Raw rows of two methods on three images (image "b" has two GTs), at requested 300 and 600."""
    rows = []
    asa = {("sin", 300): [0.90, 0.80, 0.85], ("sin", 600): [0.95, 0.90, 0.91],
           ("x", 300): [0.91, 0.78, 0.86], ("x", 600): [0.93, 0.92, 0.95]}
    sp = {("sin", 300): 290.0, ("sin", 600): 600.0, ("x", 300): 310.0, ("x", 600): 590.0}
    for (m, k), values in asa.items():
        for img, v in zip("abc", values):
            for gt in range(2 if img == "b" else 1):
                rows.append({"method": m, "n_segments": k, "image": img, "ground_truth": gt, "sp": sp[m, k],
                             **dict.fromkeys(superpixel_quality.SUMMARY_METRICS, 0.5),
                             "asa": v + 0.01 * gt, "rec": v / 2, "co": 0.5, "seconds": 0.1})
    return pd.DataFrame(rows)


def test_paired_differences_are_the_matched_differences_and_count_images():
    pairs = _pairs_table()
    summary = superpixel_quality.summarize(pairs)
    table = superpixel_quality.matched(summary, at=(300, 400))
    paired = superpixel_quality.paired_vs_reference(pairs, summary, at=(300, 400), n_boot=200).set_index("method")
    t = table.set_index("method")
    # the point estimate is exactly the difference of the table's interpolated means
    for k in (400,):
        for m in ("asa", "rec", "co"):
            assert paired.loc["x", f"{m}@{k}_diff_vs_sin"] == pytest.approx(t.loc["x", f"{m}@{k}"] - t.loc["sin", f"{m}@{k}"])
    # x's curve starts at 310: no value at 300, no interval
    assert np.isnan(paired.loc["x", "asa@300_diff_vs_sin"])
    # by hand at K=400: sin t=(400-290)/310, x t=(400-310)/280; per image a, b (mean of 2 GTs), c
    ts, tx = 110 / 310, 90 / 280
    sin_v = [(1 - ts) * a + ts * b for a, b in zip([0.90, 0.805, 0.85], [0.95, 0.905, 0.91])]
    x_v = [(1 - tx) * a + tx * b for a, b in zip([0.91, 0.785, 0.86], [0.93, 0.925, 0.95])]
    d = np.subtract(x_v, sin_v)
    assert paired.loc["x", "asa@400_diff_vs_sin"] == pytest.approx(np.average(d, weights=[1, 2, 1]))
    assert paired.loc["x", "asa@400_n_better"] == (d > 0).sum() and paired.loc["x", "paired_images"] == 3
    assert paired.loc["x", "asa@400_diff_vs_sin_lo"] <= paired.loc["x", "asa@400_diff_vs_sin"] \
        <= paired.loc["x", "asa@400_diff_vs_sin_hi"]
    assert paired.loc["x", "co@400_diff_vs_sin"] == 0 == paired.loc["x", "co@400_diff_vs_sin_hi"]
    assert np.isnan(paired.loc["sin", "asa@400_diff_vs_sin"])


def _sidecar(methods, **extra):
    return {"command": "the original command", "machine": {"cpu_count": 2, "load_avg_1_5_15": [1.0, 2.0, 3.0]},
            "protocol": {"dataset": "bsds500", "split": "test", "limit": None, "processes": 3,
                         "dataset_label": "bsds500 (test)", "gt_protocol": "as stored", "tolerance": "1 px"},
            "providers": [{"method": m, "spec": m, "tag": f"{m}-0123", "weights": None, "sha256": None,
                           "trained": None} for m in methods], "failures": [], "history": [], **extra}


def test_from_pairs_resummarizes_from_the_pairs_and_the_sidecar(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    pairs = _pairs_table()
    pairs["image"] = pairs["image"].map({"a": "0012", "b": "0013", "c": "0100"})  # ids that look numeric
    superpixel_quality.write_csv(pairs, run / "pairs.csv.gz")
    (run / "quality.md").write_text("# old page: never read\n")
    out = tmp_path / "again"
    assert superpixel_quality.main(["--from-pairs", str(run), "--no-plots"]) == 2  # no sidecar: one line
    assert "no provenance sidecar" in capsys.readouterr().err
    write_sidecar(run / "quality.md", _sidecar(["sin", "x"]))
    summary = _run(["--from-pairs", str(run), "--out", str(out), "--no-plots"])
    assert list(summary["method"]) == ["sin", "sin", "x", "x"]
    m = pd.read_csv(out / "matched.csv")
    assert "asa@600_diff_vs_sin_lo" in m.columns and "asa@600_n_better" in m.columns
    md = (out / "quality.md").read_text()
    assert "Command: `the original command`" in md and "Tables re-summarized from `pairs.csv.gz` by `" in md
    assert "inside the 3 parallel workers" in md and "load_avg_1_5_15=(1.0, 2.0, 3.0)" in md  # from the sidecar
    assert "excludes 0" in md or "includes 0" in md
    record = read_sidecar(out / "quality.md")
    assert record["command"] == "the original command" and len(record["history"]) == 1
    assert record["history"][0]["source"] == "pairs.csv.gz"
    assert set(pd.read_csv(out / "pairs.csv.gz", dtype={"image": str})["image"]) == {"0012", "0013", "0100"}
    # again from the new folder: the history grows, the numbers stay
    again = _run(["--from-pairs", str(out), "--no-plots"])
    pd.testing.assert_frame_equal(summary, again)
    assert len(read_sidecar(out / "quality.md")["history"]) == 2
    assert superpixel_quality.main(["--from-pairs", str(tmp_path / "nothing"), "--no-plots"]) == 2
    assert "no such file" in capsys.readouterr().err
    write_sidecar(run / "quality.md", _sidecar(["sin"]))  # a sidecar of another run
    assert superpixel_quality.main(["--from-pairs", str(run), "--no-plots"]) == 2
    assert "does not describe the method(s) x" in capsys.readouterr().err


def test_a_failing_image_is_listed_and_the_run_goes_on(tmp_path, rng, monkeypatch, capsys):
    pkg = tmp_path / "flaky_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(
        "import numpy as np\n\n"
        "def flaky(image, n_segments):\n"
        "    if image.shape[0] == 40:\n"
        "        raise RuntimeError('cannot segment this one')\n"
        "    return (np.arange(image.shape[1])[None, :] * n_segments // image.shape[1]).repeat(image.shape[0], 0)\n")
    imgs, labs = _make_folder(tmp_path, rng)
    Image.fromarray(rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)).save(imgs / "im2.png")  # flaky fails here
    write_labels((np.arange(64)[None, :] // 32).repeat(40, 0), labs / "im2.npy")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    argv = ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--providers", "grid",
            "flaky_pkg.mod:flaky", "--n-segments", "8", "--processes", "1", "--out", str(out), "--cache",
            str(tmp_path / "c"), "--no-progress", "--no-plots"]
    summary = _run(argv, rc=1)
    assert list(summary["n_images"]) == [3, 2]  # grid on all three images, flaky on the two it can do
    err = capsys.readouterr().err
    assert "failed: flaky K=8 image im2: RuntimeError: cannot segment this one" in err and "1 FAILED" in err
    assert read_sidecar(out / "quality.md")["failures"] == [["flaky", 8, "im2",
                                                            "RuntimeError: cannot segment this one"]]
    assert "## Failures" in (out / "quality.md").read_text()
    assert superpixel_quality.main(argv) == 1


def test_expected_failures_end_in_one_line_with_exit_2(tmp_path, rng, capsys):
    imgs, labs = _make_folder(tmp_path, rng)
    base = ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--n-segments", "8",
            "--processes", "1", "--cache", str(tmp_path / "c"), "--no-progress", "--no-plots"]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    (tmp_path / "file").write_text("x")
    cases = [(["--providers", f"sin:weights={bad}", "--out", str(tmp_path / "o1")], "cannot run: cannot read SIN weights"),
             (["--providers", "grid", "--out", str(tmp_path / "file" / "sub")], "cannot create output folder"),
             (["--providers", "grid", "--out", str(tmp_path / "file")], "exists and is not a folder")]
    for extra, match in cases:
        assert superpixel_quality.main(base + extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and match in err, err
    assert not (tmp_path / "o1").exists() or not any((tmp_path / "o1").iterdir())
    assert superpixel_quality.main(["--dataset", "bsds500", "--data-root", str(tmp_path / "nope"), "--providers",
                                    "grid", "--out", str(tmp_path / "o2")]) == 2
    assert "BSDS500 dataset folder not found" in capsys.readouterr().err


def test_paired_page_lists_a_second_sin_against_the_first():
    """A weights tag of SIN (``sin:weights=small``) is compared with the reference SIN run, not
    skipped as if it were the reference."""
    import pandas as pd

    from benchmarks._quality_page import paired_markdown

    def row(method, d):
        cells = {"method": method, "paired_images": 10}
        for s, v in (("", d), ("_lo", d - 0.01), ("_hi", d + 0.01)):
            cells[f"asa@600_diff_vs_sin{s}"] = v
        cells["asa@600_n_better"] = 3
        return cells

    table = pd.DataFrame([row("sin:precision=fp32", float("nan")), row("sin:weights=small,precision=fp32", -0.02),
                          row("slic", -0.05)])
    text = paired_markdown(table, "sin", [600], {"asa": "ASA"})
    assert "sin:weights=small,precision=fp32 | 600" in text and "slic | 600" in text
    assert "sin:precision=fp32 | 600" not in text
