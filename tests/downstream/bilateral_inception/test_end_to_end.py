"""SIN trained end to end through Bilateral Inception, on a tiny synthetic set.

Checks that can fail: the BI loss reaches SIN's (decoder) parameters and not the frozen encoder,
an optimisation step changes them, the soft assignment at a low temperature is the hard map
(same grid, same resize), and evaluation runs on the hard labels of the fine-tuned weights.
"""

import numpy as np
import pytest
import torch

import downstream.bilateral_inception as bi
from conftest import write_folder_segmentation
from downstream.bilateral_inception.datasets import FolderSegmentation
from downstream.bilateral_inception.end_to_end import (
    EndToEndConfig,
    SoftSIN,
    end_to_end_loss,
    grouped_superpixel_logits,
)
from downstream.bilateral_inception.pipeline import BIPipeline
from downstream.bilateral_inception.trunks import tiny_trunk
from sin.checkpoint import load_model
from sin.inference import resize_labels
from sin.interpolation import hard_interpolate
from sin.pooling import Assignment



@pytest.fixture
def toy(tmp_path):
    """Four 40x56 images: a bright rectangle (class 1) on a textured dark background (class 0)."""
    rng = np.random.default_rng(0)
    samples = {}
    for i in range(4):
        lab = np.zeros((40, 56), np.uint8)
        lab[6 + 2 * i:30, 8 + 5 * i:40 + 3 * i] = 1
        img = (lab * 170 + 40)[..., None].repeat(3, 2) + rng.integers(0, 30, (40, 56, 3))
        samples[f"im{i}"] = img.astype(np.uint8), lab
    return write_folder_segmentation(tmp_path / "toy", samples, "0 background\n1 box\n")


def _batch(data):
    s = data.load(data.ids[0])
    image = torch.from_numpy(s.image).permute(2, 0, 1).float().unsqueeze(0) / 255
    label = torch.from_numpy(s.label.astype(np.int64)).unsqueeze(0)
    return image, label


def test_bi_loss_reaches_sin_decoder_only(toy):
    data = FolderSegmentation(toy, "train")
    trunk = tiny_trunk(data.num_classes)
    image, label = _batch(data)
    with torch.no_grad():
        feats = trunk(image).features
    head = bi.build_head(trunk, data.num_classes, bi.BITrainConfig())
    soft = SoftSIN(load_model("untrained"), train="decoder")
    cfg = EndToEndConfig(aux_weight=0.0)  # the BI loss alone must reach SIN
    loss, terms = end_to_end_loss(head, soft, feats, image, label, 12, cfg)
    loss.backward()
    decoder = [p for n, p in soft.model.named_parameters() if n.startswith(("deconv", "pred_mask"))]
    encoder = [p for n, p in soft.model.named_parameters() if n.startswith("conv")]
    assert all(p.grad is None for p in encoder)
    assert sum(float(p.grad.abs().sum()) for p in decoder if p.grad is not None) > 0
    # the last step's prediction layer decides every odd column/row at full resolution
    assert float(soft.model.pred_mask0_v.weight.grad.abs().sum()) > 0
    assert np.isfinite(terms["bi"]) and "aux" not in terms


def test_grouped_sources_equal_the_heads_path_for_hard_superpixels(toy):
    torch.manual_seed(0)  # random trunk and fc7: some draws make every soft logit 0 and the check empty
    data = FolderSegmentation(toy, "train")
    trunk = tiny_trunk(data.num_classes)
    image, _ = _batch(data)
    with torch.no_grad():
        feats = trunk(image).features
        head = bi.build_head(trunk, data.num_classes, bi.BITrainConfig()).eval()
        torch.nn.init.normal_(head.fc7.weight)  # not the identity-like start: every path matters
        labels = torch.from_numpy(np.arange(40 * 56).reshape(40, 56) // 7 % 9 + 3 * (np.arange(40)[:, None] // 13))
        hard = Assignment.from_labels(labels.long())
        want, want_mask = head.superpixel_logits(feats, image, hard)
        got, mask = grouped_superpixel_logits(head, feats, image, hard)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert torch.equal(mask, want_mask)
        # soft: the per-grid-point path and the merged one agree closely (same kernels, merged sources)
        _, soft_a, _ = SoftSIN(load_model(None))(image, 12)
        exact, _ = head.superpixel_logits(feats, image, soft_a)
        merged, _ = grouped_superpixel_logits(head, feats, image, soft_a)
        assert float(exact.abs().max()) > 0
        assert float((exact - merged).abs().max()) < 0.25 * float(exact.abs().max())


def test_soft_assignment_tends_to_the_hard_map(toy):
    data = FolderSegmentation(toy, "train")
    image, _ = _batch(data)
    model = load_model("untrained")
    soft = SoftSIN(model, temperature=1e-4)
    with torch.no_grad():
        logits, a, size = soft(image, 12)
        hard = resize_labels(hard_interpolate(logits), *image.shape[-2:])
    assert a.shape == tuple(image.shape[-2:]) and a.index.shape[1] == 4
    torch.testing.assert_close(a.weight.sum(1), torch.ones_like(a.weight[:, 0]))
    agree = (a.hard_labels() == hard.long()).float().mean()
    assert agree > 0.999, f"soft argmax agrees with the hard map on {agree:.4f} of the pixels"
    n, m = SoftSIN.grid(12, *image.shape[-2:])
    assert size == (16 * n - 15, 16 * m - 15) and a.num_superpixels == n * m


def test_end_to_end_training_step_changes_sin_and_evaluates_hard(toy, tmp_path):
    data = FolderSegmentation(toy, "train")
    pipe = BIPipeline(tmp_path / "cache", short_side=None, progress=False)
    trunk = bi.TrunkHandle(tiny_trunk(data.num_classes))
    start = load_model(None)
    cfg = bi.BITrainConfig(epochs=1, batch_size=2, lr=1e-3)
    head, provider, record, out = pipe.train_end_to_end(trunk, 12, data, data, config=cfg,
                                                        e2e=EndToEndConfig(sin_lr=1e-2, aux_weight=1.0),
                                                        runs_dir=tmp_path / "runs")
    assert record["epoch"] == 1 and (out / "sin_best.pt").is_file()
    assert np.isfinite(record["history"][0]["train_aux"]) and record["history"][0]["train_aux"] > 0
    tuned = load_model(out / "sin_best.pt")
    changed = {n for n, p in tuned.state_dict().items() if not torch.equal(p, start.state_dict()[n])}
    assert any(n.startswith("pred_mask") for n in changed)
    assert not any(n.startswith("conv") for n in changed)  # the encoder was frozen
    # the provider is the ordinary `sin` one with the fine-tuned weights (their sha256 in the fingerprint)
    assert provider.name == "sin" and provider.weights_file == out / "sin_best.pt"
    assert provider.fingerprint != bi.pipeline.get_provider("sin:precision=fp32").fingerprint
    # evaluation: hard labels, so predictions are constant on each of the provider's superpixels
    preds = {}
    cm = pipe.evaluate_bi(head, trunk, provider, 12, data, predictions=preds)
    assert 0 <= cm.mean_iou() <= 1
    for sid, p in preds.items():
        sp = provider(data.load(sid).image, 12)
        for s in np.unique(sp):
            assert len(np.unique(p[sp == s])) == 1
    # a second call resumes the finished run instead of training again
    _, _, again, out2 = pipe.train_end_to_end(trunk, 12, data, data, config=cfg,
                                              e2e=EndToEndConfig(sin_lr=1e-2, aux_weight=1.0),
                                              runs_dir=tmp_path / "runs")
    assert out2 == out and again["history"] == record["history"]


def test_bad_end_to_end_configs_are_rejected():
    with pytest.raises(ValueError, match="sin_train"):
        EndToEndConfig(sin_train="encoder")
    with pytest.raises(ValueError, match="aux_weight"):
        EndToEndConfig(aux_weight=float("nan"))
    with pytest.raises(ValueError, match="sin_lr"):
        EndToEndConfig(sin_lr=0)
