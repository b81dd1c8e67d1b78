"""Saliency datasets, scores and the Table 2 benchmark (SO)."""

import csv

import numpy as np
import py_sod_metrics
import pytest
from PIL import Image

from conftest import REPO_ROOT, data_path
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


def test_missing_masks_can_be_skipped_and_sizes_checked(tmp_path):
    root = _make_dataset(tmp_path / "ECSSD", n=4)
    (root / "ground_truth_mask" / "0001.png").unlink()
    Image.fromarray(np.zeros((31, 40), np.uint8)).save(root / "ground_truth_mask" / "0002.png")
    with pytest.raises(FileNotFoundError, match="0001"):
        SaliencyDataset(root)
    ds = SaliencyDataset(root, missing_masks="skip")
    assert [it.name for it in ds.items] == ["0000", "0002", "0003"] and ds.skipped[0][0] == "0001"
    bad = ds.check()
    assert bad == [("0002", "mask 0002.png is 31x40 but image 0002.jpg is 30x40")]
    assert [it.name for it in ds.items] == ["0000", "0003"] and [n for n, _ in ds.skipped] == ["0001", "0002"]
    with pytest.raises(ValueError, match="missing_masks"):
        SaliencyDataset(root, missing_masks="ignore")


def test_image_scores_aggregate_exactly_like_saliency_scores():
    from downstream.saliency_optimization.evaluate import aggregate_scores, image_scores

    rng = np.random.default_rng(3)
    scores, records = SaliencyScores(), []
    for _ in range(4):
        g = rng.random((20, 30)) > 0.6
        s = rng.random((20, 30)) ** 2
        scores.step(s, g)
        records.append(image_scores(s, g))
    assert aggregate_scores(records) == scores.results()  # bit-identical: same means in the same order
    # mean E over the dataset is the mean of per-image mean E (the paired bootstrap relies on it)
    assert aggregate_scores(records)["mean_e"] == pytest.approx(np.mean([r["mean_e"] for r in records]), abs=1e-12)
    with pytest.raises(ValueError, match="no images"):
        aggregate_scores([])


def test_comparisons_and_sentences_hand_case():
    import pandas as pd

    from benchmarks._report import interval_sentence
    from benchmarks.sod_table import comparisons

    def _sentence(c):
        return interval_sentence("SIN", c["other"].upper(), "MAE", c["diff"], c["lo"], c["hi"], c["n"],
                                 lower_is_better=True)

    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):  # SIN's MAE is 0.01 lower on every image; vs grid only noise
        base = rng.uniform(0.1, 0.2)
        for prov, mae in (("sin", base - 0.01), ("slic", base), ("grid", base - 0.01 + rng.normal(0, 0.01))):
            rows.append({"image": f"{i:04d}", "size": 200, "provider": prov, "mae": mae, "s_measure": 0.8,
                         "mean_e": 0.7})
    comps = comparisons(pd.DataFrame(rows), ["sin", "slic", "grid"], [200])
    by = {(c["other"], c["metric"]): c for c in comps}
    slic = by[("slic", "mae")]
    assert slic["diff"] == pytest.approx(-0.01) and slic["significant"] and slic["n"] == 40
    assert "SIN is better than SLIC on MAE" in _sentence(slic) and "larger than the noise" in _sentence(slic)
    grid = by[("grid", "mae")]
    assert grid["lo"] < 0 < grid["hi"] and not grid["significant"] and "not larger than the noise" in _sentence(grid)
    assert not by[("slic", "s_measure")]["significant"]  # identical values: zero difference
    assert comparisons(pd.DataFrame(rows), ["slic", "grid"], [200]) == []  # no SIN, nothing to compare


def _sod(tmp_path, root, *extra, out="out", rc=0):
    """The Table 2 rows for the dataset folder ``root`` (named as the folder), checking the exit code."""
    from benchmarks import sod_table
    from sin import argtypes as A

    argv = ["--dataset", root.name, "--data-root", str(root), "--out", str(tmp_path / out), "--cache",
            str(tmp_path / "cache"), "--processes", "1", "--quiet", "--examples", "2", *extra]
    rows, code = sod_table.run(A.config_from_args(sod_table.Config, sod_table.build_parser().parse_args(argv)), argv)
    assert code == rc
    return rows


def test_sod_table_skips_bad_pairs_and_reports_them(tmp_path, capsys):
    root = _make_dataset(tmp_path / "ECSSD", n=4, size=(60, 80))
    (root / "ground_truth_mask" / "0001.png").unlink()
    Image.fromarray(np.zeros((61, 80), np.uint8)).save(root / "ground_truth_mask" / "0002.png")
    rows = _sod(tmp_path, root, "--providers", "grid", "sin", "--n-segments", "200", rc=1)  # images left out
    assert [r["n_images"] for r in rows] == [2, 2]
    err = capsys.readouterr().err
    assert "skipping image 0001: no mask" in err and "skipping image 0002: mask 0002.png is 61x80" in err
    md = (tmp_path / "out" / "table2_ECSSD.md").read_text()
    assert "Images left out" in md and "`0001`" in md and "`0002`" in md
    assert "2-image `ECSSD` set" in md  # not presented as the real ECSSD


def test_sod_table_outputs_and_cache_keys(tmp_path):
    import pandas as pd

    from benchmarks._report import read_sidecar
    from downstream.saliency_optimization import SIN_PAPER

    root = _make_dataset(tmp_path / "toy", n=3, size=(60, 80))
    rows = _sod(tmp_path, root, "--providers", "grid", "sin", "--n-segments", "200", "400")
    assert [(r["size"], r["provider"]) for r in rows] == [(200, "grid"), (200, "sin"), (400, "grid"), (400, "sin")]
    per = pd.read_csv(tmp_path / "out" / "table2_toy_per_image.csv.gz")
    assert len(per) == 3 * 2 * 2 and set(per.columns) >= {"image", "size", "provider", "mae", "s_measure", "max_f",
                                                          "mean_e", "n_superpixels"}
    for r in rows:  # the table's MAE is the mean of the per-image MAEs
        sel = per[(per["size"] == r["size"]) & (per["provider"] == r["provider"])]
        assert r["mae"] == pytest.approx(sel["mae"].mean(), abs=1e-6)
        assert r["mean_requested"] == round(60 * 80 * r["size"] / 120000)
    md = (tmp_path / "out" / "table2_toy.md").read_text()
    assert "Is SIN's difference larger than the noise?" in md and "SIN - GRID" in md and "Wall time:" in md
    assert "24 maps computed" not in md and "12 maps computed, 0 reused" in md
    assert (tmp_path / "out" / "table2_toy_examples.png").stat().st_size > 1000
    record = read_sidecar(tmp_path / "out" / "table2_toy.md")
    assert record["protocol"] == {"preset": "sin_paper", "rows": [200, 400], "count_rule": "round(h*w*size/120000)",
                                  "slic_compactness": 20.0, "so_params": "code"}
    assert [p["method"] for p in record["providers"]] == ["grid", "sin"] and record["dataset"]["failed"] == []
    # resumable: everything reused, same numbers
    again = _sod(tmp_path, root, "--providers", "grid", "sin", "--n-segments", "200", "400", out="out2")
    assert [r["mae"] for r in again] == [r["mae"] for r in rows]
    assert "0 maps computed, 12 reused" in (tmp_path / "out2" / "table2_toy.md").read_text()
    # the label maps went through the one LabelCache, keyed by provider fingerprint
    from sin.providers import get_provider

    assert (tmp_path / "cache" / "labels" / get_provider("grid").tag).is_dir()
    # SO constants change the SO-map key; an edited image is another entry, whatever its name
    assert SIN_PAPER.map_key("code") != SIN_PAPER.map_key("paper")
    img = np.asarray(Image.open(root / "images" / "0000.jpg")).copy()
    img[:10] = 255 - img[:10]
    Image.fromarray(img).save(root / "images" / "0000.jpg")
    _sod(tmp_path, root, "--providers", "grid", "--n-segments", "200", out="out3")
    assert "1 maps computed, 2 reused" in (tmp_path / "out3" / "table2_toy.md").read_text()


def test_sod_table_from_per_image_re_derives_the_tables(tmp_path, capsys):
    import pandas as pd

    from benchmarks import sod_table
    from benchmarks._report import read_sidecar

    root = _make_dataset(tmp_path / "toy", n=4, size=(60, 80))
    rows = _sod(tmp_path, root, "--providers", "grid", "sin", "slic", "--n-segments", "200", "400")
    again = _sod(tmp_path, root, "--from-per-image", str(tmp_path / "out"), out="re")
    a, b = pd.DataFrame(rows), pd.DataFrame(again)
    pd.testing.assert_frame_equal(a, b, atol=1e-6)  # per-image scores are stored to 6 decimals
    assert list(a["max_f"].round(6)) == list(b["max_f"])  # carried over from the CSV: a maximum of the mean curve
    old, new = ((tmp_path / d / "table2_toy.md").read_text().splitlines() for d in ("out", "re"))
    extra = [line for line in new if line not in old]
    assert len(extra) == 1 and extra[0].startswith("Tables re-derived from table2_toy_per_image.csv.gz")
    assert len(read_sidecar(tmp_path / "re" / "table2_toy.md")["history"]) == 1
    assert (tmp_path / "re" / "table2_toy_examples.png").is_file()
    (tmp_path / "out" / "table2_toy.json").unlink()
    assert sod_table.main(["--dataset", "toy", "--from-per-image", str(tmp_path / "out")]) == 2
    assert "no provenance sidecar" in capsys.readouterr().err


def test_sod_table_cli_errors(tmp_path, capsys):
    from benchmarks.sod_table import main

    root = _make_dataset(tmp_path / "toy", n=2, size=(60, 80))
    base = ["--data-root", str(root), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c"), "--quiet",
            "--processes", "1"]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    (tmp_path / "file").write_text("x")
    for argv, match in [(["--dataset", "toy", "--providers", "nope"], "unknown superpixel provider 'nope'"),
                        (["--dataset", "absent", "--data-root", str(tmp_path / "absent")], "not found"),
                        (["--dataset", "toy", "--providers", f"sin:weights={bad}"], "cannot read SIN weights"),
                        (["--dataset", "toy", "--out", str(tmp_path / "file")], "exists and is not a folder")]:
        assert main(base + argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and match in err, err
    for argv, match in [(["--dataset", str(root)], "not a path"), (["--n-segments", "0"], "positive integer"),
                        (["--processes", "0"], "positive integer")]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and match in err


def test_sod_table_lists_an_image_a_provider_fails_on(tmp_path, monkeypatch, capsys):
    from benchmarks._report import read_sidecar

    root = _make_dataset(tmp_path / "toy", n=3, size=(60, 80))
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(root / "images" / "0001.jpg")  # flat: no SO contrast
    pkg = tmp_path / "flatfail"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("import numpy as np\n\ndef stripes(image, n_segments):\n"
                                "    if np.ptp(np.asarray(image)) == 0:\n        raise RuntimeError('flat image')\n"
                                "    return (np.arange(image.shape[1])[None] * n_segments // image.shape[1])"
                                ".repeat(image.shape[0], 0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = _sod(tmp_path, root, "--providers", "grid", "flatfail.mod:stripes", "--n-segments", "200", rc=1)
    assert [r["n_images"] for r in rows] == [2, 2]  # paired: the image is left out of every row
    assert "left out image 0001: stripes n=200: RuntimeError: flat image" in capsys.readouterr().err
    assert read_sidecar(tmp_path / "out" / "table2_toy.md")["dataset"]["failed"][0][0] == "0001"


def test_sod_table_slic_gets_the_so_demo_compactness():
    from benchmarks.sod_table import table_providers

    provs, skipped = table_providers(["slic", "slic:compactness=10", "grid", "nope"], skip_unavailable=True)
    assert [p.params.get("compactness") for p in provs] == [20.0, 10, None] and skipped == ["nope"]


@pytest.mark.data
def test_sod_table_on_saliency_mini(tmp_path):

    root = data_path("saliency-mini")
    rows = _sod(tmp_path, root, "--providers", "slic", "grid", "not_a_provider", "--skip-unavailable",
                "--n-segments", "200")
    assert {(r["provider"], r["size"]) for r in rows} == {("slic", 200), ("grid", 200)}
    for r in rows:
        assert r["n_images"] == 5 and 0 < r["mae"] < 0.5 and 150 < r["mean_superpixels"] < 250
    md = (tmp_path / "out" / "table2_saliency-mini.md").read_text()
    assert "5-image saliency-mini set, not ECSSD" in md and "paper (ECSSD)" in md
    assert "not_a_provider" in md and "skipped" in md
    with open(tmp_path / "out" / "table2_saliency-mini.csv") as f:
        got = list(csv.DictReader(f))
    assert [r["provider"] for r in got] == ["slic", "grid"]  # the order asked for
    assert float(got[0]["paper_ecssd_mae"]) == 0.1719 and got[1]["paper_ecssd_mae"] == ""
    assert got[0]["provider_spec"] == "slic:compactness=20.0"
    assert (tmp_path / "out" / "table2_saliency-mini_examples.png").stat().st_size > 1000


@pytest.mark.data
def test_committed_saliency_mini_table_is_reproduced(tmp_path):
    """The committed smoke table (slic, snic rows) comes out again from the current code."""
    import pandas as pd

    committed = pd.read_csv(REPO_ROOT / "results" / "saliency" / "table2_saliency-mini.csv")
    _sod(tmp_path, data_path("saliency-mini"), "--providers", "slic", "snic", "--n-segments", "200")
    got = pd.read_csv(tmp_path / "out" / "table2_saliency-mini.csv")
    ref = committed[committed["size"] == 200].set_index("provider").loc[["slic", "snic"]]
    for m in ("mean_superpixels", "mae", "s_measure", "max_f", "mean_e", "max_e"):
        np.testing.assert_allclose(got[m].to_numpy(), ref[m].to_numpy(), atol=1e-6, err_msg=m)


@pytest.mark.data
def test_so_on_three_ecssd_images_through_the_loader():
    """End to end on the real data: loader (incl. the grayscale 0557.jpg) -> provider -> SO -> scores."""
    from downstream.saliency_optimization import so_saliency
    from downstream.saliency_optimization.evaluate import aggregate_scores, image_scores

    ds = SaliencyDataset(data_path("ECSSD", "ground_truth_mask").parent)
    assert ds.layout == "ecssd" and len(ds) == 1000 and ds.check(drop=False) == []
    names = [it.name for it in ds.items]
    records = []
    for i in (0, names.index("0557"), 999):
        _, image, gt = ds.load(i)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and gt.shape == image.shape[:2]
        smap = so_saliency(image, "grid", round(image.shape[0] * image.shape[1] / 600))
        assert smap.shape == gt.shape and smap.min() == 0.0 and smap.max() == 1.0
        records.append(image_scores(smap, gt))
    res = aggregate_scores(records)
    assert res["n_images"] == 3 and 0 < res["mae"] < 0.5 and 0.3 < res["s_measure"] <= 1


def test_sod_table_work_pickles_for_spawned_workers(tmp_path):
    """Workers are spawned: the image, the count rule and the scoring (with every default provider)
    must survive pickling and work on the other side."""
    import functools
    import pickle

    from benchmarks._samples import Sample
    from benchmarks._sod_maps import SOMapScores, read_pair, row_counts
    from benchmarks.sod_table import DEFAULT_PROVIDERS, table_providers
    from downstream.saliency_optimization import SIN_PAPER
    from sin.parallel import label_maps

    providers, _ = table_providers([*DEFAULT_PROVIDERS, "sin:precision='fp32'", "sin_msrc21"], skip_unavailable=True)
    back = pickle.loads(pickle.dumps(tuple(providers)))
    assert [p.tag for p in back] == [p.tag for p in providers]  # the cache keys survive the trip
    root = _make_dataset(tmp_path / "toy", n=1, size=(60, 80))
    sample = Sample(read_pair, (root / "images" / "0000.jpg", root / "ground_truth_mask" / "0000.png"), "0000")
    for prov in back[:2]:
        then = SOMapScores(prov, "code", SIN_PAPER.map_key("code"), str(tmp_path / "c" / "saliency"))
        item, counts, then = pickle.loads(pickle.dumps((sample, functools.partial(row_counts, (200, 400)), then)))
        [recs] = label_maps(prov, [item], counts, then=then, processes=1, progress=False)
        assert [r["n_requested"] for r in recs] == [round(60 * 80 * 200 / 120000), round(60 * 80 * 400 / 120000)]
        assert all(r["computed"] and 0 <= r["mae"] <= 1 for r in recs)


@pytest.mark.slow
def test_sod_table_parallel_equals_serial(tmp_path):
    root = _make_dataset(tmp_path / "toy", n=4, size=(60, 80))
    serial = _sod(tmp_path, root, "--providers", "grid", "sin", "--n-segments", "200", out="a")
    parallel = _sod(tmp_path, root, "--providers", "grid", "sin", "--n-segments", "200", "--processes", "2",
                    "--cache", str(tmp_path / "cache2"), out="b")
    assert [r["mae"] for r in parallel] == [r["mae"] for r in serial]
