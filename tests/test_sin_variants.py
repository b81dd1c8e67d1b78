"""SIN weights stored as a delta on the shipped weights (named variants such as fine-tuned SIN)."""

import numpy as np
import pytest
import torch

import sin
from sin.checkpoint import atomic_torch_save, load_model
from sin.providers.registry import file_sha256
from sin.providers.sin_variants import load_weights_delta, merged_weights_file, save_weights_delta


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIN_CACHE_DIR", str(tmp_path / "sin_cache"))


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


def test_named_variant_is_a_provider_with_a_recorded_sha256(tmp_path):
    import pickle

    from sin.providers import registry
    from sin.providers.sin_variants import register_sin_variant

    save_weights_delta(_tuned(), tmp_path / "delta.pt")
    sha = file_sha256(tmp_path / "delta.pt")
    try:
        register_sin_variant("sin_test_variant", str(tmp_path / "delta.pt"), sha, source="a test",
                             description="test variant")
        p = sin.get_provider("sin_test_variant:precision=fp32")
        image = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
        full = merged_weights_file(tmp_path / "delta.pt")
        np.testing.assert_array_equal(p(image, 30), sin.superpixels(image, 30, weights=full, precision="fp32"))
        assert p.weights_file == tmp_path / "delta.pt" and sha in registry.get_provider("sin_test_variant").spec.weights.source
        q = pickle.loads(pickle.dumps(p))
        np.testing.assert_array_equal(q(image, 30), p(image, 30))
        # a file that is not the recorded one is refused when the variant is asked for by name
        register_sin_variant("sin_test_variant", str(tmp_path / "delta.pt"), "f" * 64, source="a test",
                             description="test variant", overwrite=True)
        with pytest.raises(ValueError, match="corrupted or replaced"):
            sin.get_provider("sin_test_variant:precision=fp32")(image, 30)
    finally:
        registry._REGISTRY.pop("sin_test_variant", None)


def test_shipped_variants_are_their_recorded_files():
    from sin.checkpoint import DEFAULT_WEIGHTS
    from sin.providers.sin_variants import SHIPPED_VARIANTS

    assert SHIPPED_VARIANTS
    image = (np.random.default_rng(3).random((48, 64, 3)) * 255).astype(np.uint8)
    base = load_model(DEFAULT_WEIGHTS).state_dict()
    for name, (filename, sha, _, _) in SHIPPED_VARIANTS.items():
        path = DEFAULT_WEIGHTS.parent / filename
        assert path.is_file() and file_sha256(path) == sha, f"{filename}: update SHIPPED_VARIANTS after regenerating"
        assert name in sin.available_providers()
        delta = load_weights_delta(path, expected_sha256=sha)
        assert delta["base_sha256"] == file_sha256(DEFAULT_WEIGHTS)
        assert any(not torch.equal(v, base[k]) for k, v in delta["state_dict"].items())  # it is fine-tuned
        labels = sin.get_provider(name, precision="fp32")(image, 40)
        np.testing.assert_array_equal(labels, sin.superpixels(image, 40, weights=merged_weights_file(path),
                                                              precision="fp32"))
