"""BSDS500 (Arbelaez et al., TPAMI 2011) in its original layout, all annotations kept.

Layout::

    <root>/images/{train,val,test}/<id>.jpg
    <root>/groundTruth/{train,val,test}/<id>.mat   # MATLAB cell array groundTruth{t}.Segmentation

The test split has 200 images with 4-8 annotations each, 1063 (image, annotation) pairs in
total: the pairs over which SIN (and SpixelFCN) average their metrics.

``root`` defaults to ``$SIN_BSDS500``, else ``$SIN_DATA_ROOT/BSDS500``, else
``<repo>/../shared/data/BSDS500``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from ..io import read_image
from .folder import Sample, checked_index, dataset_root

__all__ = ["BSDS500", "SPLITS", "load_bsds500", "merge_extra_segments", "read_bsds500_ground_truth"]

SPLITS = ("train", "val", "test")


def read_bsds500_ground_truth(path) -> list[np.ndarray]:
    """All segmentations of one BSDS500 ``.mat`` file, as ``(H, W)`` int32 arrays.

    Reads the MATLAB cell array ``groundTruth{t}.Segmentation`` (segment ids as stored,
    1-based in BSDS500).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is not a readable MATLAB file or lacks ``groundTruth{t}.Segmentation``
        (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BSDS500 ground-truth file not found: {path}")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises several types for corrupted files
        raise ValueError(f"cannot read BSDS500 ground truth {path}: {exc}") from None
    if "groundTruth" not in mat:
        raise ValueError(f"{path} has no 'groundTruth' variable (found {sorted(k for k in mat if not k.startswith('__'))})")
    cell = mat["groundTruth"]
    if not isinstance(cell, np.ndarray) or cell.dtype != object or cell.size == 0:
        raise ValueError(f"{path}: 'groundTruth' is not a non-empty cell array")
    out = []
    for t, entry in enumerate(cell.ravel()):
        try:
            seg = entry["Segmentation"]
            while isinstance(seg, np.ndarray) and seg.dtype == object:  # struct/cell wrappers
                seg = seg.ravel()[0]
            seg = np.asarray(seg)
        except (KeyError, ValueError, IndexError, TypeError):
            raise ValueError(f"{path}: groundTruth{{{t + 1}}} has no 'Segmentation' field") from None
        if seg.ndim != 2 or seg.size == 0 or not np.issubdtype(seg.dtype, np.number):
            raise ValueError(f"{path}: groundTruth{{{t + 1}}}.Segmentation is not a 2-D numeric map "
                             f"(shape {seg.shape}, dtype {seg.dtype})")
        if np.issubdtype(seg.dtype, np.floating) and not np.all(seg == np.round(seg)):
            raise ValueError(f"{path}: groundTruth{{{t + 1}}}.Segmentation has non-integer values")
        if seg.min() < 0:
            raise ValueError(f"{path}: groundTruth{{{t + 1}}}.Segmentation has negative values")
        out.append(seg.astype(np.int32))
    return out


def merge_extra_segments(segmentation: np.ndarray, max_segments: int = 50) -> np.ndarray:
    """SIN's / SpixelFCN's test GT conversion (``pre_process_bsd500_ori_sz.py``).

    Segment values are compacted to ``0..k-1`` in ascending order; segments beyond the first
    ``max_segments`` are merged into segment 0 (their one-hot vector is all zeros, and argmax
    picks 0); the result is made 1-based. 85 of the 1063 BSDS500 test annotations have more
    than 50 segments and are changed by this.
    """
    seg = np.asarray(segmentation)
    _, inv = np.unique(seg, return_inverse=True)
    inv = inv.reshape(seg.shape)
    inv[inv >= max_segments] = 0
    return (inv + 1).astype(np.int32)


class BSDS500:
    """The BSDS500 images of one split with all their ground-truth segmentations.

    Parameters
    ----------
    root : path, optional
        Dataset folder (see the module notes for the default).
    split : {"train", "val", "test"}
    max_segments : int, optional
        ``None`` (default): ground truths as stored. An int (SIN used 50): apply
        :func:`merge_extra_segments`, to reproduce SIN's / SpixelFCN's evaluation exactly.

    Items are :class:`~sin.datasets.folder.Sample` tuples ``(image_id, image, ground_truths)``:
    uint8 RGB image and a list of int32 label maps of the same size.

    Raises
    ------
    FileNotFoundError
        Missing root, split folders, images, or a ``.mat`` file for some image.
    ValueError
        Unknown split; when an item is read: malformed ``.mat`` file, or a ground truth whose
        size differs from the image (the messages name the file).
    """

    def __init__(self, root=None, split: str = "test", *, max_segments: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"BSDS500 split must be one of {SPLITS}, got {split!r}")
        if max_segments is not None and (not isinstance(max_segments, (int, np.integer)) or max_segments < 1):
            raise ValueError(f"max_segments must be a positive int or None, got {max_segments!r}")
        self.root = dataset_root("BSDS500", root, env_var="SIN_BSDS500")
        self.split = split
        self.max_segments = max_segments
        self.images_dir = self.root / "images" / split
        self.gt_dir = self.root / "groundTruth" / split
        for d in (self.images_dir, self.gt_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"BSDS500 folder not found: {d}")
        images = sorted(self.images_dir.glob("*.jpg"))
        if not images:
            raise FileNotFoundError(f"no .jpg images in {self.images_dir}")
        missing = [p.stem for p in images if not (self.gt_dir / f"{p.stem}.mat").is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} BSDS500 image(s) without ground truth in {self.gt_dir}: "
                                    f"{[m + '.mat' for m in missing[:5]]}")
        self._images = images

    @property
    def ids(self) -> list[str]:
        """Image ids (file stems), sorted by file name."""
        return [p.stem for p in self._images]

    def __len__(self) -> int:
        return len(self._images)

    def image_path(self, index: int) -> Path:
        return self._images[self._index(index)]

    def ground_truth_path(self, index: int) -> Path:
        return self.gt_dir / f"{self._images[self._index(index)].stem}.mat"

    def _index(self, index) -> int:
        return checked_index(index, len(self._images))

    def index(self, image_id: str) -> int:
        """Position of ``image_id`` (``ValueError`` if absent)."""
        try:
            return self.ids.index(str(image_id))
        except ValueError:
            raise ValueError(f"no BSDS500 {self.split} image {image_id!r} in {self.images_dir}") from None

    def ground_truths(self, index: int) -> list[np.ndarray]:
        """The ground-truth segmentations of item ``index`` (no image decoding)."""
        path = self.ground_truth_path(index)
        gts = read_bsds500_ground_truth(path)
        if self.max_segments is not None:
            gts = [merge_extra_segments(g, self.max_segments) for g in gts]
        return gts

    def __getitem__(self, index: int) -> Sample:
        i = self._index(index)
        path = self._images[i]
        image = read_image(path)
        gts = self.ground_truths(i)
        for t, g in enumerate(gts):
            if g.shape != image.shape[:2]:
                raise ValueError(f"{self.ground_truth_path(i)}: segmentation {t} has shape {g.shape}, "
                                 f"image {path.name} {image.shape[:2]}")
        return Sample(path.stem, image, gts)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"BSDS500(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"


def load_bsds500(root=None, split: str = "test", *, max_segments: int | None = None) -> BSDS500:
    """:class:`BSDS500` of ``split`` (``root`` defaults as described in the module notes)."""
    return BSDS500(root, split, max_segments=max_segments)
