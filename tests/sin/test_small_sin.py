"""Small SIN (issue 25): width/depth of SINNet and FastSIN, weights files that carry their
architecture, distillation (loss, training, exact resume, teacher check), held-out lists, the
``sin:weights=small`` tag, the FLOP counter and the merging of quality tables."""

import csv
import gzip
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sin
from sin.checkpoint import DEFAULT_WEIGHTS, infer_architecture, load_model, save_weights
from sin.connectivity import is_4connected as is_connected
from sin.fast_model import FastSIN
from sin.fingerprint import file_sha256
from sin.geometry import network_size
from sin.interpolation import logits_to_decisions
from sin.loss import distill_loss, odd_scores
from sin.model import STEPS, SINNet, channel_plan
from sin.train import PRESETS, TrainingSet, train
from test_model import randomised_bn
from test_train import _write_bsds, edge_images


# ---------------------------------------------------------------------------------- architecture
def test_channel_plan_and_its_errors():
    assert channel_plan() == (16, 32, 64, 128, 256)
    assert channel_plan(0.5) == (8, 16, 32, 64, 128)
    assert channel_plan(0.375, 1) == (6, 12, 24, 48, 96)
    for bad in (0, -0.5, 0.3, float("nan"), "1", True):
        with pytest.raises(ValueError, match="width"):
            channel_plan(bad)
    for bad in (0, 3, True):
        with pytest.raises(ValueError, match="depth"):
            channel_plan(1.0, bad)


def test_width_one_is_the_original_network():
    """Same keys in the same order and the same shapes as the shipped weights file, and the same
    seeded initialisation (the ``untrained`` network) as before ``width`` existed."""
    shipped = torch.load(DEFAULT_WEIGHTS, weights_only=True)["state_dict"]
    now = SINNet().state_dict()
    assert list(now) == list(shipped)
    assert all(now[k].shape == shipped[k].shape for k in now)
    assert SINNet().architecture == {"batch_norm": True, "width": 1.0, "depth": 2}
    # the seeded draw of the untrained network: kaiming over the modules in the original order
    torch.manual_seed(0)
    ref = SINNet()
    untrained = load_model("untrained")
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), untrained.state_dict().values()))


def test_small_network_layout():
    model = SINNet(width=0.5, depth=1)
    sd = model.state_dict()
    assert sd["conv0a.0.weight"].shape == (8, 3, 3, 3)
    assert sd["conv4a.0.weight"].shape == (128, 64, 3, 3)
    assert not any(k.startswith(("conv0b", "conv4b")) for k in sd)
    assert sd["deconv3_h.0.weight"].shape == (128, 64, 3, 3)
    assert sd["pred_mask0_v.weight"].shape == (2, 8, 3, 3)
    assert model.encoder_names == ("conv0a", "conv1a", "conv2a", "conv3a", "conv4a")
    x = torch.zeros(1, 3, *network_size(3, 4))
    assert [lg.shape for lg in model.eval()(x)] == [lg.shape for lg in SINNet().eval()(x)]


@settings(max_examples=12, deadline=None)
@given(width=st.sampled_from([0.25, 0.375, 0.5, 1.0]), depth=st.sampled_from([1, 2]),
       n=st.integers(1, 4), m=st.integers(1, 4), seed=st.integers(0, 100))
def test_fast_model_matches_plain_network_at_any_width(width, depth, n, m, seed):
    torch.manual_seed(seed)
    model = randomised_bn(SINNet(width=width, depth=depth), seed)
    fast = FastSIN.from_model(model)
    x = torch.randn(1, 3, *network_size(n, m), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = model(x)
        decisions, scores = fast(x), fast.scores(x)
    for step, lg, dec, score in zip(STEPS, logits, decisions, scores):
        margin = odd_scores(lg, step)
        assert dec.shape == margin.shape == score.shape
        assert torch.allclose(score, margin, atol=1e-4, rtol=1e-4)
        # identical decisions except where the two logits tie to float rounding
        assert torch.all((dec == logits_to_decisions(lg, step[1])) | (margin.abs() < 1e-4))


def test_small_sin_labels_are_4_connected():
    torch.manual_seed(3)
    weights = {k: v for k, v in randomised_bn(SINNet(width=0.25, depth=1), 3).state_dict().items()}
    rng = np.random.default_rng(0)
    image = (rng.random((61, 83, 3)) * 255).astype(np.uint8)
    for k in (5, 40, 300):  # 300: more seeds than fit, the down-sampled map is repaired
        labels = sin.superpixels(image, k, weights=weights, precision="fp32")
        assert is_connected(labels)


# ---------------------------------------------------------------------------------- weights files
def test_weights_file_records_and_restores_the_architecture(tmp_path):
    model = randomised_bn(SINNet(width=0.375, depth=1), seed=2)
    path = tmp_path / "small.pt"
    save_weights(model, path)
    assert torch.load(path, weights_only=True)["architecture"] == {"batch_norm": True, "width": 0.375, "depth": 1}
    loaded = load_model(path)
    assert loaded.architecture == model.architecture
    x = torch.randn(1, 3, 33, 49)
    assert all(torch.equal(a, b) for a, b in zip(model(x), loaded(x)))
    assert load_model(path, width=0.375, depth=1).width == 0.375
    with pytest.raises(ValueError, match="width 0.375, expected 1"):
        load_model(path, width=1)
    with pytest.raises(ValueError, match="depth 1, expected 2"):
        load_model(path, depth=2)
    with pytest.raises(ValueError, match="width 1, expected 0.5"):
        load_model(DEFAULT_WEIGHTS, width=0.5)


def test_files_without_a_recorded_architecture_are_read_from_their_shapes(tmp_path):
    """Files written before the architecture was recorded (the shipped weights, original
    checkpoints, training checkpoints, bare state dicts) load with the width of their tensors."""
    model = randomised_bn(SINNet(width=0.5, depth=1), seed=5)
    sd = model.state_dict()
    assert infer_architecture(sd) == {"batch_norm": True, "width": 0.5, "depth": 1}
    path = tmp_path / "old.pt"
    torch.save({"format": "sin-weights-v1", "batch_norm": True, "state_dict": sd, "meta": {}}, path)
    x = torch.randn(1, 3, 17, 33)
    assert all(torch.equal(a, b) for a, b in zip(model(x), load_model(path)(x)))
    assert all(torch.equal(a, b) for a, b in zip(model(x), load_model({"model": sd})(x)))
    assert load_model(None).architecture == {"batch_norm": True, "width": 1.0, "depth": 2}


def test_a_recorded_architecture_that_contradicts_the_tensors_is_refused(tmp_path):
    sd = SINNet(width=0.5).state_dict()
    path = tmp_path / "lying.pt"
    torch.save({"format": "sin-weights-v1", "architecture": {"batch_norm": True, "width": 1.0, "depth": 2},
                "state_dict": sd}, path)
    with pytest.raises(ValueError, match="record the architecture .* but their tensors"):
        load_model(path)
    torch.save({"format": "sin-weights-v1", "architecture": {"width": 0.3}, "state_dict": sd}, path)
    with pytest.raises(ValueError, match="invalid architecture"):
        load_model(path)
    sd = SINNet(width=0.5).state_dict()
    sd["conv1b.0.weight"] = torch.zeros(16, 16, 1, 1)  # a wrong shape inside a valid plan
    with pytest.raises(ValueError, match="shapes"):
        load_model(sd)
    with pytest.raises(ValueError, match="not a SIN state dict"):
        load_model({"something.weight": torch.zeros(2)})


# ---------------------------------------------------------------------------------- distillation loss
def test_distill_loss_hand_computed():
    # one step with one inserted position; every other step empty-but-shaped
    logits, scores = [], []
    for step in STEPS:
        lg = torch.zeros(1, 2, 1, 3) if step[1] == "h" else torch.zeros(1, 2, 3, 1)
        logits.append(lg)
        scores.append(torch.zeros(1, 1, 1))
    logits[0][0, 1, 0, 1] = 1.0  # student: d_s = 1 at the inserted position of step 3h (weight 20)
    scores[0][0, 0, 0] = -2.0  # teacher: d_t = -2
    loss, terms = distill_loss(logits, scores, return_terms=True)
    p, q = 1 / (1 + np.exp(2.0)), 1 / (1 + np.exp(-1.0))  # teacher's and student's "take next"
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    assert float(terms["3h"]) == pytest.approx(kl, rel=1e-5)
    assert all(float(terms[s]) == pytest.approx(0.0, abs=1e-7) for s in STEPS[1:])
    assert float(loss) == pytest.approx(0.005 * 20 * kl, rel=1e-5)
    # temperature T: KL of the softened sigmoids, times T^2
    p2, q2 = 1 / (1 + np.exp(1.0)), 1 / (1 + np.exp(-0.5))
    kl2 = p2 * np.log(p2 / q2) + (1 - p2) * np.log((1 - p2) / (1 - q2))
    assert float(distill_loss(logits, scores, temperature=2.0)) == pytest.approx(0.005 * 20 * 4 * kl2, rel=1e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000))
def test_distill_loss_is_zero_at_the_teacher_and_positive_elsewhere(seed):
    g = torch.Generator().manual_seed(seed)
    logits = SINNet(width=0.25, depth=1).eval()(torch.randn(2, 3, *network_size(2, 3), generator=g))
    teacher = [odd_scores(lg, s).detach() for s, lg in zip(STEPS, logits)]
    assert float(distill_loss(logits, teacher).detach()) == pytest.approx(0.0, abs=1e-6)
    other = [t + torch.randn(t.shape, generator=g) for t in teacher]
    loss = distill_loss(logits, other)
    assert float(loss) > 0
    loss.backward()  # gradients flow into the student only
    assert all(t.grad is None for t in other)


def test_distill_loss_errors():
    logits = SINNet(width=0.25).eval()(torch.zeros(1, 3, *network_size(2, 2)))
    teacher = [odd_scores(lg, s) for s, lg in zip(STEPS, logits)]
    with pytest.raises(ValueError, match="differ in shape"):
        distill_loss(logits, teacher[:-1] + [teacher[-1][:, :1]])
    with pytest.raises(ValueError, match="expected 8"):
        distill_loss(logits[:3], teacher)
    with pytest.raises(ValueError, match="temperature"):
        distill_loss(logits, teacher, temperature=0)


# ---------------------------------------------------------------------------------- distillation training
def _teacher(tmp_path, seed=0, name="teacher.pt"):
    torch.manual_seed(seed)
    path = tmp_path / name
    save_weights(randomised_bn(SINNet(width=0.5), seed), path)
    return path


def test_distillation_resume_is_exact_and_needs_the_same_teacher(tmp_path):
    torch.set_num_threads(1)
    images, segs = edge_images(2)
    teacher = _teacher(tmp_path)
    cfg = replace(PRESETS["tiny"], iterations=6, checkpoint_every=3, snapshot_every=100, log_every=1, width=0.25,
                  depth=1, distill_weight=1.0, amp=True)
    full = train(cfg, TrainingSet(images, segs), tmp_path / "full", progress=False, teacher=teacher)
    assert full.architecture == {"batch_norm": True, "width": 0.25, "depth": 1}
    train(replace(cfg, iterations=3), TrainingSet(images, segs), tmp_path / "part", progress=False, teacher=teacher)
    resumed = train(cfg, TrainingSet(images, segs), tmp_path / "part", resume=True, progress=False, teacher=teacher)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    with open(tmp_path / "part" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 7)) and all(float(r["distill"]) > 0 for r in rows)
    weights = torch.load(tmp_path / "full" / "weights.pt", weights_only=True)
    assert weights["meta"]["teacher"]["sha256"] == file_sha256(teacher)
    assert load_model(tmp_path / "full" / "weights.pt").width == 0.25
    # another teacher (other bytes), no teacher, or another width: refused
    other = _teacher(tmp_path, seed=1, name="other.pt")
    with pytest.raises(ValueError, match="as teacher"):
        train(replace(cfg, iterations=8), TrainingSet(images, segs), tmp_path / "part", resume=True,
              progress=False, teacher=other)
    with pytest.raises(ValueError, match="needs a teacher"):
        train(replace(cfg, iterations=8), TrainingSet(images, segs), tmp_path / "part", resume=True, progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        train(replace(cfg, iterations=8, width=0.5), TrainingSet(images, segs), tmp_path / "part", resume=True,
              progress=False, teacher=teacher)
    with pytest.raises(ValueError, match="distill_weight is 0"):
        train(replace(cfg, distill_weight=0.0), TrainingSet(images, segs), tmp_path / "x", progress=False,
              teacher=teacher)


def test_distillation_pulls_the_student_towards_the_teacher(tmp_path):
    """With the ground-truth term switched off (no valid positions: one segment), the KL term alone
    makes the student agree with the teacher more often than at initialisation."""
    torch.set_num_threads(1)
    teacher = _teacher(tmp_path, seed=3)
    rng = np.random.default_rng(0)
    images = [(rng.random((40, 48, 3)) * 255).astype(np.uint8) for _ in range(3)]
    segs = [[np.zeros((40, 48), np.int32)] for _ in images]
    cfg = replace(PRESETS["tiny"], iterations=60, crop=33, batch_size=4, lr=3e-3, milestones=(), checkpoint_every=60,
                  snapshot_every=1000, log_every=10, width=0.25, depth=1, distill_weight=1.0)
    fast_t = FastSIN.from_model(load_model(teacher))
    x = torch.tensor(np.stack(images)).permute(0, 3, 1, 2).float()[:, :, :33, :33] / 255 - 0.43

    def agreement(model):
        with torch.no_grad():
            a, b = FastSIN.from_model(model)(x), fast_t(x)
        return float(torch.cat([(u == v).flatten() for u, v in zip(a, b)]).float().mean())

    torch.manual_seed(cfg.seed)
    before = agreement(SINNet(width=0.25, depth=1).eval())
    after = agreement(train(cfg, TrainingSet(images, segs), tmp_path / "run", progress=False, teacher=teacher))
    assert after > before + 0.1, (before, after)


def test_train_cli_holdout_and_teacher(tmp_path, capsys):
    from sin.cli import main

    torch.set_num_threads(1)
    images, segs = edge_images(4, h=24, w=28)
    bsds = _write_bsds(tmp_path / "bsds", images, segs)
    holdout = tmp_path / "holdout.txt"
    holdout.write_text("# held out\n1\n3  # the last one\n")
    teacher = _teacher(tmp_path)
    base = ["train", "--preset", "tiny", "--splits", "train", "--crop", "17", "--iterations", "2",
            "--checkpoint-every", "1", "--snapshot-every", "1", "--data", str(bsds), "--width", "0.25",
            "--depth", "1", "--distill-weight", "0.5", "--teacher", str(teacher), "--holdout", str(holdout)]
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "training on 2 images" in out and "2 held out" in out
    meta = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)["meta"]
    assert meta["data"]["excluded"] == ["1", "3"] and meta["data"]["images"] == 2
    assert meta["teacher"]["sha256"] == file_sha256(teacher)
    assert meta["config"]["width"] == 0.25 and meta["config"]["distill_weight"] == 0.5

    def err_of(*args):
        capsys.readouterr()
        rc = main([*base, *args])
        err = [ln for ln in capsys.readouterr().err.splitlines() if "train SIN" not in ln]
        return rc, err[-1] if err else ""

    other = _teacher(tmp_path, seed=1, name="other.pt")
    rc, err = err_of("--out", str(tmp_path / "run"), "--resume", "--iterations", "3", "--teacher", str(other))
    assert rc == 2 and "as teacher" in err, err
    holdout.write_text("1\n")  # another held-out list is other data
    rc, err = err_of("--out", str(tmp_path / "run"), "--resume", "--iterations", "3")
    assert rc == 2 and "other data" in err, err
    holdout.write_text("1\n99\n")
    rc, err = err_of("--out", str(tmp_path / "new"))
    assert rc == 2 and "held-out ids not among the training images" in err and "99" in err, err
    rc, err = err_of("--out", str(tmp_path / "new2"), "--teacher", str(tmp_path / "missing.pt"))
    assert rc == 2 and "not found" in err, err


def test_read_id_list(tmp_path):
    from sin.datasets import read_id_list

    p = tmp_path / "ids.txt"
    p.write_text("# comment\n\n 12 \n34 # trailing\n")
    assert read_id_list(p) == ["12", "34"]
    p.write_text("12\n12\n")
    with pytest.raises(ValueError, match="listed twice"):
        read_id_list(p)
    p.write_text("12 13\n")
    with pytest.raises(ValueError, match="one image id per line"):
        read_id_list(p)
    p.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no image ids"):
        read_id_list(p)
    with pytest.raises(FileNotFoundError):
        read_id_list(tmp_path / "missing.txt")


def test_the_committed_holdout_list_is_50_train_images():
    from sin.datasets import read_id_list
    from sin.paths import REPO

    ids = read_id_list(REPO / "sin" / "data" / "small_sin_holdout.txt")
    assert len(ids) == 50 and ids == sorted(ids)
    try:
        train_ids = set(sin.datasets.BSDS500(split="train").ids)
    except FileNotFoundError:
        pytest.skip("BSDS500 not available")
    assert set(ids) <= train_ids


# ---------------------------------------------------------------------------------- the weights tag
def test_small_weights_tag_file_sha_architecture_and_connectivity():
    from sin.providers.sin_provider import SIN_WEIGHTS

    tag = SIN_WEIGHTS.tag("small")
    assert tag is not None
    path = tag.checked_file()  # raises unless the file's sha256 is the recorded one
    assert file_sha256(path) == tag.sha256
    model = load_model(path)
    assert model.architecture == {"batch_norm": True, "width": 0.5, "depth": 1}
    meta = torch.load(path, weights_only=True)["meta"]
    assert meta["teacher"]["sha256"] == file_sha256(DEFAULT_WEIGHTS)
    assert len(meta["data"]["excluded"]) == 50
    provider = sin.get_provider("sin:weights=small,precision=fp32")
    assert provider.weights_sha256() == tag.sha256
    rng = np.random.default_rng(1)
    image = (rng.random((90, 130, 3)) * 255).astype(np.uint8)
    for k in (20, 200, 2000):
        labels = provider(image, k)
        assert is_connected(labels)
        assert labels.min() == 0 and len(np.unique(labels)) == labels.max() + 1


# ---------------------------------------------------------------------------------- FLOPs and tables
def test_flop_counter_agrees_with_the_layer_shapes():
    from benchmarks.sin_flops import conv_macs, counted_flops

    x = torch.zeros(1, 3, *network_size(3, 4))
    for width, depth in ((1.0, 2), (0.5, 1)):
        model = SINNet(width=width, depth=depth).eval()
        assert counted_flops(model, x) == 2 * conv_macs(model, x)
    # by hand: conv0a of the width-1 network alone, 16 outputs x 3 inputs x 9 taps per pixel
    conv = SINNet().conv0a[0]
    assert conv_macs(conv, x) == x.shape[2] * x.shape[3] * 16 * 3 * 9
    full, small = (counted_flops(FastSIN.from_model(SINNet(width=w, depth=d).eval()), x) for w, d in ((1, 2), (0.5, 1)))
    assert 0.1 < small / full < 0.2


def _quality_run(folder, methods, images, protocol=None, seed=0):
    """A minimal superpixel_quality folder: pairs.csv.gz and its sidecar."""
    from benchmarks import _report as R

    rng = np.random.default_rng(seed)
    rows = []
    for m in methods:
        for k in (200, 400, 800, 1200):
            for img in images:
                for gt in range(2):
                    rows.append({"method": m, "n_segments": k, "image": img, "gt": gt, "sp": k * (0.98 + 0.04 * rng.random()),
                                 "seconds": 0.01, "asa": 0.9 + 0.05 * rng.random(), "rec": 0.7 + 0.1 * rng.random(),
                                 "pre": 0.1, "co": 0.3 + 0.2 * rng.random(), "ue": 0.05, "ue_np": 0.1, "ue_levin": 5.0,
                                 "oe": 0.9, "ev": 0.8, "mde": 1.0, "cd": 0.2})
    folder.mkdir(parents=True)
    import pandas as pd

    pd.DataFrame(rows).to_csv(folder / "pairs.csv.gz", index=False)
    protocol = protocol or {"dataset": "bsds500", "split": "test", "limit": None, "processes": 2,
                            "dataset_label": "bsds500 (test)", "gt_protocol": "as stored (all segments)",
                            "tolerance": "1 px"}
    R.write_sidecar(folder / "quality.md", {
        "script": "benchmarks.superpixel_quality", "command": "x", "machine": {"date": "today"}, "protocol": protocol,
        "providers": [{"method": m, "spec": m, "tag": f"{m}-0", "weights": None, "sha256": None, "trained": None}
                      for m in methods], "failures": [], "history": []})
    return folder


def test_merge_pairs_adds_a_method_next_to_committed_ones(tmp_path):
    from benchmarks import merge_pairs

    images = [f"i{k}" for k in range(6)]
    base = _quality_run(tmp_path / "base", ["slic", "sin:precision=fp32", "snic"], images)
    extra = _quality_run(tmp_path / "extra", ["ssn", "fh"], images, seed=1)
    new = _quality_run(tmp_path / "new", ["sin:weights=small,precision=fp32"], images, seed=2)
    assert merge_pairs.main(["--out", str(tmp_path / "out"), "--no-plots", str(base), f"{extra}:ssn", str(new)]) == 0
    with gzip.open(tmp_path / "out" / "pairs.csv.gz", "rt") as f:
        methods = list(dict.fromkeys(r["method"] for r in csv.DictReader(f)))
    assert methods == ["slic", "sin:precision=fp32", "snic", "ssn", "sin:weights=small,precision=fp32"]
    record = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert [p["method"] for p in record["providers"]] == methods
    assert [p["methods"] for p in record["merged_from"]] == [methods[:3], ["ssn"], methods[4:]]
    import pandas as pd

    matched = pd.read_csv(tmp_path / "out" / "matched.csv")
    small = matched[matched.method == "sin:weights=small,precision=fp32"].iloc[0]
    ref = matched[matched.method == "sin:precision=fp32"].iloc[0]
    # the paired difference is against the base's SIN, exactly the difference of the two curves
    assert small["asa@600_diff_vs_sin"] == pytest.approx(small["asa@600"] - ref["asa@600"], abs=1e-5)
    # refused: a method twice, another protocol, an image missing, writing into a source
    with pytest.raises(ValueError, match="in both"):
        merge_pairs.merge([merge_pairs.parse_source(str(base)), merge_pairs.parse_source(str(base))])
    other = _quality_run(tmp_path / "other", ["ers"], images, protocol={"dataset": "bsds500", "split": "val"})
    with pytest.raises(ValueError, match="another protocol"):
        merge_pairs.merge([merge_pairs.parse_source(str(base)), merge_pairs.parse_source(str(other))])
    few = _quality_run(tmp_path / "few", ["ers"], images[:4])
    with pytest.raises(ValueError, match="lacks 2 of the reference"):
        merge_pairs.merge([merge_pairs.parse_source(str(base)), merge_pairs.parse_source(str(few))])
    assert merge_pairs.main(["--out", str(base), str(base), str(new)]) == 2
    with pytest.raises(ValueError, match="no rows of"):
        merge_pairs.merge([merge_pairs.parse_source(f"{extra}:nope")])


def test_sod_table_pairs_two_runs_of_sin():
    """Two runs of SIN (labelled by their specs) are compared with the first one as reference."""
    import pandas as pd

    from benchmarks.sod_table import PAIRED, comparisons

    labels = ["sin:precision=fp32", "sin:weights=small,precision=fp32", "slic"]
    rng = np.random.default_rng(0)
    rows = [{"image": f"i{i}", "provider": p, "size": 200, **{m: rng.random() + (0.1 if p == "slic" else 0)
                                                              for m in PAIRED}}
            for i in range(30) for p in labels]
    per_image = pd.DataFrame(rows)
    comps = comparisons(per_image, labels, [200])
    assert {c["other"] for c in comps} == set(labels[1:])
    mae = next(c for c in comps if c["other"] == labels[1] and c["metric"] == "mae")
    wide = per_image.pivot(index="image", columns="provider", values="mae")
    assert mae["diff"] == pytest.approx(float((wide[labels[0]] - wide[labels[1]]).mean()))
    assert comparisons(per_image[per_image.provider == "slic"], ["slic"], [200]) == []
