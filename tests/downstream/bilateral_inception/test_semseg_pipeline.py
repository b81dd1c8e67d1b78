"""End to end: the Table 1 pipeline and the CLI on two tiny generated images with a tiny random trunk."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

import downstream.bilateral_inception as T
from conftest import write_folder_segmentation
from benchmarks import semseg_table
from downstream.bilateral_inception.__main__ import main as cli_main
from downstream.bilateral_inception.crf import crf_available
from downstream.bilateral_inception.datasets import FolderSegmentation
from downstream.bilateral_inception.pipeline import BIPipeline
from downstream.bilateral_inception.trunks import (
    build_trunk,
    deeplab_largefov,
    deeplabv3_mobilenetv2,
    tiny_trunk,
    torchvision_deeplabv3,
)
from sin.checkpoint import load_torch_file
from sin.providers import LabelCache
from sin.providers.weights_delta import load_weights_delta



@pytest.fixture
def toy_dataset(tmp_path):
    """Two 40x56 images: a bright disc (class 1) / a dark bar (class 2) on a mid-grey background (class 0)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :56]
    samples = {}
    for i in range(2):
        lab = np.zeros((40, 56), np.uint8)
        lab[(yy - 20) ** 2 + (xx - 18 - 16 * i) ** 2 < 100] = 1
        lab[5:12, 30 - 20 * i:50 - 20 * i] = 2
        img = np.choose(lab, [np.full((40, 56), 120), np.full((40, 56), 230), np.full((40, 56), 20)])
        img = np.clip(img[..., None] + rng.normal(0, 6, (40, 56, 3)), 0, 255).astype(np.uint8)
        lab[0, :] = 255
        samples[f"im{i}"] = img, lab
    return write_folder_segmentation(tmp_path / "toy", samples, "0 background\n1 disc\n2 bar\n255 void\n")


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_semseg_table_end_to_end(toy_dataset, tmp_path):
    out = tmp_path / "out"
    argv = ["--dataset", "folder", "--data-root", str(toy_dataset), "--trunk", "tiny", "--providers", "slic", "grid",
            "nonexistent", "--skip-unavailable", "--n-segments", "24", "--trunk-epochs", "1", "--bi-epochs", "1",
            "--short-side", "41", "--seeds", "0", "1", "--n-boot", "200", "--out", str(out),
            "--cache", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs"), "--figure-images", "2",
            "--no-progress"]
    assert semseg_table.main(argv) == 0
    for suffix in (".md", ".csv", "_per_class.csv", ".json", "_examples.png"):
        assert (out / f"table1_toy{suffix}").is_file()
    rows = {r["key"]: r for r in _read_csv(out / "table1_toy.csv")}
    # the unknown provider is skipped; +CRF runs where pydensecrf2 is installed
    assert list(rows) == ["baseline", "trained_baseline", "crf", "spavg:slic", "spavg:grid", "bi:slic", "bi:grid"]
    keys = ["baseline", "trained_baseline", "spavg:slic", "spavg:grid", "bi:slic", "bi:grid"]
    if crf_available():
        keys.append("crf")
    for key in keys:
        r = rows[key]
        assert 0.0 <= float(r["test_miou_mean"]) <= 100.0 and r["n_seeds"] == "2"
        per_seed = json.loads(r["test_miou_per_seed"])
        assert len(per_seed) == 2
        assert float(r["test_miou_mean"]) == pytest.approx(np.mean(per_seed), abs=0.01)
        assert float(r["test_miou_std"]) == pytest.approx(np.std(per_seed, ddof=1), abs=0.01)
    # the paired interval against the baseline contains the point estimate, which is the mean gain
    slic = rows["bi:slic"]
    d, lo, hi = (float(slic[f"{c}_vs_baseline"]) for c in ("diff", "ci_low", "ci_high"))
    assert lo - 0.01 <= d <= hi + 0.01
    assert d == pytest.approx(float(slic["test_miou_mean"]) - float(rows["baseline"]["test_miou_mean"]), abs=0.02)
    assert rows["baseline"]["diff_vs_baseline"] == "" and rows["bi:slic"]["diff_vs_trained"] != ""
    assert "control" in rows["bi:grid"]["note"] and "control" in rows["trained_baseline"]["note"]
    # the paper's VOC numbers sit in their own column only, at the rows the paper has
    assert rows["bi:slic"]["paper_voc2012_test"] == "73.50" and rows["bi:grid"]["paper_voc2012_test"] == ""
    assert rows["spavg:slic"]["paper_voc2012_test"] == "" and rows["crf"]["paper_voc2012_test"] == "72.70"
    md = (out / "table1_toy.md").read_text()
    assert "paper, VOC 2012 test" in md and "+ BI(SLIC)" in md and "mean ± std over 2 seeds" in md
    per_class = _read_csv(out / "table1_toy_per_class.csv")
    assert [r["class"] for r in per_class] == ["background", "disc", "bar"]
    # a second run reuses every cache and trained run and reproduces the numbers
    first = (out / "table1_toy.csv").read_text()
    runs = sorted(p.name for p in (tmp_path / "runs" / "toy").iterdir())
    evals = sorted(p.name for p in (tmp_path / "runs" / "toy" / "eval").iterdir())
    assert semseg_table.main(argv) == 0
    assert (out / "table1_toy.csv").read_text() == first
    assert sorted(p.name for p in (tmp_path / "runs" / "toy").iterdir()) == runs
    assert sorted(p.name for p in (tmp_path / "runs" / "toy" / "eval").iterdir()) == evals
    # 2 trunks, 2 classifier controls, 2 x 2 BI heads: one run folder each (+ the CRF selection, evaluations)
    trained = [r for r in runs if r.split("_")[0] in ("trunk", "classifier", "bi")]
    assert len(trained) == 8
    # the report re-derives from the committed files alone, identical
    again = tmp_path / "again"
    assert semseg_table.main(["--from-results", str(out), "--out", str(again)]) == 0
    for suffix in (".md", ".csv", "_bands.csv", "_per_class.csv"):
        assert (again / f"table1_toy{suffix}").read_text() == (out / f"table1_toy{suffix}").read_text()
    assert semseg_table.main(["--from-results", str(tmp_path / "nothing"), "--out", str(again)]) == 2


def test_semseg_table_end_to_end_sin_row(toy_dataset, tmp_path):
    # the row of SIN trained through BI sits next to BI(SIN) with a parametrised spec, and its
    # interval "vs BI(SIN)" is computed against that provider's row (found by name, not by key)
    out = tmp_path / "out"
    argv = ["--dataset", "folder", "--data-root", str(toy_dataset), "--trunk", "tiny", "--providers",
            "sin:precision=fp32", "--end-to-end", "--e2e-sin-lr", "1e-3", "--n-segments", "24", "--trunk-epochs", "1",
            "--bi-epochs", "1", "--short-side", "41", "--seeds", "0", "--n-boot", "100", "--out", str(out),
            "--cache", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs"), "--figure-images", "1",
            "--no-trained-baseline", "--no-progress"]
    assert semseg_table.main(argv) == 0
    rows = {r["key"]: r for r in _read_csv(out / "table1_toy.csv")}
    sin_key = [k for k in rows if k.startswith("bi:sin-")]
    assert list(rows)[-1] == "sin_e2e" and len(sin_key) == 1
    e2e = rows["sin_e2e"]
    assert e2e["method"] == "+ BI(SIN, trained end to end)" and e2e["diff_vs_sin"] != ""
    assert float(e2e["diff_vs_sin"]) == pytest.approx(
        float(e2e["test_miou_mean"]) - float(rows[sin_key[0]]["test_miou_mean"]), abs=0.02)
    summary = json.loads((out / "table1_toy.json").read_text())
    (w,) = summary["notes"]["end_to_end_weights"]
    assert w["seed"] == 0 and len(w["sha256"]) == 64 and w["file"].endswith("sin_best.pt")
    assert "trained together with SIN" in (out / "table1_toy.md").read_text()
    with pytest.raises(SystemExit):
        semseg_table.build_parser().parse_args(["--e2e-sin-lr", "0"])
    # the end-to-end row on a subset of the seeds: its intervals pair those seeds only
    argv2 = [a for a in argv if a != "--no-trained-baseline"]
    argv2[argv2.index("--seeds") + 1:argv2.index("--seeds") + 2] = ["0", "1"]
    assert semseg_table.main([*argv2, "--e2e-seeds", "1"]) == 0
    rows = {r["key"]: r for r in _read_csv(out / "table1_toy.csv")}
    e2e, sin_row = rows["sin_e2e"], rows[sin_key[0]]
    assert e2e["seeds"] == "1" and e2e["n_seeds"] == "1" and sin_row["seeds"] == "0 1"
    assert "seeds 1 only" in e2e["note"]
    per_seed_sin = json.loads(sin_row["test_miou_per_seed"])
    assert float(e2e["diff_vs_sin"]) == pytest.approx(float(e2e["test_miou_mean"]) - per_seed_sin[1], abs=0.02)


def test_semseg_table_one_line_errors(toy_dataset, tmp_path, capsys):
    common = ["--dataset", "folder", "--data-root", str(toy_dataset), "--trunk", "tiny", "--out", str(tmp_path / "o"),
              "--no-progress"]
    assert semseg_table.main([*common, "--providers", "nonexistent"]) == 2  # sin.argtypes.resolve_providers
    assert "error: unknown superpixel provider 'nonexistent'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not a positive integer
        semseg_table.main([*common, "--n-segments", "0"])
    assert semseg_table.main(["--trunk-weights", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: trunk weights not found")


def test_cli_train_and_eval(toy_dataset, tmp_path, monkeypatch):
    # every stage below starts from the tiny trunk or a checkpoint: the DeepLab weights are never needed
    monkeypatch.setenv("SIN_DEEPLAB_WEIGHTS", str(tmp_path / "absent" / "deeplab.pt"))
    common = ["--dataset", "folder", "--data-root", str(toy_dataset), "--cache", str(tmp_path / "cache"),
              "--short-side", "0", "--no-progress"]
    trunk_dir, bi_dir = tmp_path / "trunk", tmp_path / "bi"
    assert cli_main(["train", "--stage", "trunk", "--trunk", "tiny", "--epochs", "1", "--out", str(trunk_dir),
                     *common]) == 0
    assert (trunk_dir / "best.pt").is_file() and (trunk_dir / "last.pt").is_file()
    assert cli_main(["train", "--stage", "bi", "--trunk-checkpoint", str(trunk_dir / "best.pt"), "--provider",
                     "grid", "--n-segments", "20", "--epochs", "1", "--out", str(bi_dir), *common]) == 0
    record = json.loads((bi_dir / "record.json").read_text())
    assert record["epoch"] == 1 and len(record["history"]) == 1
    png_dir, result = tmp_path / "png", tmp_path / "eval.json"
    assert cli_main(["eval", "--split", "test", "--trunk-checkpoint", str(trunk_dir / "best.pt"), "--bi-checkpoint",
                     str(bi_dir / "best.pt"), "--png-dir", str(png_dir), "--out", str(result), *common]) == 0
    summary = json.loads(result.read_text())
    assert set(summary["iou"]) == {"background", "disc", "bar"} and 0 <= summary["mIoU"] <= 1
    with Image.open(png_dir / "im0.png") as im:
        assert im.mode == "P" and im.size == (56, 40)
    assert cli_main(["eval", "--split", "test", "--trunk-checkpoint", str(trunk_dir / "best.pt"), *common]) == 0
    # BI with the trunk's head trained too (cached backbone outputs), then evaluated with that head
    ft_dir = tmp_path / "bi_ft"
    assert cli_main(["train", "--stage", "bi", "--trunk-checkpoint", str(trunk_dir / "best.pt"), "--provider",
                     "grid", "--n-segments", "20", "--epochs", "1", "--finetune", "head", "--out", str(ft_dir),
                     *common]) == 0
    state = load_torch_file(ft_dir / "best.pt", "checkpoint", weights_only=False)
    assert state["trunk_state"] is not None and state["config"]["finetune"] == "head"
    assert cli_main(["eval", "--split", "test", "--trunk-checkpoint", str(trunk_dir / "best.pt"), "--bi-checkpoint",
                     str(ft_dir / "best.pt"), *common]) == 0
    assert cli_main(["train", "--stage", "bi", "--out", str(bi_dir), *common]) == 2  # no trunk checkpoint
    # SIN trained end to end with the head; eval picks the fine-tuned SIN saved beside the head
    e2e_dir = tmp_path / "e2e"
    assert cli_main(["train", "--stage", "e2e", "--trunk-checkpoint", str(trunk_dir / "best.pt"), "--n-segments",
                     "20", "--epochs", "1", "--sin-lr", "1e-3", "--out", str(e2e_dir), *common]) == 0
    assert (e2e_dir / "sin_best.pt").is_file() and json.loads((e2e_dir / "record.json").read_text())["epoch"] == 1
    result = tmp_path / "e2e.json"
    assert cli_main(["eval", "--split", "test", "--trunk-checkpoint", str(trunk_dir / "best.pt"), "--bi-checkpoint",
                     str(e2e_dir / "best.pt"), "--out", str(result), *common]) == 0
    model = json.loads(result.read_text())["model"]
    assert "sin:weights=" in model and "sin_best.pt" in model
    with pytest.raises(SystemExit) as exc:  # a negative weight is a usage error (one line, exit 2)
        cli_main(["train", "--stage", "e2e", "--trunk-checkpoint", str(trunk_dir / "best.pt"), "--aux-weight",
                  "-1", "--out", str(e2e_dir), *common])
    assert exc.value.code == 2
    # export-sin keeps the SIN of the run with the best *val* mIoU as a decoder delta
    state = load_torch_file(e2e_dir / "best.pt", "checkpoint", weights_only=False)
    state["record"]["best_miou"] += 0.5
    key = next(k for k in state["sin_state"] if k.startswith("deconv") and k.endswith("weight"))
    state["sin_state"][key] = state["sin_state"][key] + 0.25
    (tmp_path / "e2e_b").mkdir()
    torch.save(state, tmp_path / "e2e_b" / "best.pt")
    delta = tmp_path / "variant.pt"
    assert cli_main(["export-sin", str(e2e_dir), str(tmp_path / "e2e_b"), "--out", str(delta)]) == 0
    saved = load_weights_delta(delta)
    assert saved["meta"]["run"] == "e2e_b" and torch.equal(saved["state_dict"][key], state["sin_state"][key])
    assert cli_main(["export-sin", str(e2e_dir), "--out", str(delta)]) == 2  # never overwrites unasked
    assert cli_main(["export-sin", str(e2e_dir), "--out", str(delta), "--overwrite"]) == 0
    assert load_weights_delta(delta)["meta"]["run"] == "e2e"
    assert cli_main(["export-sin", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.pt")]) == 2
    # never over one of its inputs, --overwrite or not (a run's own checkpoint, through a symlink too)
    before = (e2e_dir / "best.pt").read_bytes()
    for out in (e2e_dir / "best.pt", e2e_dir / "sin_best.pt"):
        assert cli_main(["export-sin", str(e2e_dir), "--out", str(out), "--overwrite"]) == 2
    (tmp_path / "link.pt").symlink_to(e2e_dir / "best.pt")
    assert cli_main(["export-sin", str(e2e_dir), "--out", str(tmp_path / "link.pt"), "--overwrite"]) == 2
    assert (e2e_dir / "best.pt").read_bytes() == before
    # a run whose val mIoU is NaN is never picked; malformed run files give one line
    state["record"]["best_miou"] = float("nan")
    torch.save(state, tmp_path / "e2e_b" / "best.pt")
    assert cli_main(["export-sin", str(tmp_path / "e2e_b"), "--out", str(tmp_path / "nan.pt")]) == 2
    assert not (tmp_path / "nan.pt").exists()
    assert cli_main(["export-sin", str(e2e_dir), str(tmp_path / "e2e_b"), "--out", str(tmp_path / "y.pt")]) == 0
    assert load_weights_delta(tmp_path / "y.pt")["meta"]["run"] == "e2e"
    del state["record"]
    torch.save(state, tmp_path / "e2e_b" / "best.pt")
    assert cli_main(["export-sin", str(tmp_path / "e2e_b"), "--out", str(tmp_path / "z.pt")]) == 2
    # --stage e2e trains SIN itself: a --provider there is an error, not silently ignored
    assert cli_main(["train", "--stage", "e2e", "--trunk-checkpoint", str(trunk_dir / "best.pt"), "--provider",
                     "slic", "--out", str(tmp_path / "e2e_c"), *common]) == 2


def test_train_bi_resumes(toy_dataset, tmp_path):
    ds = FolderSegmentation(toy_dataset, "train")
    trunk = tiny_trunk(3)
    feats = T.cache_features(trunk, ds, tmp_path / "feat", short_side=None, progress=False)
    sps = BIPipeline(tmp_path / "cache", label_cache=LabelCache(tmp_path / "labels"), progress=False).superpixels(
        "grid", [ds], 20)
    run = tmp_path / "run"
    cfg1 = T.BITrainConfig(epochs=1, batch_size=2)
    T.train_bi(T.build_head(trunk, 3, cfg1), ds, ds, sps, run, config=cfg1, feature_cache=feats, progress=False)
    cfg2 = T.BITrainConfig(epochs=2, batch_size=2)
    rec = T.train_bi(T.build_head(trunk, 3, cfg2), ds, ds, sps, run, config=cfg2, feature_cache=feats, progress=False)
    assert rec["epoch"] == 2 and [h["epoch"] for h in rec["history"]] == [1, 2]
    # an uninterrupted 2-epoch run ends with the same weights (shuffles are replayed on resume)
    ref_run = tmp_path / "ref"
    T.train_bi(T.build_head(trunk, 3, cfg2), ds, ds, sps, ref_run, config=cfg2, feature_cache=feats, progress=False)
    a = load_torch_file(run / "last.pt", "checkpoint", weights_only=False)["state_dict"]
    b = load_torch_file(ref_run / "last.pt", "checkpoint", weights_only=False)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_trunk_builders_and_local_weights(tmp_path):
    x = torch.rand(1, 3, 33, 41)
    lf = deeplab_largefov(num_classes=5)
    out = lf(x)  # pools 1-3 with Caffe's ceil rounding: 33 -> 17 -> 9 -> 5, 41 -> 21 -> 11 -> 6
    assert out.features.shape == (1, 1024, 5, 6) and out.coarse_logits.shape == (1, 5, 5, 6)
    assert out.logits.shape == (1, 5, 33, 41)
    torch.save(lf.state_dict(), tmp_path / "lf.pt")
    lf2 = deeplab_largefov(tmp_path / "lf.pt", num_classes=5)
    torch.testing.assert_close(lf2(x).features, out.features)

    tv = torchvision_deeplabv3("mobilenet_v3_large", None, num_classes=21)
    torch.save({"model": tv_state(tv)}, tmp_path / "tv.pt")
    tv2 = torchvision_deeplabv3("mobilenet_v3_large", tmp_path / "tv.pt", num_classes=7)
    assert tv2.num_classes == 7 and tv2(x).coarse_logits.shape[1] == 7
    torch.testing.assert_close(tv2(x).features, tv(x).features)

    mn = deeplabv3_mobilenetv2(None, num_classes=21)
    assert mn(x).features.shape == (1, 256, 5, 6)

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        deeplab_largefov(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        deeplab_largefov(tmp_path / "missing.pt")
    torch.save({"fc6.weight": torch.zeros(3)}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="do not match"):
        deeplab_largefov(tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="unknown trunk"):
        build_trunk("vgg99")
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        tiny_trunk()(torch.full((1, 3, 16, 16), 200.0))


def tv_state(model):
    """The wrapped torchvision model's state dict in torchvision's own key names."""
    state = {}
    for k, v in model.state_dict().items():
        if k.startswith("backbone.body."):
            state["backbone." + k[len("backbone.body."):]] = v
        elif k.startswith("head."):
            state["classifier." + k[len("head."):]] = v
        elif k.startswith("classifier."):
            state["classifier.4." + k[len("classifier."):]] = v
    return state


def test_equally_trained_baseline_trains_the_head_when_bi_does(toy_dataset, tmp_path):
    # the budget rule: BI heads trained with the trunk's head (finetune="head") are compared with a
    # control whose head is trained too; the frozen control is unchanged (its run key too)
    ds = FolderSegmentation(toy_dataset, "train")
    pipe = BIPipeline(tmp_path / "cache", label_cache=LabelCache(tmp_path / "labels"), short_side=None,
                      progress=False)
    trunk = T.pipeline.TrunkHandle(tiny_trunk(3))
    runs = tmp_path / "runs"
    frozen, _, frozen_dir = pipe.train_classifier(trunk, ds, ds, config=T.BITrainConfig(epochs=1), runs_dir=runs)
    head, _, head_dir = pipe.train_classifier(trunk, ds, ds, config=T.BITrainConfig(epochs=1, finetune="head",
                                                                                     trunk_lr=1e-2), runs_dir=runs)
    assert frozen_dir != head_dir

    def changed(a, b, part):
        sa, sb = getattr(a.trunk, part).state_dict(), getattr(b.trunk, part).state_dict()
        return any(not torch.equal(sa[k], sb[k]) for k in sa)

    assert changed(frozen, trunk, "classifier") and not changed(frozen, trunk, "head")
    assert changed(head, trunk, "classifier") and changed(head, trunk, "head")
    with pytest.raises(ValueError, match="finetune"):
        pipe.train_classifier(trunk, ds, ds, config=T.BITrainConfig(epochs=1, finetune="full"), runs_dir=runs)


def test_semseg_table_no_bi_keeps_the_rows_that_need_no_training(toy_dataset, tmp_path):
    out = tmp_path / "out"
    argv = ["--dataset", "folder", "--data-root", str(toy_dataset), "--trunk", "tiny", "--providers", "grid",
            "--n-segments", "24", "--trunk-epochs", "1", "--bi-epochs", "1", "--short-side", "41", "--seeds", "0",
            "--n-boot", "50", "--out", str(out), "--cache", str(tmp_path / "cache"), "--runs-dir",
            str(tmp_path / "runs"), "--no-crf", "--no-bi", "--figure-images", "0", "--no-progress"]
    assert semseg_table.main(argv) == 0
    rows = [r["key"] for r in _read_csv(out / "table1_toy.csv")]
    assert rows == ["baseline", "trained_baseline", "crf", "spavg:grid"]
    assert not [p for p in (tmp_path / "runs" / "toy").iterdir() if p.name.startswith("bi_")]


def test_semseg_table_bi_providers_limits_the_bi_heads(toy_dataset, tmp_path):
    out = tmp_path / "out"
    argv = ["--dataset", "folder", "--data-root", str(toy_dataset), "--trunk", "tiny", "--providers", "grid", "slic",
            "--bi-providers", "slic", "--n-segments", "24", "--trunk-epochs", "1", "--bi-epochs", "1",
            "--short-side", "41", "--seeds", "0", "--n-boot", "50", "--out", str(out), "--cache",
            str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs"), "--no-crf", "--no-trained-baseline",
            "--figure-images", "0", "--no-progress"]
    assert semseg_table.main(argv) == 0
    rows = [r["key"] for r in _read_csv(out / "table1_toy.csv")]
    assert rows == ["baseline", "crf", "spavg:grid", "spavg:slic", "bi:slic"]
    trained = sorted(p.name.split("-")[0] for p in (tmp_path / "runs" / "toy").iterdir() if p.name.startswith("bi_"))
    assert trained == ["bi_slic"]


def test_protocol_names_bi7_scales_only_when_set():
    from benchmarks.semseg_report import _bi7_scales_note

    assert _bi7_scales_note({"bi7_scales": [1.0, 1.0, 1.0]}) == "" and _bi7_scales_note({}) == ""
    assert "0.25 / 1 / 4" in _bi7_scales_note({"bi7_scales": [0.25, 1.0, 4.0]})
