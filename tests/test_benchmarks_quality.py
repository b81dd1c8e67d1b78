"""End-to-end quality benchmark on two tiny generated images (fast, no real data needed)."""

import gzip

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks import superpixel_quality
from benchmarks._common import markdown_table
from sin.io import write_labels


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
    argv = ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--methods", "grid", "slic",
            "--sizes", "12", "30", "--processes", "1", "--out", str(out), "--cache", str(cache), "--no-progress"]
    summary = superpixel_quality.main(argv)
    for name in ("quality.csv", "pairs.csv.gz", "quality.md", "matched.csv", "asa_vs_k.png", "co_vs_k.png",
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
    assert len(list(cache.rglob("*.npz"))) == 2 * 2 * 2
    err = capsys.readouterr().err
    assert "8 label maps computed, 0 from cache" in err

    # resumable: a second run reuses every cached map and gives the same numbers
    again = superpixel_quality.main(argv + ["--aggregate", "worst", "--no-plots"])
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
    argv = ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--methods", "grid",
            "--sizes", "12", "--processes", "1", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c"),
            "--no-progress", "--no-plots"]
    first = superpixel_quality.main(argv)
    victim = min((tmp_path / "c").rglob("*.npz"))
    victim.write_bytes(b"garbage")
    second = superpixel_quality.main(argv)
    assert "1 label maps computed, 1 from cache" in capsys.readouterr().err
    same = [c for c in first.columns if c != "seconds_per_image"]  # the recomputed map has a new timing
    pd.testing.assert_frame_equal(first[same], second[same])
    superpixel_quality.main(argv + ["--recompute"])
    assert "2 label maps computed, 0 from cache" in capsys.readouterr().err


def test_unknown_methods_are_reported_with_the_available_ones(tmp_path, rng):
    imgs, labs = _make_folder(tmp_path, rng)
    base = ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--sizes", "12",
            "--processes", "1", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c"), "--no-progress",
            "--no-plots"]
    with pytest.raises(SystemExit, match=r"not registered: nosuch\. Available providers: .*grid"):
        superpixel_quality.main(base + ["--methods", "grid", "nosuch"])
    summary = superpixel_quality.main(base + ["--methods", "grid", "nosuch", "--skip-unavailable"])
    assert list(summary["method"]) == ["grid"]
    with pytest.raises(SystemExit, match="--images"):
        superpixel_quality.main(["--dataset", "folder", "--methods", "grid"])


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
    common = ["--dataset", "folder", "--images", str(imgs), "--labels", str(labs), "--methods", "grid", "slic",
              "--sizes", "12", "--no-progress", "--no-plots"]
    serial = superpixel_quality.main(common + ["--processes", "1", "--out", str(tmp_path / "a"),
                                               "--cache", str(tmp_path / "ca")])
    parallel = superpixel_quality.main(common + ["--processes", "2", "--out", str(tmp_path / "b"),
                                                 "--cache", str(tmp_path / "cb")])
    cols = ["method", "n_segments", "sp", "asa", "rec", "pre", "co"]
    pd.testing.assert_frame_equal(serial[cols], parallel[cols])
