"""benchmarks.e2e_superpixels: ASA against class labels (void excluded), shipped vs fine-tuned SIN."""

import csv

import numpy as np
import pytest
import torch

from conftest import write_folder_segmentation
from benchmarks import e2e_superpixels as E
from sin.checkpoint import DEFAULT_WEIGHTS, load_model, save_weights



def test_asa_ignoring_void_by_hand():
    # superpixel 0 covers 3 class-1 pixels and 1 class-2 pixel; superpixel 1: 2 void, 2 class-2
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    gt = np.array([[1, 1, 255, 2], [1, 2, 255, 2]])
    assert E.asa_ignoring_void(labels, gt) == pytest.approx((3 + 2) / 6)
    assert np.isnan(E.asa_ignoring_void(labels, np.full_like(gt, 255)))
    assert E.asa_ignoring_void(np.arange(8).reshape(2, 4), gt) == 1.0  # one pixel per superpixel


@pytest.fixture
def folder_dataset(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :64]
    samples = {}
    for i in range(3):
        lab = ((yy - 24) ** 2 + (xx - 20 - 10 * i) ** 2 < 150).astype(np.uint8)
        img = np.clip(np.where(lab[..., None] == 1, 210, 70) + rng.normal(0, 8, (48, 64, 3)), 0, 255).astype(np.uint8)
        lab[:, :2] = 255
        samples[f"im{i}"] = img, lab
    return write_folder_segmentation(tmp_path / "toy", samples, "0 background\n1 disc\n255 void\n")


def test_shipped_vs_tuned_table_and_figure(folder_dataset, tmp_path):
    tuned = load_model(DEFAULT_WEIGHTS)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if name.startswith("deconv") and name.endswith("weight"):
                p.mul_(1.5)
    save_weights(tuned, tmp_path / "tuned.pt")
    out = tmp_path / "out"
    argv = ["--dataset", "folder", "--data-root", str(folder_dataset), "--tuned", str(DEFAULT_WEIGHTS),
            str(tmp_path / "tuned.pt"), "--n-segments", "12", "30", "--n-boot", "200", "--figure-images", "2",
            "--no-progress", "--processes", "1"]
    assert E.main([*argv, "--figure-tuned", "1", "--out", str(out)]) == 0
    with open(out / "asa.csv") as f:
        rows = list(csv.DictReader(f))
    # per count: shipped, two tuned files, their seed mean
    assert len(rows) == 2 * 4
    same = [r for r in rows if r["method"] == "SIN (end to end, #0)"]  # the shipped file itself: no difference
    assert all(float(r["diff_vs_shipped"]) == 0 and float(r["ci_low"]) == 0 == float(r["ci_high"]) for r in same)
    with open(out / "asa_per_image.csv") as f:
        per_image = list(csv.DictReader(f))
    assert len(per_image) == 3 * 3 * 2 and all(0 < float(r["asa"]) <= 1 for r in per_image)
    readme = (out / "README.md").read_text()
    assert (out / "examples.png").is_file() and "then SIN (end to end, #1)" in readme
    assert E.main([*argv, "--figure-tuned", "2", "--out", str(tmp_path / "o2")]) == 2
    assert E.main([*argv[:4], "--tuned", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o3")]) == 2
