"""SIN weights stored as a delta on the shipped weights (named variants such as fine-tuned SIN)."""

import numpy as np
import pytest
import torch

import sin
from sin.checkpoint import atomic_torch_save, load_model
from sin.fingerprint import file_sha256
from sin.providers.weights_delta import load_weights_delta, merged_weights_file, save_weights_delta


def _tuned():
    model = load_model(None)
    with torch.no_grad():
        model.pred_mask0_v.weight.mul_(-1.0)  # flips the finest vertical decisions: other superpixels
        model.deconv1_h[0].weight.add_(0.01)
    return model


def test_delta_round_trip_rebuilds_the_tuned_network(tmp_path):
    tuned = _tuned()
    save_weights_delta(tuned, tmp_path / "delta.pt", meta={"seed": 0})
    d = load_weights_delta(tmp_path / "delta.pt")
    assert all(k.startswith(("deconv", "pred_mask")) for k in d["state_dict"])
    assert d["base_sha256"] == file_sha256(sin.checkpoint.DEFAULT_WEIGHTS)
    full = merged_weights_file(tmp_path / "delta.pt")
    rebuilt = load_model(full)
    for k, v in tuned.state_dict().items():
        assert torch.equal(v, rebuilt.state_dict()[k]), k
    assert merged_weights_file(tmp_path / "delta.pt") == full  # built once
    # the sin provider runs it, and it is another network than the shipped one
    image = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    p = sin.get_provider("sin").with_params(weights=str(full), precision="fp32")
    want = sin.SINPredictor(weights={k: v for k, v in tuned.state_dict().items()}, precision="fp32")(image, 40)
    np.testing.assert_array_equal(p(image, 40), want)
    assert not np.array_equal(p(image, 40), sin.superpixels(image, 40, precision="fp32"))


def test_delta_refuses_what_it_cannot_represent_or_verify(tmp_path):
    model = _tuned()
    with torch.no_grad():
        model.conv0a[0].weight.add_(1.0)
    with pytest.raises(ValueError, match="outside"):
        save_weights_delta(model, tmp_path / "delta.pt")
    save_weights_delta(_tuned(), tmp_path / "delta.pt")
    with pytest.raises(ValueError, match="corrupted or replaced"):
        merged_weights_file(tmp_path / "delta.pt", expected_sha256="0" * 64)
    with pytest.raises(FileNotFoundError):
        merged_weights_file(tmp_path / "missing.pt")
    atomic_torch_save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a SIN weights delta"):
        load_weights_delta(tmp_path / "other.pt")
    # a delta made for other base weights is refused, not silently applied
    other_base = tmp_path / "base.pt"
    sin.checkpoint.save_weights(load_model("untrained"), other_base)
    with pytest.raises(ValueError, match="applies to weights"):
        merged_weights_file(tmp_path / "delta.pt", base=other_base)


def test_weights_tag_is_one_line_with_a_recorded_sha256(tmp_path):
    import pickle

    from sin.providers.sin_provider import SIN_WEIGHTS, merged_delta

    save_weights_delta(_tuned(), tmp_path / "delta.pt")
    sha = file_sha256(tmp_path / "delta.pt")
    try:
        SIN_WEIGHTS.add_tag("testtag", "delta.pt", sha, folder=tmp_path, prepare=merged_delta, source="a test")
        p = sin.get_provider("sin:weights=testtag,precision=fp32")
        assert p.name == "sin" and p.weights_tag.name == "testtag" and "testtag" not in sin.available_providers()
        image = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
        full = merged_weights_file(tmp_path / "delta.pt")
        np.testing.assert_array_equal(p(image, 30), sin.superpixels(image, 30, weights=full, precision="fp32"))
        assert p.weights_file == tmp_path / "delta.pt" and p.weights_sha256() == sha
        assert p.tag.startswith("sin_testtag-") and p.fingerprint != sin.get_provider("sin:precision=fp32").fingerprint
        # the delta given as a path runs the same network (keyed as sin, by the delta's sha256)
        q = sin.get_provider("sin", weights=str(tmp_path / "delta.pt"), precision="fp32")
        np.testing.assert_array_equal(q(image, 30), p(image, 30))
        r = pickle.loads(pickle.dumps(p))
        assert r == p and r.fingerprint == p.fingerprint
        np.testing.assert_array_equal(r(image, 30), p(image, 30))
        # other bytes than the recorded ones are refused on use
        SIN_WEIGHTS.add_tag("testtag", "delta.pt", "f" * 64, folder=tmp_path, prepare=merged_delta)
        with pytest.raises(ValueError, match="corrupted or replaced"):
            sin.get_provider("sin:weights=testtag,precision=fp32")(image, 30)
        with pytest.raises(ValueError, match="sha256 must be 64"):
            SIN_WEIGHTS.add_tag("testtag2", "delta.pt", "abc")
    finally:
        SIN_WEIGHTS.tags.pop("testtag", None)


def test_merged_file_is_checked_on_every_use(tmp_path):
    save_weights_delta(_tuned(), tmp_path / "delta.pt")
    full = merged_weights_file(tmp_path / "delta.pt")
    good = full.read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF  # damaged in the cache (same size)
    full.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="do not match their recorded sha256"):
        again = merged_weights_file(tmp_path / "delta.pt")
    assert again == full and full.read_bytes() != bytes(data)
    rebuilt = load_model(again).state_dict()
    for k, v in _tuned().state_dict().items():
        assert torch.equal(v, rebuilt[k]), k


def test_shipped_tags_are_their_recorded_files():
    import pickle

    from sin.checkpoint import DEFAULT_WEIGHTS
    from sin.providers.sin_provider import SIN_WEIGHTS

    assert "msrc21" in SIN_WEIGHTS.tags and "sin_msrc21" not in sin.available_providers()
    image = (np.random.default_rng(3).random((48, 64, 3)) * 255).astype(np.uint8)
    base = load_model(DEFAULT_WEIGHTS).state_dict()
    for name, tag in SIN_WEIGHTS.tags.items():
        path = tag.file()
        assert path.is_file() and file_sha256(path) == tag.sha256, f"{path.name}: update its tag after regenerating"
        p = sin.get_provider(f"sin:weights={name}", precision="fp32")
        assert pickle.loads(pickle.dumps(p)) == p
        labels = p(image, 40)
        if tag.prepare is None:  # a full weights file (the small SIN): the provider runs exactly that file
            np.testing.assert_array_equal(labels, sin.superpixels(image, 40, weights=path, precision="fp32"))
            continue
        delta = load_weights_delta(path, expected_sha256=tag.sha256)
        assert delta["base_sha256"] == file_sha256(DEFAULT_WEIGHTS)
        assert any(not torch.equal(v, base[k]) for k, v in delta["state_dict"].items())  # it is fine-tuned
        np.testing.assert_array_equal(labels, sin.superpixels(image, 40, weights=merged_weights_file(path),
                                                              precision="fp32"))
    # the former provider name still resolves, to the tag, and says so
    with pytest.warns(DeprecationWarning, match="sin:weights=msrc21"):
        old = sin.get_provider("sin_msrc21:precision=fp32")
    assert old == sin.get_provider("sin:weights=msrc21,precision=fp32")
    assert old.spec_string() == "sin:weights=msrc21,precision=fp32"
