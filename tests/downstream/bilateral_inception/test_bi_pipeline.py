"""The one BI pipeline: user providers, cache keys, provider checks, mIoU bootstrap and one-line CLI errors."""

import numpy as np
import pytest
import torch
from PIL import Image

import downstream.bilateral_inception as bi
from conftest import write_folder_segmentation
from downstream.bilateral_inception.__main__ import main as cli_main
from downstream.bilateral_inception.datasets import FolderSegmentation
from downstream.bilateral_inception.metrics import iou_per_class, mean_iou, paired_bootstrap_miou
from downstream.bilateral_inception.pipeline import BIPipeline, ProviderMismatch
from downstream.bilateral_inception.trunks import tiny_trunk
from sin.pooling import Assignment
from sin.providers import LabelCache



@pytest.fixture
def toy(tmp_path):
    """Two 24x32 images, a bright square (class 1) on a dark background (class 0)."""
    samples = {}
    for i in range(2):
        lab = np.zeros((24, 32), np.uint8)
        lab[4:16, 4 + 8 * i:16 + 8 * i] = 1
        samples[f"im{i}"] = (lab * 200 + 30)[..., None].repeat(3, 2), lab
    return write_folder_segmentation(tmp_path / "toy", samples, "0 background\n1 square\n")


def halves(image, n_segments):
    """A user's own superpixel method: left / right half of the image."""
    labels = np.zeros(image.shape[:2], np.int32)
    labels[:, image.shape[1] // 2:] = 1
    return labels


def test_user_function_as_bi_provider(toy, tmp_path):
    # the README example: plug your own superpixels into Bilateral Inception
    data = FolderSegmentation(toy, "train")
    pipe = BIPipeline(tmp_path / "cache", short_side=None, progress=False)
    trunk = bi.TrunkHandle(tiny_trunk(data.num_classes))
    config = bi.BITrainConfig(epochs=1, batch_size=2)
    head, state, record, _ = pipe.train_bi(trunk, halves, 2, data, data, config=config, runs_dir=tmp_path / "runs")
    cm = pipe.evaluate_bi(head, trunk, halves, 2, data)
    print(f"mIoU with my superpixels: {cm.mean_iou():.3f}")
    # the checkpoint records the user's provider; predictions are constant on each half
    assert state["meta"]["provider"].endswith("halves") and len(state["meta"]["provider_fingerprint"]) == 16
    assert record["epoch"] == 1 and 0 <= cm.mean_iou() <= 1
    preds = {}
    pipe.evaluate_bi(head, trunk, halves, 2, data, predictions=preds)
    for p in preds.values():
        assert len(np.unique(p[:, :16])) == 1 and len(np.unique(p[:, 16:])) == 1


def test_superpixels_come_from_the_one_label_cache(toy, tmp_path):
    data = FolderSegmentation(toy, "train")
    cache = LabelCache(tmp_path / "labels")
    pipe = BIPipeline(tmp_path / "cache", label_cache=cache, progress=False)
    sps = pipe.superpixels("slic:compactness=20", [data], 8)
    prov = bi.pipeline.get_provider("slic:compactness=20")
    assert cache.path(prov, 8, data.load("im0").image).is_file()
    # another parameter is another key, never the stale map
    other = bi.pipeline.get_provider("slic:compactness=1")
    pipe.superpixels(other, [data], 8)
    assert cache.path(other, 8, data.load("im0").image).is_file() and other.tag != prov.tag
    assert set(sps) == {"im0", "im1"}


def test_feature_cache_key_covers_short_side_weights_flips_and_images(toy, tmp_path):
    data = FolderSegmentation(toy, "train")
    t1, t2 = tiny_trunk(2), tiny_trunk(2)
    with torch.no_grad():
        next(t2.parameters()).add_(1e-3)  # other weights, same architecture
    h1 = bi.TrunkHandle(t1)
    keys = {
        bi.feature_cache_key("features", "tiny", h1.fingerprint, 257, dataset=data),
        bi.feature_cache_key("features", "tiny", h1.fingerprint, 129, dataset=data),  # short side
        bi.feature_cache_key("features", "tiny", bi.TrunkHandle(t2).fingerprint, 257, dataset=data),  # weights
        bi.feature_cache_key("features", "tiny", h1.fingerprint, 257, flips=True, dataset=data),
        bi.feature_cache_key("features", "tiny", h1.fingerprint, 257, dataset=FolderSegmentation(toy, "val",
                                                                                                  name="other")),
    }
    assert len(keys) == 5
    before = bi.dataset_fingerprint(data)
    img = toy / "images" / "im0.png"
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(img)  # an edited image: another key
    assert bi.dataset_fingerprint(data) != before
    # a changed short side with an unchanged trunk never reuses the other size's features
    p257 = BIPipeline(tmp_path / "c", short_side=17, progress=False).features(h1, [data])
    p33 = BIPipeline(tmp_path / "c", short_side=33, progress=False).features(h1, [data])
    assert p257.caches[0].root != p33.caches[0].root
    assert p257.load_tensor("im0").shape != p33.load_tensor("im0").shape


def test_eval_with_another_provider_fingerprint_is_refused(toy, tmp_path):
    data = FolderSegmentation(toy, "train")
    pipe = BIPipeline(tmp_path / "cache", short_side=None, progress=False)
    trunk = bi.TrunkHandle(tiny_trunk(2))
    _, _, _, out = pipe.train_bi(trunk, "slic:compactness=20", 8, data, None,
                                 config=bi.BITrainConfig(epochs=1, batch_size=2), runs_dir=tmp_path / "runs")
    _, _, prov, n, _ = pipe.load_bi(out / "best.pt", trunk)
    assert prov.spec_string() == "slic:compactness=20" and n == 8
    with pytest.raises(ProviderMismatch, match="compactness=20.*compactness=5"):
        pipe.load_bi(out / "best.pt", trunk, "slic:compactness=5")
    with pytest.warns(UserWarning, match="trained on"):
        pipe.load_bi(out / "best.pt", trunk, "slic:compactness=5", allow_provider_change=True)


def test_mean_iou_and_bootstrap_by_hand():
    # image 0: 2 px of class 0 right, 1 px of class 1 predicted 0; image 1: 1 px of class 1 right
    a = np.array([[[2, 0], [1, 0]], [[0, 0], [0, 1]]])
    b = np.array([[[2, 0], [0, 1]], [[0, 0], [0, 1]]])  # method b gets everything right
    # a summed: [[2, 0], [1, 1]]: IoU0 = 2 / 3, IoU1 = 1 / 2 -> mIoU 7/12; b: mIoU 1
    assert mean_iou(a.sum(0)) == pytest.approx(7 / 12)
    assert mean_iou(a.sum(0)) == pytest.approx(np.nanmean(iou_per_class(a.sum(0))))
    assert np.isnan(mean_iou(np.zeros((2, 2))))
    res = paired_bootstrap_miou(a, b, n_boot=4000, seed=1)
    assert res["diff"] == pytest.approx(7 / 12 - 1)
    # resamples: {0,0} p=1/4 -> a: IoU0 4/6, IoU1 0/2 -> 1/3, b: 1 -> -2/3; {0,1} p=1/2 -> -5/12;
    # {1,1} p=1/4 -> both perfect on class 1 only -> 0. So the 95 % interval is [-2/3, 0].
    assert res["low"] == pytest.approx(-2 / 3) and res["high"] == pytest.approx(0.0)
    same = paired_bootstrap_miou(a, a, n_boot=50)
    assert same["diff"] == same["low"] == same["high"] == 0.0
    # seeds: paired by seed, the statistic is the seed mean of the differences
    two = paired_bootstrap_miou(np.stack([a, a]), np.stack([b, a]), n_boot=10)
    assert two["diff"] == pytest.approx((7 / 12 - 1) / 2)
    with pytest.raises(ValueError, match="matching"):
        paired_bootstrap_miou(a, b[:1])


def test_empty_label_maps_give_value_errors():
    image = torch.rand(1, 3, 0, 4)
    with pytest.raises(ValueError):
        bi.superpixel_features(image, Assignment(index=torch.zeros(1, 1, 0, 4, dtype=torch.long),
                                                 weight=torch.ones(1, 1, 0, 4), num_superpixels=1))
    ex = bi.BIExample("e", torch.rand(3, 0, 0), torch.zeros(0, 0, dtype=torch.long),
                      torch.zeros(0, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty superpixel map"):
        bi.collate_bi([ex], 2)
    with pytest.raises(ValueError, match="non-empty"):
        bi.bi_data.check_superpixels(np.zeros((0, 3), np.int32), (0, 3), "e")


def _one_line_error(capsys, argv, match):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and match in err, err
    assert "weights_only=False" not in err and "Traceback" not in err


def test_cli_one_line_errors(toy, tmp_path, capsys, monkeypatch):
    common = ["--dataset", "folder", "--data-root", str(toy), "--no-progress"]
    out = ["--out", str(tmp_path / "run")]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # stages that start from a checkpoint never need the pretrained DeepLab weights (absent on a bare machine)
    monkeypatch.setenv("SIN_DEEPLAB_WEIGHTS", str(tmp_path / "absent" / "deeplab.pt"))
    _one_line_error(capsys, ["train", "--stage", "trunk", "--trunk", "tiny", "--device", "cuda", *out, *common],
                    "CUDA is not available")
    _one_line_error(capsys, ["train", "--stage", "bi", "--trunk-checkpoint", str(tmp_path / "no.pt"), *out, *common],
                    "--trunk-checkpoint not found")
    _one_line_error(capsys, ["train", "--stage", "bi", *out, *common], "needs --trunk-checkpoint")
    bad = tmp_path / "bad.pt"
    torch.save({"x": halves}, bad)  # a pickle that weights_only refuses: torch would advise weights_only=False
    _one_line_error(capsys, ["train", "--stage", "bi", "--trunk-checkpoint", str(bad), *out, *common],
                    "cannot read checkpoint")
    _one_line_error(capsys, ["eval", "--trunk", "deeplabv3_mobilenetv2", "--trunk-weights", str(bad), *common],
                    "cannot read DeepLabV3-MobileNetV2 weights")
    with pytest.raises(SystemExit) as exc:  # a bad provider is a usage error, found while parsing
        cli_main(["train", "--stage", "bi", "--trunk-checkpoint", str(bad), "--provider", "nope", *out, *common])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "unknown superpixel provider 'nope'" in err[0]
    for flag, value in (("--epochs", "-1"), ("--n-segments", "0"), ("--batch-size", "0"), ("--short-side", "4")):
        with pytest.raises(SystemExit):  # argparse: usage + one error line, exit code 2
            cli_main(["train", "--stage", "bi", flag, value, *out, *common])
    assert not (tmp_path / "run").exists()  # nothing written for a refused command


def test_cli_trunk_starts_from_the_voc_weights_unless_asked(toy, tmp_path, capsys, monkeypatch):
    # the quick start fine-tunes the VOC-trained port: with no weights there, one line says where they go
    from downstream.bilateral_inception.__main__ import _trunk_weights, build_parser

    monkeypatch.delenv("SIN_DEEPLAB_WEIGHTS", raising=False)
    monkeypatch.setenv("SIN_WEIGHTS_ROOT", str(tmp_path / "no_weights"))
    common = ["--dataset", "folder", "--data-root", str(toy), "--no-progress", "--out", str(tmp_path / "run")]
    _one_line_error(capsys, ["train", "--stage", "trunk", *common], "VOC-trained DeepLab weights are not at")
    fake = tmp_path / "w" / "deeplabv3_mnv2_dm05_tflite_weights.pt"
    fake.parent.mkdir()
    fake.write_bytes(b"x")
    monkeypatch.setenv("SIN_WEIGHTS_ROOT", str(fake.parent))
    args = build_parser().parse_args(["train", "--stage", "trunk", *common])
    assert _trunk_weights(args) == str(fake)
    args = build_parser().parse_args(["train", "--stage", "trunk", "--trunk-weights", "random", *common])
    assert _trunk_weights(args) is None  # a random trunk only when asked


def test_run_lock_makes_a_second_process_wait_for_the_first(tmp_path):
    # two table processes asking for one run folder: the second blocks until the first is done
    import subprocess
    import sys
    import textwrap
    import time

    from downstream.bilateral_inception.pipeline import run_lock

    run = tmp_path / "bi_run"
    holder = textwrap.dedent(f"""
        import time
        from downstream.bilateral_inception.pipeline import run_lock
        with run_lock({str(run)!r}):
            open({str(tmp_path / "started")!r}, "w").close()
            time.sleep(1.5)
            open({str(run / "done")!r}, "w").close()
    """)
    p = subprocess.Popen([sys.executable, "-c", holder])
    try:
        for _ in range(200):
            if (tmp_path / "started").exists():
                break
            time.sleep(0.05)
        t0 = time.perf_counter()
        with run_lock(run):
            waited = time.perf_counter() - t0
            assert (run / "done").exists()  # the first process had finished its run
        assert waited > 0.5
    finally:
        p.wait(timeout=30)
    with run_lock(tmp_path / "crf_select_x.json"):  # a file target: the lock sits beside it
        assert (tmp_path / "crf_select_x.json.lock").exists()
