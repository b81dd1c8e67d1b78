import pytest
import torch

from sin.checkpoint import load_model, save_weights
from sin.fast_model import FastSIN
from sin.geometry import level_shapes, network_size
from sin.interpolation import logits_to_decisions
from sin.model import STEPS, SINNet, convert_original_state_dict, fuse_for_inference


def randomised_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)
            mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            mod.bias.data.copy_(torch.rand(c, generator=g) * 0.2 - 0.1)
    return model.eval()


@pytest.mark.parametrize("n,m", [(1, 1), (2, 3), (4, 2)])
def test_output_shapes(n, m):
    model = SINNet().eval()
    logits = model(torch.zeros(2, 3, *network_size(n, m)))
    shapes = level_shapes(n, m)
    assert [tuple(lg.shape) for lg in logits] == [(2, 2) + shapes[s] for s in STEPS]
    assert shapes["0v"] == network_size(n, m)


def test_parameter_shapes_match_original_layout():
    sd = SINNet().state_dict()
    assert sd["conv0a.0.weight"].shape == (16, 3, 3, 3)
    assert sd["conv4b.1.running_var"].shape == (256,)
    assert sd["deconv3_h.0.weight"].shape == (256, 128, 3, 3)  # ConvTranspose: (cin, cout, k, k)
    assert sd["deconv0_v.0.weight"].shape == (16, 16, 3, 3)
    assert sd["pred_mask0_v.weight"].shape == (2, 16, 3, 3)
    n_params = sum(p.numel() for p in SINNet().parameters())
    assert 1_500_000 < n_params < 2_500_000


def test_original_checkpoint_key_mapping(tmp_path):
    """A checkpoint in the original layout (DataParallel prefix + dead modules) loads exactly."""
    src = randomised_bn(SINNet())
    original = {f"module.{k}": v for k, v in src.state_dict().items()}
    original["module.deconv3.0.weight"] = torch.zeros(256, 128, 4, 4)  # dead modules
    original["module.conv2_1.0.weight"] = torch.zeros(64, 128, 3, 3)
    original["module.pred_mask0.weight"] = torch.zeros(9, 16, 3, 3)
    converted = convert_original_state_dict({"state_dict": original, "epoch": 3})
    assert set(converted) == set(src.state_dict())
    path = tmp_path / "orig.tar"
    torch.save({"state_dict": original, "arch": "SpixelNet1l_bn"}, path)
    loaded = load_model(path)
    x = torch.randn(1, 3, 33, 49)
    for a, b in zip(src(x), loaded(x)):
        assert torch.equal(a, b)


def test_fused_model_matches_eval_model():
    model = randomised_bn(SINNet())
    x = torch.randn(1, 3, 49, 65)
    with torch.no_grad():
        for a, b in zip(model(x), fuse_for_inference(model)(x)):
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("n,m", [(1, 4), (3, 2), (5, 7)])
def test_fast_model_decisions_match_plain_network(n, m):
    model = randomised_bn(SINNet(), seed=n * 10 + m)
    fast = FastSIN.from_model(model)
    x = torch.randn(2, 3, *network_size(n, m), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
        decisions = fast(x)
    for step, lg, dec in zip(STEPS, logits, decisions):
        ref = logits_to_decisions(lg, step[1])
        assert dec.shape == ref.shape
        margin = (lg[:, 1] - lg[:, 0])
        margin = margin[:, :, 1::2] if step[1] == "h" else margin[:, 1::2, :]
        # identical except where the two logits tie to float rounding
        assert torch.all((dec == ref) | (margin.abs() < 1e-4))


def test_save_and_load_roundtrip(tmp_path):
    model = randomised_bn(SINNet(), seed=4)
    path = tmp_path / "w.pt"
    save_weights(model, path, meta={"iterations": 7})
    loaded = load_model(path)
    assert loaded.trained
    x = torch.randn(1, 3, 17, 33)
    assert all(torch.equal(a, b) for a, b in zip(model(x), loaded(x)))
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary file


def test_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x00\x01 definitely not a checkpoint" * 10)
    with pytest.raises(ValueError, match="corrupted"):
        load_model(bad)
    truncated = tmp_path / "truncated.pt"
    save_weights(SINNet(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with pytest.raises(ValueError, match="corrupted"):
        load_model(truncated)
    sd = SINNet().state_dict()
    sd["pred_mask0_v.weight"] = torch.zeros(2, 8, 3, 3)
    with pytest.raises(ValueError, match="shapes"):
        load_model(sd)
    sd = SINNet().state_dict()
    del sd["conv1a.0.weight"]
    with pytest.raises(ValueError, match="missing"):
        load_model(sd)
    sd = SINNet().state_dict()
    sd["conv1a.0.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        load_model(sd)
    with pytest.raises(ValueError, match="dict"):
        p = tmp_path / "list.pt"
        torch.save([1, 2], p)
        load_model(p)
