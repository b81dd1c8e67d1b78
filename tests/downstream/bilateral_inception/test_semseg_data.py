"""Semantic-segmentation loaders (VOC / SBD / train_aug / folders, on generated fixtures in the official
formats) and metrics (confusion matrix, IoU, palette PNGs)."""

import numpy as np
import pytest
import scipy.sparse
from conftest import data_path
from PIL import Image
from scipy.io import savemat

from downstream.bilateral_inception import datasets as D
from downstream.bilateral_inception.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    iou_per_class,
    voc_colormap,
    write_palette_png,
)


def _jpg(path, h, w, seed):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=95)


def _palette_png(path, label):
    """A VOC-style annotation: mode P, VOC colour map palette, pixel values = class indices."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(label.astype(np.uint8))  # mode L; putpalette makes it P
    im.putpalette(voc_colormap().reshape(-1).tolist())
    assert im.mode == "P"
    im.save(path)


def _label(h, w, seed, void_border=True):
    rng = np.random.default_rng(seed)
    lab = np.zeros((h, w), np.uint8)
    c = int(rng.integers(1, 21))
    lab[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = c
    if void_border:
        lab[h // 4 - 1, w // 4: 3 * w // 4] = 255
    return lab


@pytest.fixture
def voc_root(tmp_path):
    """VOCdevkit/VOC2012 with 4 images: train a, b; val c, d."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    labels = {}
    for i, sid in enumerate(["2007_000001", "2007_000002", "2008_000003", "2008_000004"]):
        _jpg(root / "JPEGImages" / f"{sid}.jpg", 20, 30, i)
        labels[sid] = _label(20, 30, i)
        _palette_png(root / "SegmentationClass" / f"{sid}.png", labels[sid])
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000001\n2007_000002\n")
    (sets / "val.txt").write_text("2008_000003\n2008_000004\n")
    (sets / "trainval.txt").write_text("2007_000001\n2007_000002\n2008_000003\n2008_000004\n")
    (sets / "test.txt").write_text("2007_000001\n")
    return tmp_path, labels


@pytest.fixture
def sbd_root(tmp_path):
    """benchmark_RELEASE/dataset: cls/*.mat (struct GTcls) for 5 ids; train.txt 3 of them, val.txt 2."""
    root = tmp_path / "benchmark_RELEASE" / "dataset"
    labels = {}
    ids = ["2009_000010", "2009_000011", "2008_000003", "2010_000012", "2007_000001"]
    for i, sid in enumerate(ids):
        _jpg(root / "img" / f"{sid}.jpg", 20, 30, 100 + i)
        lab = _label(20, 30, 100 + i, void_border=False)
        labels[sid] = lab
        (root / "cls").mkdir(parents=True, exist_ok=True)
        boundaries = np.empty((20, 1), dtype=object)  # a cell of sparse boundary maps, one per class
        for c in range(20):
            boundaries[c, 0] = scipy.sparse.csc_matrix((20, 30), dtype=np.uint8)
        savemat(root / "cls" / f"{sid}.mat", {"GTcls": {
            "Segmentation": lab, "Boundaries": boundaries,
            "CategoriesPresent": np.unique(lab[lab > 0]).astype(np.uint8)}})
    (root / "train.txt").write_text("2009_000010\n2009_000011\n2008_000003\n")
    (root / "val.txt").write_text("2010_000012\n2007_000001\n")
    return tmp_path / "benchmark_RELEASE", labels


def test_voc_loader_reads_official_layout(voc_root):
    root, labels = voc_root
    for given in (root, root / "VOCdevkit", root / "VOCdevkit" / "VOC2012"):
        ds = D.VOCSegmentation(given, "train")
        assert ds.ids == ["2007_000001", "2007_000002"]
    assert ds.classes[0] == "background" and ds.num_classes == 21
    s = ds[1]
    assert s.image.shape == (20, 30, 3) and s.image.dtype == np.uint8
    np.testing.assert_array_equal(s.label, labels["2007_000002"])
    assert 255 in s.label  # the void border survives as index 255
    assert len(D.VOCSegmentation(root, "trainval")) == 4
    test = D.VOCSegmentation(root, "test")[0]
    assert (test.label == 255).all()


def test_voc_errors(voc_root, tmp_path):
    root, _ = voc_root
    with pytest.raises(FileNotFoundError, match="VOC"):
        D.VOCSegmentation(tmp_path / "nowhere", "val")
    with pytest.raises(FileNotFoundError, match="split list"):
        D.VOCSegmentation(root, tmp_path / "missing.txt")
    # an RGB-coloured annotation cannot be decoded without the palette: clear error
    lab_path = root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000001.png"
    Image.new("RGB", (30, 20)).save(lab_path)
    with pytest.raises(ValueError, match="palette"):
        D.VOCSegmentation(root, "train")[0]
    # a label value that is not a class index
    _palette_png(lab_path, np.full((20, 30), 40, np.uint8))
    with pytest.raises(ValueError, match="class indices"):
        D.VOCSegmentation(root, "train")[0]


def test_reduced_val_list_is_shipped():
    ids = D.read_id_list(D.REDUCED_VAL_LIST)
    assert len(ids) == 346 == len(set(ids))
    assert all(len(i) == 11 and i[4] == "_" and i[:4].isdigit() for i in ids)


def test_sbd_loader_reads_gtcls_mat(sbd_root, tmp_path):
    root, labels = sbd_root
    # the release's nesting is found from any of its parents; elsewhere the error names the layout
    release = root.parent  # the fixture returns benchmark_RELEASE/
    for where in (release, release / "benchmark_RELEASE", release / "benchmark_RELEASE" / "dataset"):
        assert D.SBDSegmentation(where, "train").root == release / "benchmark_RELEASE" / "dataset"
    with pytest.raises(FileNotFoundError, match=r"no SBD at .*expected cls/ and img/"):
        D.SBDSegmentation(tmp_path / "nowhere", "train")
    ds = D.SBDSegmentation(root, "train")
    assert ds.ids == ["2009_000010", "2009_000011", "2008_000003"]
    s = ds[0]
    np.testing.assert_array_equal(s.label, labels["2009_000010"])
    assert s.image.shape == (20, 30, 3)
    bad = root / "dataset" / "cls" / "broken.mat"
    savemat(bad, {"other": np.zeros(3)})
    with pytest.raises(ValueError, match="GTcls"):
        D.read_sbd_mat(bad)
    with pytest.raises(FileNotFoundError):
        D.read_sbd_mat(root / "dataset" / "cls" / "nope.mat")


def test_train_aug_is_sbd_plus_voc_train_minus_voc_val(voc_root, sbd_root):
    (voc, voc_labels), (sbd, sbd_labels) = voc_root, sbd_root
    aug = D.voc_train_aug(voc, sbd)
    # SBD train+val = {..10, ..11, 2008_000003, ..12, 2007_000001}; VOC train = {2007_000001, 2007_000002}
    # minus VOC val {2008_000003, 2008_000004}
    assert sorted(aug.ids) == ["2007_000001", "2007_000002", "2009_000010", "2009_000011", "2010_000012"]
    # 2007_000001 is in VOC train and SBD val: VOC's finer annotation wins
    np.testing.assert_array_equal(aug.load("2007_000001").label, voc_labels["2007_000001"])
    np.testing.assert_array_equal(aug.load("2010_000012").label, sbd_labels["2010_000012"])


def test_folder_dataset(tmp_path):
    root = tmp_path / "toy"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "splits").mkdir()
    (root / "classes.txt").write_text("0 sky\n1 grass\n255 void\n")
    for i in range(2):
        Image.fromarray(np.full((8, 9, 3), 40 * i, np.uint8)).save(root / "images" / f"x{i}.png")
        Image.fromarray(np.array([[0, 1, 255] * 3] * 8, np.uint8)).save(root / "labels" / f"x{i}.png")
    (root / "splits" / "train.txt").write_text("x0\nx1\n")
    ds = D.FolderSegmentation(root, "train")
    assert ds.classes == ("sky", "grass") and len(ds) == 2
    assert set(np.unique(ds[1].label)) == {0, 1, 255}
    (root / "splits" / "dup.txt").write_text("x0\nx0\n")
    with pytest.raises(ValueError, match="duplicate"):
        D.FolderSegmentation(root, "dup")
    with pytest.raises(FileNotFoundError):
        D.FolderSegmentation(tmp_path / "missing", "train")


@pytest.mark.data
def test_msrc21_real_splits():
    root = data_path("MSRC21")
    sizes = {s: len(D.msrc21(s, root)) for s in ("train", "val", "test")}
    assert sizes == {"train": 276, "val": 58, "test": 257}
    ds = D.msrc21("val", root)
    assert ds.num_classes == 21 and ds.classes[0] == "building"
    s = ds[0]
    assert s.label.shape == s.image.shape[:2]


# ------------------------------------------------------------------------------------- metrics
def test_confusion_and_iou_hand_computed():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = confusion_matrix(pred, gt, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    # class 0: TP 1, FP 1 (a 2 predicted 0), FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 1, FN 1 -> 1/2
    np.testing.assert_allclose(iou_per_class(cm), [1 / 3, 2 / 3, 1 / 2])
    acc = ConfusionMatrix(3).update(pred, gt).update(pred, gt)
    assert acc.mean_iou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert acc.pixel_accuracy() == pytest.approx(4 / 6)


def test_iou_absent_class_is_nan_and_excluded():
    cm = ConfusionMatrix(4).update(np.array([0, 1, 1]), np.array([0, 1, 0]))
    iou = cm.iou()
    assert np.isnan(iou[2]) and np.isnan(iou[3])
    assert cm.mean_iou() == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert cm.summary(["a", "b", "c", "d"])["iou"]["c"] is None


def test_metric_errors():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), 3)
    with pytest.raises(ValueError, match="prediction"):
        confusion_matrix(np.full((2, 2), 3), np.zeros((2, 2), int), 3)
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 2), int), 3)
    with pytest.raises(ValueError, match="ground truth"):
        confusion_matrix(np.zeros((2, 2), int), np.full((2, 2), 7), 3)


def test_voc_colormap_and_palette_png(tmp_path):
    cmap = voc_colormap()
    # the devkit's colours: background black, aeroplane (128,0,0), bicycle (0,128,0), person (192,128,128)
    assert tuple(cmap[0]) == (0, 0, 0) and tuple(cmap[1]) == (128, 0, 0) and tuple(cmap[2]) == (0, 128, 0)
    assert tuple(cmap[15]) == (192, 128, 128) and tuple(cmap[255]) == (224, 224, 192)
    lab = np.array([[0, 1, 15], [255, 20, 3]], np.uint8)
    path = write_palette_png(lab, tmp_path / "p" / "x.png")
    with Image.open(path) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.array(im), lab)
        np.testing.assert_array_equal(np.array(im.convert("RGB")), cmap[lab])
    np.testing.assert_array_equal(D.read_label_png(path), lab)
    with pytest.raises(ValueError):
        write_palette_png(np.full((2, 2), 300), tmp_path / "bad.png")
