"""DeepLabV3-MobileNetV2 port: TF SAME padding, shapes, weight loading, and agreement with the tflite model."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from downstream.bilateral_inception.deeplab_mobilenetv2 import (
    DeepLabV3MobileNetV2,
    TFSameConv2d,
    build_deeplabv3_mnv2,
    feature_size,
    tf_same_padding,
)

SHARED_WEIGHTS = REPO_ROOT / ".." / "shared" / "weights"
PT_WEIGHTS = Path(os.environ.get("SIN_DEEPLAB_WEIGHTS", SHARED_WEIGHTS / "deeplabv3_mnv2_dm05_tflite_weights.pt"))
TFLITE = Path(os.environ.get("SIN_DEEPLAB_TFLITE", SHARED_WEIGHTS / "deeplabv3_257_mv_gpu.tflite"))


def _pt_weights() -> Path:
    if not PT_WEIGHTS.is_file():
        pytest.skip(f"DeepLab weights not available: {PT_WEIGHTS}")
    return PT_WEIGHTS


def _random_model(seed=0, **kw) -> DeepLabV3MobileNetV2:
    torch.manual_seed(seed)
    return DeepLabV3MobileNetV2(**kw).eval()


# ------------------------------------------------------------------ TF SAME padding
@pytest.mark.parametrize("size,kernel,stride,dilation,expected", [
    (257, 3, 2, 1, (1, 1)),   # odd size, stride 2: symmetric (the export size)
    (256, 3, 2, 1, (0, 1)),   # even size, stride 2: TF pads only after
    (33, 3, 1, 4, (4, 4)),    # dilated stride 1: dilation * (k - 1) / 2 each side
    (33, 1, 1, 1, (0, 0)),
    (1, 3, 2, 1, (1, 1)),     # out = 1, needs (0 * 2 + 3 - 1) = 2
    (2, 3, 2, 1, (0, 1)),
])
def test_tf_same_padding_hand_computed(size, kernel, stride, dilation, expected):
    assert tf_same_padding(size, kernel, stride, dilation) == expected


def test_tfsame_conv_even_input_matches_tf_semantics():
    # 4x4 input, 3x3 box filter, stride 2, TF SAME: out 2x2, padding (0, 1) rows and columns, so
    # output (i, j) sums input rows 2i..2i+2 and columns 2j..2j+2 with the 5th row/column = 0.
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    padded = np.zeros((5, 5), np.float32)
    padded[:4, :4] = x
    expected = np.array([[padded[2 * i:2 * i + 3, 2 * j:2 * j + 3].sum() for j in range(2)] for i in range(2)])
    conv = TFSameConv2d(1, 1, 3, stride=2, padding=0, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        out = conv(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(out, expected)
    # PyTorch's symmetric padding=1 would give a different (shifted) answer here
    sym = torch.nn.functional.conv2d(torch.from_numpy(x)[None, None], conv.weight.detach(), stride=2,
                                     padding=1)[0, 0].numpy()
    assert not np.allclose(sym, expected)


def test_tfsame_conv_rejects_explicit_padding():
    with pytest.raises(ValueError, match="padding=0"):
        TFSameConv2d(1, 1, 3, padding=1)


def test_feature_size_is_ceil_div_8():
    for n in range(1, 700):
        assert feature_size(n) == math.ceil(n / 8)


# ------------------------------------------------------------------ shapes and outputs
@pytest.mark.parametrize("h,w", [(65, 33), (64, 50), (17, 8)])
def test_output_shapes_any_size(h, w):
    model = _random_model()
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        out = model(x)
    fh, fw = math.ceil(h / 8), math.ceil(w / 8)
    assert out.logits.shape == (2, 21, h, w)
    assert out.coarse_logits.shape == (2, 21, fh, fw)
    assert out.features.shape == (2, 256, fh, fw)
    assert (out.features >= 0).all()  # concat_projection is followed by a ReLU
    # logits are the classifier applied to the features
    with torch.no_grad():
        np.testing.assert_allclose(model.classifier(out.features).numpy(), out.coarse_logits.numpy(), rtol=1e-6)


def test_logits_are_align_corners_upsampling():
    # align_corners=True with 257 = 8 * (33 - 1) + 1: pixel (8i, 8j) lies exactly on coarse sample (i, j)
    model = _random_model()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 257, 257))
    np.testing.assert_allclose(out.logits[0, :, ::8, ::8].numpy(), out.coarse_logits[0].numpy(), rtol=1e-5, atol=1e-6)
    # and the midpoint between two coarse samples is their average
    mid = out.logits[0, :, 4, 0].numpy()
    np.testing.assert_allclose(mid, 0.5 * (out.coarse_logits[0, :, 0, 0] + out.coarse_logits[0, :, 1, 0]).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_batch_items_are_independent():
    model = _random_model()
    x = torch.rand(3, 3, 40, 48)
    with torch.no_grad():
        full = model(x).logits
        one = model(x[1:2]).logits
    np.testing.assert_allclose(full[1:2].numpy(), one.numpy(), rtol=1e-4, atol=1e-5)


def test_gradients_flow_to_trunk():
    model = _random_model().train()
    out = model(torch.rand(1, 3, 33, 33))
    (out.logits.mean() + out.features.mean()).backward()
    assert model.backbone.stem[0].weight.grad is not None
    assert torch.isfinite(model.backbone.stem[0].weight.grad).all()


def test_replace_classifier():
    model = _random_model()
    feats_before = model(torch.rand(1, 3, 24, 24)).features.detach()
    new = model.replace_classifier(5)
    assert isinstance(new, torch.nn.Conv2d) and new.out_channels == 5
    out = model(torch.rand(1, 3, 24, 24))
    assert out.logits.shape == (1, 5, 24, 24) and feats_before.shape[1] == 256
    with pytest.raises(ValueError):
        model.replace_classifier(0)


# ------------------------------------------------------------------ input validation
@pytest.mark.parametrize("bad,match", [
    (torch.rand(3, 32, 32), "shape"),
    (torch.rand(1, 4, 32, 32), "shape"),
    (torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8), "float"),
    (torch.rand(1, 3, 32, 32) * 255, r"\[0, 1\]"),
    (torch.full((1, 3, 32, 32), float("nan")), r"\[0, 1\]"),
    (torch.rand(1, 3, 0, 32), "empty"),
    (np.zeros((1, 3, 8, 8), np.float32), "torch.Tensor"),
])
def test_bad_input_raises(bad, match):
    model = _random_model()
    with pytest.raises(ValueError, match=match):
        model(bad)


# ------------------------------------------------------------------ weight loading
def _to_tflite_layout(model: DeepLabV3MobileNetV2) -> dict:
    """Inverse of the loader's layout transform: own parameters -> tflite names and TF layouts."""
    own = model.state_dict()
    out = {}
    for tf_name, name in model.tflite_parameter_names().items():
        t = own[name]
        if t.ndim == 4:
            t = t.permute(1, 2, 3, 0) if "depthwise_weights" in tf_name else t.permute(0, 2, 3, 1)
        out[tf_name] = t.clone()
    return out


def test_tflite_layout_roundtrip(tmp_path):
    src = _random_model(seed=1)
    assert len(src.tflite_parameter_names()) == 110  # the 110 tensors of the export
    path = tmp_path / "w.pt"
    torch.save(_to_tflite_layout(src), path)
    dst = build_deeplabv3_mnv2(path)
    x = torch.rand(1, 3, 41, 30)
    with torch.no_grad():
        np.testing.assert_array_equal(dst(x).logits.numpy(), src(x).logits.numpy())
    # own naming (torch.save(model.state_dict())) loads too
    torch.save(src.state_dict(), tmp_path / "own.pt")
    again = build_deeplabv3_mnv2(tmp_path / "own.pt")
    with torch.no_grad():
        np.testing.assert_array_equal(again(x).logits.numpy(), src(x).logits.numpy())


def test_other_num_classes_keeps_trunk(tmp_path):
    src = _random_model(seed=2)
    torch.save(_to_tflite_layout(src), tmp_path / "w.pt")
    model = build_deeplabv3_mnv2(tmp_path / "w.pt", num_classes=7)
    assert model.classifier.weight.shape == (7, 256, 1, 1)
    x = torch.rand(1, 3, 33, 33)
    with torch.no_grad():
        np.testing.assert_array_equal(model(x).features.numpy(), src(x).features.numpy())


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        build_deeplabv3_mnv2(tmp_path / "nope.pt")


def test_corrupted_weights_file(tmp_path):
    p = tmp_path / "garbage.pt"
    p.write_bytes(os.urandom(2000))
    with pytest.raises(ValueError, match="cannot read"):
        build_deeplabv3_mnv2(p)


def test_wrong_state_dict(tmp_path):
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="missing"):
        build_deeplabv3_mnv2(tmp_path / "other.pt")
    sd = _to_tflite_layout(_random_model())
    sd["aspp0/weights"] = torch.zeros(256, 1, 1, 100)
    torch.save(sd, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match="aspp0/weights"):
        build_deeplabv3_mnv2(tmp_path / "shape.pt")
    sd = _to_tflite_layout(_random_model())
    sd["aspp0/Conv2D_bias"][0] = float("nan")
    torch.save(sd, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="finite"):
        build_deeplabv3_mnv2(tmp_path / "nan.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="state dict"):
        build_deeplabv3_mnv2(tmp_path / "list.pt")


def test_real_weights_load():
    model = build_deeplabv3_mnv2(_pt_weights())
    assert not model.training
    n = sum(p.numel() for p in model.parameters())
    state = torch.load(PT_WEIGHTS, map_location="cpu", weights_only=True)
    assert n == sum(v.numel() for v in state.values())


# ------------------------------------------------------------------ against the tflite model
@pytest.mark.data
def test_port_matches_tflite_on_real_images():
    pytest.importorskip("ai_edge_litert")
    weights = _pt_weights()
    if not TFLITE.is_file():
        pytest.skip(f"tflite model not available: {TFLITE}")
    from conftest import data_path

    from benchmarks.deeplab_port_check import TfliteDeepLab, compare_with_tflite, load_export_input

    images = [data_path("BSDS500", "images", "test", "100099.jpg"),
              data_path("saliency-mini", "images", "010003.jpg")]
    model = build_deeplabv3_mnv2(weights)
    reference = TfliteDeepLab(TFLITE, num_threads=1)
    for path in images:
        c = compare_with_tflite(model, reference, load_export_input(path))
        assert c.logits_rel_max < 1e-3, (path, c)
        assert c.features_rel_max < 1e-3, (path, c)
        assert c.argmax_agreement > 0.99, (path, c)
        # the images contain a VOC object (sheep, aeroplane): the prediction is not all background
        assert c.classes != "background 100%", (path, c)
