import csv
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch

from sin.checkpoint import load_model
from sin.inference import SINPredictor, normalize_image
from sin.loss import step_targets
from sin.model import STEPS, SINNet
from sin.train import PRESETS, TrainConfig, TrainingSet, train


def edge_images(n=3, h=40, w=48, seed=0):
    """Two-region images (dark left, bright right, boundary column varies) with their labels."""
    rng = np.random.default_rng(seed)
    images, segs = [], []
    for _ in range(n):
        col = int(rng.integers(10, w - 10))
        img = np.full((h, w, 3), 40, np.uint8)
        img[:, col:] = 210
        img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
        lab = np.zeros((h, w), np.int32)
        lab[:, col:] = 1
        images.append(img)
        segs.append([lab, lab.copy()])
    return images, segs


def test_config_validation():
    with pytest.raises(ValueError, match="crop"):
        TrainConfig(crop=8)
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="mse")
    with pytest.raises(ValueError, match="scale_aug"):
        TrainConfig(scale_aug=(1.5, 0.5))
    assert TrainConfig(crop=225).net_crop == 225 and TrainConfig(crop=150).net_crop == 145
    assert TrainConfig(milestones=("5",)).milestones == (5,)


def test_training_set_augmentation_is_joint():
    # label = a function of the pixel colour, so any crop/flip must keep them aligned
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 200, (30, 50)).astype(np.int32)
    img = np.repeat(lab[..., None].astype(np.uint8), 3, axis=-1)
    data = TrainingSet([img], [[lab]])
    assert len(data) == 1
    x, y = data.batch(6, 17, torch.Generator().manual_seed(0))
    assert x.shape == (6, 3, 17, 17) and y.shape == (6, 17, 17) and y.dtype == torch.int64
    assert torch.equal((x[:, 0] * 255).round().long(), y)
    # with random rescaling only the shapes and the value ranges are guaranteed
    x, y = data.batch(4, 17, torch.Generator().manual_seed(0), scale_aug=(0.5, 2.0))
    assert x.shape == (4, 3, 17, 17) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert set(y.unique().tolist()) <= set(np.unique(lab).tolist())


def test_training_set_errors():
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        TrainingSet([img], [[np.zeros((9, 10))]])
    with pytest.raises(ValueError, match="uint8"):
        TrainingSet([img.astype(float)], [[np.zeros((10, 10))]])
    with pytest.raises(ValueError, match="no segmentation"):
        TrainingSet([img], [[]])


def test_training_learns_a_colour_edge(tmp_path):
    """A short run learns the coarse interpolation steps of a colour edge.

    The fine steps (1h, 0h) need far longer: without skip connections (the SIN design) the
    pixel position of an edge must travel through the stride-16 bottleneck.
    """
    torch.set_num_threads(1)
    images, segs = edge_images()
    data = TrainingSet(images, segs)
    # clean cross-entropy: the default (on probabilities) is bounded below by -log(e / (1 + e)) per
    # pixel for two classes, so "halves the loss" is a criterion for the logits form only
    cfg = replace(PRESETS["tiny"], iterations=250, batch_size=4, lr=2e-3, milestones=(), checkpoint_every=1000,
                  snapshot_every=1000, log_every=50, loss="logits")
    losses = []
    model = train(cfg, data, tmp_path, progress=False, on_step=lambda i, loss: losses.append(loss))
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:10])
    x, y = data.batch(16, 33, torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = model(normalize_image(x))
    for step in ("3h", "2h"):  # the coarse horizontal steps are decided (almost) everywhere correctly
        lg = logits[STEPS.index(step)][:, :, :, 1::2]
        cls, counted = step_targets(y, step)
        errors = (((lg[:, 1] > lg[:, 0]).long() != cls).float() * counted).sum()
        assert counted.sum() > 20 and errors / counted.sum() < 0.05
    # and the trained network adheres to the edge better than the untrained one
    img, seg = edge_images(1, 49, 49, seed=9)
    gt = seg[0][0]

    def asa(labels):
        return sum(np.bincount(gt[labels == k]).max() for k in np.unique(labels)) / gt.size

    trained = SINPredictor(weights=tmp_path / "weights.pt")(img[0], 16)
    untrained = SINPredictor(weights="untrained")(img[0], 16)
    assert asa(trained) > asa(untrained)
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [50, 100, 150, 200, 250]
    assert load_model(tmp_path / "weights.pt").trained


def test_resume_is_exact(tmp_path):
    torch.set_num_threads(1)
    images, segs = edge_images(2)
    cfg = replace(PRESETS["tiny"], iterations=6, checkpoint_every=3, snapshot_every=100, log_every=1,
                  scale_aug=(0.8, 1.2))
    full = train(cfg, TrainingSet(images, segs), tmp_path / "full", progress=False)
    train(replace(cfg, iterations=3), TrainingSet(images, segs), tmp_path / "part", progress=False)
    resumed = train(cfg, TrainingSet(images, segs), tmp_path / "part", resume=True, progress=False)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    with open(tmp_path / "part" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 7))
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds)  # the resumed segment's clock continues from the checkpoint
    with pytest.raises(ValueError, match="different configuration"):
        train(replace(cfg, lr=0.5), TrainingSet(images, segs), tmp_path / "part", resume=True, progress=False)
    with pytest.raises(FileNotFoundError):
        train(cfg, TrainingSet(images, segs), tmp_path / "nothing", resume=True, progress=False)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "checkpoint.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="cannot read --resume: training checkpoint"):
        train(cfg, TrainingSet(images, segs), tmp_path / "broken", resume=True, progress=False)


def test_resume_can_extend_a_finished_run(tmp_path):
    """A finished run resumed with more iterations and a milestone after its checkpoint equals one
    run that had that schedule from the start; rewriting an already-applied milestone is refused."""
    torch.set_num_threads(1)
    images, segs = edge_images(2)
    cfg = replace(PRESETS["tiny"], iterations=4, milestones=(2,), checkpoint_every=2, snapshot_every=100,
                  log_every=1)
    longer = replace(cfg, iterations=7, milestones=(2, 5))
    full = train(longer, TrainingSet(images, segs), tmp_path / "full", progress=False)
    train(cfg, TrainingSet(images, segs), tmp_path / "part", progress=False)
    extended = train(longer, TrainingSet(images, segs), tmp_path / "part", resume=True, progress=False)
    for (k, a), b in zip(full.state_dict().items(), extended.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="only later milestones"):
        train(replace(longer, iterations=9, milestones=(3, 5)), TrainingSet(images, segs), tmp_path / "part",
              resume=True, progress=False)
    with pytest.raises(ValueError, match="past the requested"):
        train(replace(cfg, iterations=5), TrainingSet(images, segs), tmp_path / "part", resume=True,
              progress=False)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_training_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch
        from dataclasses import replace
        from sin.train import PRESETS, TrainingSet, train
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        from fixtures import edge_images
        torch.set_num_threads(1)
        images, segs = edge_images(2)
        cfg = replace(PRESETS["tiny"], iterations=4)
        model = train(cfg, TrainingSet(images, segs), {str(tmp_path / "run")!r}, progress=False)
        params = {{k: v for k, v in model.named_parameters()}}
        torch.save(params, os.path.join({str(tmp_path)!r}, f"rank{{os.environ['RANK']}}.pt"))
    """))
    (tmp_path / "fixtures.py").write_text(
        "import numpy as np\n" + textwrap.dedent(__import__("inspect").getsource(edge_images)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt")
    b = torch.load(tmp_path / "rank1.pt")
    assert len(a) == len(list(SINNet().parameters()))
    for k in a:  # DDP keeps the parameters of the replicas identical (BN buffers are rank-local)
        assert torch.equal(a[k], b[k]), k
    assert (tmp_path / "run" / "weights.pt").exists() and (tmp_path / "run" / "checkpoint.pt").exists()


def test_training_curve_dedupes_resumed_logs_and_writes_outputs(tmp_path):
    import pandas as pd

    from benchmarks import training_curve

    run = tmp_path / "run"
    run.mkdir()
    # a run resumed from iteration 20 logs 20 again: the later entry must win
    pd.DataFrame({"iteration": [10, 20, 20, 30], "loss": [9.0, 8.0, 7.5, 7.0], "lr": [1e-4, 2e-4, 2e-4, 3e-4],
                  "seconds": [1.0, 2.0, 2.1, 3.0]}).to_csv(run / "log.csv", index=False)
    assert training_curve.main([str(run), "--out", str(tmp_path / "out"), "--window", "2"]) == 0
    merged = pd.read_csv(tmp_path / "out" / "loss_curve.csv")
    assert merged.iteration.tolist() == [10, 20, 30]
    assert merged.loss.tolist() == [9.0, 7.5, 7.0]
    assert (tmp_path / "out" / "loss_curve.png").stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="no training log"):
        training_curve.read_log(tmp_path / "missing")


def test_training_curve_stitches_a_restarted_clock(tmp_path):
    from benchmarks.training_curve import read_log

    run = tmp_path / "run"
    run.mkdir()
    # an older resumed run restarted its clock: 100 s, then 10 s and 20 s into the second segment
    (run / "log.csv").write_text("iteration,loss,lr,seconds\n10,9,1e-4,50\n20,8,1e-4,100\n30,7,1e-4,10\n"
                                 "40,6,1e-4,20\n")
    assert read_log(run).seconds.tolist() == [50, 100, 110, 120]


# ---------------------------------------------------------------------------------- the train CLI
def _write_bsds(root, images, segs, split="train"):
    import scipy.io
    from PIL import Image

    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "groundTruth" / split).mkdir(parents=True, exist_ok=True)
    for i, (img, gts) in enumerate(zip(images, segs)):
        Image.fromarray(img).save(root / "images" / split / f"{i}.jpg", quality=95)
        cell = np.empty((1, len(gts)), dtype=object)
        for t, g in enumerate(gts):
            cell[0, t] = {"Segmentation": (g + 1).astype(np.uint16)}
        scipy.io.savemat(root / "groundTruth" / split / f"{i}.mat", {"groundTruth": cell})
    return root


def _train_cli(capsys, *args):
    from sin.cli import main

    capsys.readouterr()
    rc = main(["train", "--preset", "tiny", "--splits", "train", "--crop", "17", "--iterations", "2",
               "--checkpoint-every", "1", "--snapshot-every", "1", *map(str, args)])
    # stderr minus the tqdm progress bar: what a user reads
    err = "\n".join(line for line in capsys.readouterr().err.splitlines() if "train SIN" not in line).strip()
    return rc, err


@pytest.fixture
def bsds(tmp_path):
    images, segs = edge_images(2, h=24, w=28)
    return _write_bsds(tmp_path / "bsds", images, segs)


def test_train_cli_never_replaces_an_existing_run(tmp_path, bsds, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    assert _train_cli(capsys, "--data", bsds, "--out", out) == (0, "")
    log = (out / "log.csv").read_bytes()
    ckpt = (out / "checkpoint.pt").read_bytes()
    # the old code silently restarted here and rewrote checkpoint.pt and log.csv
    rc, err = _train_cli(capsys, "--data", bsds, "--out", out, "--iterations", "1")
    assert rc == 2 and len(err.splitlines()) == 1 and "--resume" in err and "--overwrite" in err, err
    assert (out / "log.csv").read_bytes() == log and (out / "checkpoint.pt").read_bytes() == ckpt
    # --overwrite starts over and leaves no stale snapshot of the old run behind
    (out / "step_0000999.pt").write_bytes(b"stale")
    assert _train_cli(capsys, "--data", bsds, "--out", out, "--iterations", "1", "--overwrite")[0] == 0
    assert sorted(p.name for p in out.glob("step_*.pt")) == ["step_0000001.pt"]
    with open(out / "log.csv") as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [1]


def test_train_cli_resume_refuses_other_data_and_inference_weights(tmp_path, bsds, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    assert _train_cli(capsys, "--data", bsds, "--out", out)[0] == 0
    images, segs = edge_images(2, h=24, w=28, seed=5)  # same ids and layout, other pixels
    other = _write_bsds(tmp_path / "other", images, segs)
    rc, err = _train_cli(capsys, "--data", other, "--out", out, "--resume", "--iterations", "3")
    assert rc == 2 and len(err.splitlines()) == 1 and "other data" in err, err
    assert _train_cli(capsys, "--data", bsds, "--out", out, "--resume", "--iterations", "3")[0] == 0
    # --resume on a folder whose checkpoint.pt is really inference weights: no KeyError
    (out / "checkpoint.pt").write_bytes((out / "weights.pt").read_bytes())
    rc, err = _train_cli(capsys, "--data", bsds, "--out", out, "--resume", "--iterations", "4")
    assert rc == 2 and len(err.splitlines()) == 1 and "not a training checkpoint" in err, err


@pytest.mark.parametrize("flag, value", [("--gamma", "-1"), ("--gamma", "0"), ("--gamma", "1.5"), ("--lr", "0"),
                                         ("--lr", "-1e-3"), ("--checkpoint-every", "0"), ("--log-every", "0"),
                                         ("--iterations", "0"), ("--batch-size", "0"), ("--snapshot-every", "-2"),
                                         ("--limit", "0"), ("--gamma", "nan"), ("--lr", "x")])
def test_train_cli_rejects_bad_numbers_up_front(tmp_path, capsys, flag, value):
    from sin.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(tmp_path / "run"), f"{flag}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{flag} must be" in err.splitlines()[-1], err
    assert not (tmp_path / "run").exists()


def test_train_config_rejects_negative_gamma_and_zero_cadences():
    for bad in ({"gamma": -1.0}, {"gamma": 0.0}, {"gamma": 2.0}, {"lr": 0.0}, {"checkpoint_every": 0},
                {"log_every": 0}, {"snapshot_every": 0}, {"batch_size": 0}, {"weight_decay": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)


def test_train_cli_checks_the_data_before_loading_it(tmp_path, bsds, capsys, monkeypatch):
    import sin.datasets.bsds500 as b

    def no_decoding(*a, **k):
        raise AssertionError("an image was decoded before the data check failed")

    monkeypatch.setattr(b, "read_image", no_decoding)
    # the train split exists, the val split does not: the old code loaded train first
    rc, err = _train_cli(capsys, "--data", bsds, "--out", tmp_path / "run", "--splits", "train", "val")
    assert rc == 2 and len(err.splitlines()) == 1 and "val" in err, err
    rc, err = _train_cli(capsys, "--data", tmp_path / "missing", "--out", tmp_path / "run")
    assert rc == 2 and len(err.splitlines()) == 1 and "not found" in err, err
    (tmp_path / "empty" / "images" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "groundTruth" / "train").mkdir(parents=True)
    rc, err = _train_cli(capsys, "--data", tmp_path / "empty", "--out", tmp_path / "run")
    assert rc == 2 and "no .jpg images" in err, err
    rc, err = _train_cli(capsys, "--data", bsds, "--out", tmp_path / "run", "--device", "cuda:7")
    assert rc == 2 and len(err.splitlines()) == 1 and "--device" in err, err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, err = _train_cli(capsys, "--data", bsds, "--out", blocker / "run")
    assert rc == 2 and len(err.splitlines()) == 1, err
