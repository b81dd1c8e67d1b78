"""Dataset loaders: generated fixtures in each on-disk format, and the real BSDS500 when present."""

import numpy as np
import pytest
import scipy.io
from conftest import data_path
from PIL import Image

from sin.datasets import (
    BSDS500,
    LabelledImageFolder,
    NYUv2,
    dataset_root,
    load_bsds500,
    load_dataset,
    merge_extra_segments,
    read_bsds500_ground_truth,
)
from sin.io import write_labels


def _write_mat(path, segmentations):
    """A BSDS500-style .mat: MATLAB cell array of structs groundTruth{t}.Segmentation/.Boundaries."""
    cell = np.empty((1, len(segmentations)), dtype=object)
    for t, seg in enumerate(segmentations):
        cell[0, t] = {"Segmentation": seg.astype(np.uint16), "Boundaries": np.zeros(seg.shape, np.uint8)}
    scipy.io.savemat(path, {"groundTruth": cell})


def _make_bsds(root, rng, ids=("12", "3"), size=(6, 8), n_gt=(2, 3), split="test"):
    (root / "images" / split).mkdir(parents=True)
    (root / "groundTruth" / split).mkdir(parents=True)
    expected = {}
    for image_id, t in zip(ids, n_gt):
        img = rng.integers(0, 256, size=size + (3,), dtype=np.uint8)
        Image.fromarray(img).save(root / "images" / split / f"{image_id}.jpg", quality=95)
        segs = [rng.integers(1, 5, size=size) for _ in range(t)]
        _write_mat(root / "groundTruth" / split / f"{image_id}.mat", segs)
        expected[image_id] = segs
    return expected


def test_bsds500_fixture_roundtrip(tmp_path, rng):
    expected = _make_bsds(tmp_path, rng)
    ds = load_bsds500(tmp_path, "test")
    assert len(ds) == 2 and ds.ids == ["12", "3"]  # sorted by file name
    for i, image_id in enumerate(ds.ids):
        sample = ds[i]
        assert sample.image_id == image_id
        assert sample.image.shape == (6, 8, 3) and sample.image.dtype == np.uint8
        assert len(sample.ground_truths) == len(expected[image_id])  # all annotations kept
        for got, want in zip(sample.ground_truths, expected[image_id]):
            assert got.dtype == np.int32
            np.testing.assert_array_equal(got, want)
    image_id, _, gts = ds[-1]  # a plain tuple too; negative index
    assert image_id == "3" and len(gts) == 3
    assert ds.index("3") == 1
    assert [s.image_id for s in ds] == ["12", "3"]
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(ValueError, match="no BSDS500"):
        ds.index("nope")


def test_bsds500_root_from_environment(tmp_path, rng, monkeypatch):
    _make_bsds(tmp_path / "BSDS500", rng)
    monkeypatch.delenv("SIN_BSDS500", raising=False)
    monkeypatch.setenv("SIN_DATA_ROOT", str(tmp_path))
    assert BSDS500().root == tmp_path / "BSDS500"
    monkeypatch.setenv("SIN_BSDS500", str(tmp_path / "BSDS500"))
    monkeypatch.setenv("SIN_DATA_ROOT", str(tmp_path / "elsewhere"))
    assert BSDS500().root == tmp_path / "BSDS500"  # the specific variable wins
    assert dataset_root("BSDS500", tmp_path / "BSDS500") == tmp_path / "BSDS500"


def test_bsds500_errors_name_the_problem(tmp_path, rng, monkeypatch):
    with pytest.raises(FileNotFoundError, match="BSDS500 dataset folder not found"):
        BSDS500(tmp_path / "absent")
    monkeypatch.delenv("SIN_BSDS500", raising=False)
    monkeypatch.setenv("SIN_DATA_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="SIN_DATA_ROOT"):
        BSDS500()
    _make_bsds(tmp_path, rng)
    with pytest.raises(ValueError, match="split"):
        BSDS500(tmp_path, "training")
    with pytest.raises(FileNotFoundError, match="images/val"):
        BSDS500(tmp_path, "val")  # folders of that split do not exist
    # an image without its .mat
    (tmp_path / "groundTruth" / "test" / "3.mat").unlink()
    with pytest.raises(FileNotFoundError, match="3.mat"):
        BSDS500(tmp_path)


def test_bsds500_malformed_mat_files(tmp_path, rng):
    _make_bsds(tmp_path, rng, ids=("1",), n_gt=(1,))
    bad = tmp_path / "groundTruth" / "test" / "1.mat"
    bad.write_bytes(b"this is not a MATLAB file")
    ds = BSDS500(tmp_path)
    with pytest.raises(ValueError, match="1.mat"):
        ds[0]
    scipy.io.savemat(bad, {"somethingElse": np.zeros(3)})
    with pytest.raises(ValueError, match="no 'groundTruth'"):
        read_bsds500_ground_truth(bad)
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = {"Boundaries": np.zeros((6, 8))}
    scipy.io.savemat(bad, {"groundTruth": cell})
    with pytest.raises(ValueError, match="Segmentation"):
        read_bsds500_ground_truth(bad)
    _write_mat(bad, [np.ones((5, 8), int)])  # wrong size for the 6 x 8 image
    with pytest.raises(ValueError, match=r"shape \(5, 8\)"):
        ds[0]
    with pytest.raises(FileNotFoundError, match="missing.mat"):
        read_bsds500_ground_truth(tmp_path / "missing.mat")


def test_merge_extra_segments_like_sin():
    # values 3 < 7 < 9 < 20 -> ranks 0..3; with max_segments = 2, ranks 2 and 3 join rank 0; +1
    seg = np.array([[3, 7, 9], [20, 7, 3]])
    np.testing.assert_array_equal(merge_extra_segments(seg, 2), [[1, 2, 1], [1, 2, 1]])
    np.testing.assert_array_equal(merge_extra_segments(seg, 50), [[1, 2, 3], [4, 2, 1]])


def test_bsds500_max_segments_option(tmp_path, rng):
    _make_bsds(tmp_path, rng, ids=("1",), n_gt=(1,))
    ds = BSDS500(tmp_path, max_segments=2)
    gt = ds[0].ground_truths[0]
    assert set(np.unique(gt)) <= {1, 2}
    with pytest.raises(ValueError, match="max_segments"):
        BSDS500(tmp_path, max_segments=0)


@pytest.mark.data
def test_real_bsds500_test_split():
    root = data_path("BSDS500")
    ds = BSDS500(root, "test")
    assert len(ds) == 200
    assert sum(len(ds.ground_truths(i)) for i in range(len(ds))) == 1063  # SIN's 1063 pairs
    _, image, gts = ds[ds.index("100007")]
    assert image.shape in ((321, 481, 3), (481, 321, 3)) and image.dtype == np.uint8
    assert len(gts) == 5 and all(g.shape == image.shape[:2] and g.min() >= 1 for g in gts)


# --------------------------------------------------------------------------------------------
# NYUv2 (superpixel-benchmark layout) and generic folders
# --------------------------------------------------------------------------------------------

def _make_nyuv2(root, rng, ids=("00000001", "00000002"), size=(5, 7), split="test"):
    (root / "images" / split).mkdir(parents=True)
    (root / "csv_groundTruth" / split).mkdir(parents=True)
    expected = {}
    for image_id in ids:
        Image.fromarray(rng.integers(0, 256, size=size + (3,), dtype=np.uint8)).save(
            root / "images" / split / f"{image_id}.png")
        gt = rng.integers(0, 40, size=size)
        np.savetxt(root / "csv_groundTruth" / split / f"{image_id}.csv", gt, fmt="%d", delimiter=",")
        expected[image_id] = gt
    return expected


def test_nyuv2_fixture(tmp_path, rng):
    expected = _make_nyuv2(tmp_path, rng)
    ds = NYUv2(tmp_path, "test")
    assert ds.ids == ["00000001", "00000002"] and len(ds) == 2
    for image_id, image, gts in ds:
        assert image.shape == (5, 7, 3) and len(gts) == 1
        np.testing.assert_array_equal(gts[0], expected[image_id])
    assert load_dataset("nyuv2", root=tmp_path).ids == ds.ids
    with pytest.raises(ValueError, match="split"):
        NYUv2(tmp_path, "val")
    (tmp_path / "csv_groundTruth" / "test" / "00000002.csv").unlink()
    with pytest.raises(FileNotFoundError, match="00000002"):
        NYUv2(tmp_path)


def test_folder_with_mixed_formats_and_several_ground_truths(tmp_path, rng):
    imgs, labs = tmp_path / "img", tmp_path / "lab"
    imgs.mkdir()
    labs.mkdir()
    size = (4, 6)
    for stem in ("a", "b", "a-1"):  # "a-1" is an image of its own, not GT 1 of "a"
        Image.fromarray(rng.integers(0, 256, size=size + (3,), dtype=np.uint8)).save(imgs / f"{stem}.png")
    gts = {k: rng.integers(0, 300, size=size) for k in ("a-0", "a-2", "a-10", "b", "a-1")}
    write_labels(gts["a-0"], labs / "a-0.png")
    write_labels(gts["a-2"], labs / "a-2.csv")
    write_labels(gts["a-10"], labs / "a-10.npy")
    write_labels(gts["b"], labs / "b.csv")
    write_labels(gts["a-1"], labs / "a-1.png")
    (labs / "notes.txt").write_text("ignored")
    ds = LabelledImageFolder(imgs, labs)
    assert ds.ids == ["a", "a-1", "b"]
    a = ds[ds.index("a")]
    assert len(a.ground_truths) == 3  # ordered by number: 0, 2, 10
    for got, key in zip(a.ground_truths, ("a-0", "a-2", "a-10")):
        np.testing.assert_array_equal(got, gts[key])
    np.testing.assert_array_equal(ds[ds.index("a-1")].ground_truths[0], gts["a-1"])
    np.testing.assert_array_equal(ds[ds.index("b")].ground_truths[0], gts["b"])
    assert [p.name for p in ds.label_paths(0)] == ["a-0.png", "a-2.csv", "a-10.npy"]


def test_folder_errors(tmp_path, rng):
    imgs, labs = tmp_path / "img", tmp_path / "lab"
    imgs.mkdir()
    labs.mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        LabelledImageFolder(imgs, labs)
    with pytest.raises(FileNotFoundError, match="label folder not found"):
        LabelledImageFolder(imgs, tmp_path / "none")
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(imgs / "x.png")
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(imgs / "y.png")
    write_labels(np.zeros((4, 6), int), labs / "x.png")
    with pytest.raises(FileNotFoundError, match=r"without a label map.*'y'"):
        LabelledImageFolder(imgs, labs)
    assert LabelledImageFolder(imgs, labs, require_labels=False).ids == ["x"]
    write_labels(np.zeros((4, 6), int), labs / "y.csv")
    write_labels(np.zeros((4, 6), int), labs / "y.npy")
    with pytest.raises(ValueError, match="two label maps"):
        LabelledImageFolder(imgs, labs)
    (labs / "y.npy").unlink()
    write_labels(np.zeros((3, 6), int), labs / "y.csv")  # wrong size
    ds = LabelledImageFolder(imgs, labs)
    with pytest.raises(ValueError, match=r"y.csv has shape \(3, 6\)"):
        ds[ds.index("y")]
    (labs / "y.csv").write_text("1,2,x\n")
    with pytest.raises(ValueError, match="y.csv"):
        ds[ds.index("y")]
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("voc")
    with pytest.raises(ValueError, match="images="):
        load_dataset("folder")
