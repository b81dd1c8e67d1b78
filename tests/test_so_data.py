"""Saliency datasets, scores and the Table 2 benchmark (SO)."""

import csv

import numpy as np
import py_sod_metrics
import pytest
from PIL import Image

from conftest import data_path
from downstream.saliency_optimization.datasets import SaliencyDataset, read_mask
from downstream.saliency_optimization.evaluate import SaliencyScores, mean_absolute_error, quantize_map


def _make_dataset(root, layout=("images", "ground_truth_mask"), n=2, size=(30, 40)):
    idir, mdir = (root / layout[0]), (root / layout[1])
    idir.mkdir(parents=True)
    mdir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(idir / f"{i:04d}.jpg")
        m = np.zeros(size, np.uint8)
        m[5:20, 10:30] = 255
        Image.fromarray(m).save(mdir / f"{i:04d}.png")
    return root


def test_ecssd_and_generic_layouts(tmp_path):
    ds = SaliencyDataset(_make_dataset(tmp_path / "ECSSD"))
    assert ds.layout == "ecssd" and len(ds) == 2 and ds.name == "ECSSD"
    name, image, gt = ds.load(1)
    assert name == "0001" and image.dtype == np.uint8 and image.shape == (30, 40, 3)
    assert gt.dtype == bool and gt.sum() == 15 * 20
    ds2 = SaliencyDataset(_make_dataset(tmp_path / "mini", layout=("images", "masks")))
    assert ds2.layout == "generic" and len(list(ds2)) == 2


def test_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        SaliencyDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no known layout"):
        SaliencyDataset(tmp_path / "empty")
    root = _make_dataset(tmp_path / "d")
    (root / "ground_truth_mask" / "0001.png").unlink()
    with pytest.raises(FileNotFoundError, match="0001"):
        SaliencyDataset(root)
    root = _make_dataset(tmp_path / "e")
    Image.fromarray(np.zeros((31, 40), np.uint8)).save(root / "ground_truth_mask" / "0000.png")
    with pytest.raises(ValueError, match="31x40"):
        SaliencyDataset(root).load(0)
    with pytest.raises(FileNotFoundError, match="folder not found"):
        SaliencyDataset(root, image_dir="images", mask_dir="gt")


def test_read_mask_threshold_and_one_bit(tmp_path):
    m = np.array([[0, 128, 129, 255]], np.uint8)
    Image.fromarray(m).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "g.png"), [[False, False, True, True]])
    Image.fromarray(np.array([[True, False]])).convert("1").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png"), [[True, False]])
    with pytest.raises(FileNotFoundError):
        read_mask(tmp_path / "missing.png")


def test_quantize_rounds_half_up_like_im2uint8():
    q = quantize_map(np.array([[0.0, 2.5 / 255, 0.5, 1.0]]))
    np.testing.assert_array_equal(q, [[0, 3, 128, 255]])  # 2.5 -> 3 and 127.5 -> 128 (not to even)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quantize_map(np.array([[1.5]]))
    with pytest.raises(ValueError, match="NaN"):
        quantize_map(np.array([[np.nan]]))


def test_mae_hand_example_and_scores():
    gt = np.array([[True, True, False, False]])
    smap = np.array([[1.0, 0.5, 0.0, 0.2]])
    # CalMAE on the 8-bit map: |255-255| + |128-255| + 0 + |51-0|, over 255 * 4 pixels
    assert mean_absolute_error(smap, gt) == pytest.approx((127 + 51) / 255 / 4)
    rng = np.random.default_rng(1)
    scores = SaliencyScores()
    maes = []
    for _ in range(3):
        g = rng.random((20, 25)) > 0.6
        s = rng.random((20, 25))
        maes.append(mean_absolute_error(s, g))
        scores.step(s, g)
    res = scores.results()
    assert res["mae"] == pytest.approx(np.mean(maes)) and res["n_images"] == 3
    assert all(0 <= res[k] <= 1 for k in ("s_measure", "max_f", "mean_e", "max_e"))
    with pytest.raises(ValueError, match="boolean"):
        scores.step(s, g.astype(np.uint8))
    with pytest.raises(ValueError, match="does not match"):
        scores.step(s[:, :-1], g)


def test_scores_match_pysodmetrics_directly():
    rng = np.random.default_rng(2)
    g = rng.random((30, 30)) > 0.5
    s = rng.random((30, 30))
    scores = SaliencyScores()
    scores.step(s, g)
    sm = py_sod_metrics.Smeasure()
    sm.step(quantize_map(s), g.astype(np.uint8) * 255)
    assert scores.results()["s_measure"] == pytest.approx(sm.get_results()["sm"])


@pytest.mark.data
def test_sod_table_on_saliency_mini(tmp_path):
    from benchmarks.sod_table import main

    root = data_path("saliency-mini")
    rows = main(["--dataset", str(root), "--providers", "slic", "grid", "not_a_provider", "--sizes", "200",
                 "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--quiet", "--examples", "2"])
    assert {(r["provider"], r["size"]) for r in rows} == {("slic", 200), ("grid", 200)}
    for r in rows:
        assert r["n_images"] == 5 and 0 < r["mae"] < 0.5 and 150 < r["mean_superpixels"] < 250
    md = (tmp_path / "out" / "table2_saliency-mini.md").read_text()
    assert "5-image saliency-mini set, not ECSSD" in md and "paper (ECSSD)" in md
    assert "not_a_provider" in md and "skipped" in md
    with open(tmp_path / "out" / "table2_saliency-mini.csv") as f:
        got = list(csv.DictReader(f))
    assert [r["provider"] for r in got] == ["slic", "grid"]  # the order asked for
    assert got[0]["paper_ecssd_mae"] == "0.1719" and got[1]["paper_ecssd_mae"] == ""
    assert (tmp_path / "out" / "table2_saliency-mini_examples.png").stat().st_size > 1000
    # resumable: a second run reuses the cached maps and gives the same numbers
    again = main(["--dataset", str(root), "--providers", "slic", "grid", "--sizes", "200",
                  "--out", str(tmp_path / "out2"), "--cache", str(tmp_path / "cache"), "--quiet", "--examples", "1"])
    assert [r["mae"] for r in again] == [r["mae"] for r in rows]
