"""The cache keys are pinned: they name label maps, feature caches and trained runs on users' disks.

A change to any of these values re-computes (and for BI, re-trains) everything a user has
cached. They may change only on purpose: a provider's or stage's ``version`` bumped because its
output changed (update the value here in the same commit and say why), never as a side effect
of moving code, editing a docstring or changing a hash function.
"""

import numpy as np
import pytest

from downstream.bilateral_inception.caches import config_fingerprint, feature_cache_key
from downstream.bilateral_inception.pipeline import BIPipeline
from sin.providers import LabelCache, get_provider

PINNED_PROVIDERS = {
    "slic": "4e90fcb7eb986ed9",
    "snic": "61ee87267c906203",
    "grid": "a115f7e88cab1b11",
    "ers": "be57d4bd4436ec35",
    "fh": "ec8b5c61744fc0ce",
    "sin:precision=fp32": "1a3fbf788159f8e2",
    # the weights tag keeps the key (and the folder name sin_msrc21-...) it had as the provider sin_msrc21
    "sin:weights=msrc21,precision=fp32": "1eed79e728d7e8f4",
}


@pytest.mark.parametrize("spec", sorted(PINNED_PROVIDERS))
def test_builtin_provider_fingerprints_are_pinned(spec):
    assert get_provider(spec).fingerprint == PINNED_PROVIDERS[spec]


def test_weights_tag_folder_is_pinned():
    assert get_provider("sin:weights=msrc21,precision=fp32").tag == "sin_msrc21-1eed79e728d7"


def test_label_cache_layout_is_pinned():
    img = (np.arange(12 * 16 * 3).reshape(12, 16, 3) % 251).astype(np.uint8)
    path = LabelCache("/r").path(get_provider("slic"), 600, img)
    assert path.as_posix() == "/r/slic-4e90fcb7eb98/k600/8f899b6ad4ad1ff9e3a5e37ef3a70a82.npz"


def test_bi_keys_are_pinned():
    assert config_fingerprint({"a": [1, 2], "b": "x"}) == "816e08fabbd4"
    assert BIPipeline("/c").run_dir("/runs", "bi_slic", "abc", {"epochs": 8}, stage="bi").name == "bi_slic_9b0030428900"
    assert feature_cache_key("features", "deeplabv3_mobilenetv2", "0123", 361) == \
        "features_deeplabv3_mobilenetv2_4abf92eabbe6"


def test_bi_config_keys_do_not_move_when_fields_are_added():
    # runs trained before `bi7_scales` existed keep their folder; a set value names a new one
    from dataclasses import asdict

    from downstream.bilateral_inception.bi_training import BITrainConfig, config_key

    default = BITrainConfig()
    old = {k: v for k, v in asdict(default).items() if k != "bi7_scales"}
    assert config_key(default) == old
    assert config_key(BITrainConfig(bi7_scales=(0.25, 1, 4)))["bi7_scales"] == (0.25, 1.0, 4.0)
    with pytest.raises(ValueError, match="bi7_scales"):
        BITrainConfig(bi7_scales=(1, 0, 1))
