"""Golden outputs of the trained BI stages: a stage's output changes only with its version.

Trained runs and evaluations are keyed by the explicit versions in
``downstream.bilateral_inception.pipeline.TRAIN_VERSIONS`` (and ``caches.FEATURE_VERSION``), not by
their source, so editing a comment retrains nothing. The price: a change that alters what a stage
trains must bump its version, or old runs would be reused for new code. This test trains every
stage for one epoch on a tiny seeded problem and compares a few numbers of its output with
``tests/data/bi_golden.json`` (recorded with the versions):

* same versions, outputs within ``ATOL``: pass (float sums may differ in the last bits between
  CPUs, far below the tolerance);
* same version, other output: fail -- bump the stage's version in ``TRAIN_VERSIONS`` (or
  ``FEATURE_VERSION``) and re-record with ``python tests/downstream/bilateral_inception/test_bi_golden.py --update``;
* a version was bumped: re-record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

if __name__ == "__main__":  # run as a script (--update): conftest.py is in tests/
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from conftest import TEST_DATA  # noqa: E402

DATA = TEST_DATA
GOLDEN = DATA / "bi_golden.json"
ATOL = 2e-4
UPDATE = "python tests/downstream/bilateral_inception/test_bi_golden.py --update"


def _toy(root: Path):
    from conftest import write_folder_segmentation

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :40]
    samples = {}
    for i in range(3):
        lab = np.zeros((32, 40), np.uint8)
        lab[(yy - 16) ** 2 + (xx - 12 - 8 * i) ** 2 < 60] = 1
        lab[3:9, 20 - 6 * i:34 - 6 * i] = 2
        img = np.choose(lab, [np.full((32, 40), 110), np.full((32, 40), 225), np.full((32, 40), 25)])
        img = np.clip(img[..., None] + rng.normal(0, 8, (32, 40, 3)), 0, 255).astype(np.uint8)
        samples[f"im{i}"] = img, lab
    return write_folder_segmentation(root, samples, "0 background\n1 disc\n2 bar\n")


def stage_outputs(tmp: Path) -> dict:
    """Train each stage for one epoch (tiny trunk, 3 images, grid superpixels) and return a few of
    its output numbers: the trained trunk's / head's scores on the first image."""
    from downstream.bilateral_inception import BITrainConfig, TrunkTrainConfig
    from downstream.bilateral_inception.datasets import FolderSegmentation
    from downstream.bilateral_inception.end_to_end import EndToEndConfig
    from downstream.bilateral_inception.pipeline import BIPipeline, TrunkHandle
    from downstream.bilateral_inception.trunks import tiny_trunk
    from sin.providers import LabelCache

    torch.set_num_threads(1)
    ds = FolderSegmentation(_toy(tmp / "toy"), "train")
    pipe = BIPipeline(tmp / "cache", label_cache=LabelCache(tmp / "labels"), short_side=None, progress=False)
    runs = tmp / "runs"
    base = TrunkHandle(tiny_trunk(3, seed=0))
    trunk, _, _ = pipe.fine_tune_trunk(base, ds, ds, config=TrunkTrainConfig(epochs=1, batch_size=2, short_side=None),
                                       runs_dir=runs)
    feats = pipe.features(trunk, [ds])
    out = {"trunk": trunk.trunk.classifier(feats.load_tensor("im0").float()[None]).flatten()[:12]}
    bcfg = BITrainConfig(epochs=1, batch_size=2, short_side=None)
    control, _, _ = pipe.train_classifier(trunk, ds, ds, config=bcfg, runs_dir=runs)
    out["classifier"] = control.trunk.classifier(feats.load_tensor("im0").float()[None]).flatten()[:12]
    cms = {}  # the trained head's per-image confusion matrices
    head, _, _, _ = pipe.train_bi(trunk, "grid", 12, ds, ds, config=bcfg, runs_dir=runs)
    pipe.evaluate_bi(head, trunk, "grid", 12, ds, per_image=cms)
    out["bi"] = torch.tensor(np.stack([cms[i].ravel() for i in ds.ids]).astype(np.float64).ravel()[:12])
    out["bi_theta"] = torch.cat([head.bi6.theta, head.bi7.theta]).detach()
    e2e_head, prov, _, _ = pipe.train_end_to_end(trunk, 12, ds, ds, config=bcfg, e2e=EndToEndConfig(sin_lr=1e-3),
                                                 runs_dir=runs)
    out["e2e_theta"] = torch.cat([e2e_head.bi6.theta, e2e_head.bi7.theta]).detach()
    return {k: [round(float(v), 6) for v in t.detach().flatten()] for k, t in out.items()}


def versions() -> dict:
    from downstream.bilateral_inception.caches import FEATURE_VERSION
    from downstream.bilateral_inception.pipeline import TRAIN_VERSIONS

    return {**TRAIN_VERSIONS, "features": FEATURE_VERSION}


STAGE_VERSION = {"trunk": "trunk", "classifier": "classifier", "bi": "bi", "bi_theta": "bi", "e2e_theta": "e2e"}


def test_trained_stages_keep_their_output_until_their_version_is_bumped(tmp_path):
    golden = json.loads(GOLDEN.read_text())
    now = stage_outputs(tmp_path)
    assert set(now) == set(golden["outputs"]), f"stages changed: re-record with {UPDATE}"
    for stage, values in now.items():
        version_key = STAGE_VERSION[stage]
        if versions()[version_key] != golden["versions"][version_key] or \
                versions()["features"] != golden["versions"]["features"]:
            pytest.fail(f"the version of stage {version_key!r} was bumped: re-record with {UPDATE}")
        assert np.allclose(values, golden["outputs"][stage], atol=ATOL), (
            f"stage {stage!r} trains something else at the same version {versions()[version_key]}: bump "
            f"TRAIN_VERSIONS[{version_key!r}] (downstream/bilateral_inception/pipeline.py), then {UPDATE}")


def test_the_golden_check_can_fail():
    # a perturbation the size of a real change (1e-3) is caught, float noise (1e-7) is not
    golden = json.loads(GOLDEN.read_text())["outputs"]["trunk"]
    assert not np.allclose(np.add(golden, 1e-3), golden, atol=ATOL)
    assert np.allclose(np.add(golden, 1e-7), golden, atol=ATOL)


if __name__ == "__main__" and "--update" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        import os

        os.environ["SIN_CACHE_DIR"] = d + "/sin_cache"
        GOLDEN.write_text(json.dumps({"versions": versions(), "outputs": stage_outputs(Path(d))}, indent=1) + "\n")
    print(f"recorded {GOLDEN}")
