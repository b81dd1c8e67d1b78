"""Salient-object datasets as image / binary mask pairs.

Two layouts are recognised under a dataset folder:

* ECSSD: ``images/*.jpg`` and ``ground_truth_mask/*.png`` (same stem);
* generic: ``images/*`` and ``masks/*.png`` (e.g. ``saliency-mini``).

Other layouts can be named explicitly (``image_dir=``, ``mask_dir=``). Data roots come from
arguments or ``$SIN_DATA_ROOT`` (default ``<repo>/../shared/data``), never from fixed paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sin.io import IMAGE_EXTENSIONS, read_image

__all__ = ["default_data_root", "SaliencyItem", "SaliencyDataset", "read_mask", "LAYOUTS"]

#: (image folder, mask folder) of the recognised layouts, tried in this order.
LAYOUTS = {"ecssd": ("images", "ground_truth_mask"), "generic": ("images", "masks")}


def default_data_root() -> Path:
    """``$SIN_DATA_ROOT`` or ``<repo>/../shared/data`` (:func:`sin.paths.data_root`)."""
    from sin.paths import data_root

    return data_root()


def read_mask(path) -> np.ndarray:
    """Binary ground truth as the SO code reads it: ``GT(:,:,1) > 128``, or as is if 1-bit.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unreadable or not a 2-D / 3-D image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth mask not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except Exception as exc:
        raise ValueError(f"cannot read ground-truth mask {path}: {exc}") from None
    if arr.ndim == 3:
        arr = arr[..., 0]  # MATLAB: first channel
    if arr.ndim != 2:
        raise ValueError(f"ground-truth mask {path} has shape {arr.shape}, expected (H, W) or (H, W, C)")
    if arr.dtype == bool:  # a 1-bit PNG reads as logical in MATLAB: used as is
        return arr
    return arr > 128


@dataclass(frozen=True)
class SaliencyItem:
    """One image and its mask."""

    name: str
    image_path: Path
    mask_path: Path


class SaliencyDataset:
    """Image / mask pairs of a salient-object dataset folder.

    Parameters
    ----------
    root : str or Path
        Dataset folder (holding ``images/`` and ``ground_truth_mask/`` or ``masks/``).
    image_dir, mask_dir : str, optional
        Sub-folder names overriding the layout detection.
    mask_ext : str, optional
        Mask file extension (``.png``; the Saliency-Objectness demo used ``.jpg``).
    missing_masks : {"raise", "skip"}, optional
        What an image without a mask does: ``"raise"`` (default) a ``FileNotFoundError`` naming
        them; ``"skip"`` leaves those images out and records them in :attr:`skipped`
        (``(name, reason)`` pairs), for long benchmark runs that must not stop halfway.
    name : str, optional
        The dataset's name (default: the folder's name).

    Raises
    ------
    FileNotFoundError
        Missing root or sub-folders, no images, or (with ``missing_masks="raise"``) an image
        without a mask (all named).

    Examples
    --------
    >>> ds = SaliencyDataset(default_data_root() / "saliency-mini")
    >>> name, image, gt = ds.load(0)   # uint8 (H, W, 3), bool (H, W)
    """

    def __init__(self, root, *, image_dir: str | None = None, mask_dir: str | None = None,
                 mask_ext: str = ".png", missing_masks: str = "raise", name: str | None = None):
        self._name = name
        if missing_masks not in ("raise", "skip"):
            raise ValueError(f"missing_masks must be 'raise' or 'skip', got {missing_masks!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"saliency dataset folder not found: {self.root}")
        if (image_dir is None) != (mask_dir is None):
            raise ValueError("give both image_dir and mask_dir, or neither")
        if image_dir is None:
            for layout, (idir, mdir) in LAYOUTS.items():
                if (self.root / idir).is_dir() and (self.root / mdir).is_dir():
                    self.layout, image_dir, mask_dir = layout, idir, mdir
                    break
            else:
                raise FileNotFoundError(
                    f"no known layout in {self.root}: expected images/ with ground_truth_mask/ (ECSSD) "
                    f"or images/ with masks/")
        else:
            self.layout = "custom"
            for d in (image_dir, mask_dir):
                if not (self.root / d).is_dir():
                    raise FileNotFoundError(f"folder not found: {self.root / d}")
        self.image_dir = self.root / image_dir
        self.mask_dir = self.root / mask_dir
        images = sorted(p for p in self.image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {self.image_dir}")
        missing = [p.stem for p in images if not (self.mask_dir / (p.stem + mask_ext)).is_file()]
        #: ``(name, reason)`` of the images left out (missing masks, or sizes found by :meth:`check`)
        self.skipped: list[tuple[str, str]] = []
        if missing and missing_masks == "skip":
            self.skipped = [(m, f"no mask {m}{mask_ext} in {self.mask_dir}") for m in missing]
            images = [p for p in images if p.stem not in set(missing)]
            if not images:
                raise FileNotFoundError(f"none of the images in {self.image_dir} has a mask in {self.mask_dir}")
        elif missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise FileNotFoundError(
                f"{len(missing)} image(s) in {self.image_dir} have no mask {mask_ext} in {self.mask_dir}: "
                f"{', '.join(missing[:5])}{more}")
        self.items = [SaliencyItem(p.stem, p, self.mask_dir / (p.stem + mask_ext)) for p in images]

    @classmethod
    def open(cls, name: str, root=None, **kwargs) -> SaliencyDataset:
        """The dataset ``name`` in the folder ``root``, by default ``<data root>/<name>``
        (:func:`sin.datasets.folder.dataset_root`: ``$SIN_DATA_ROOT``, else ``../shared/data``)."""
        from sin.datasets.folder import dataset_root

        return cls(dataset_root(name, root), name=name, **kwargs)

    @property
    def name(self) -> str:
        """The name given, else the folder's name (``ECSSD``, ``saliency-mini``, ...)."""
        return self._name or self.root.resolve().name

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        """``(name, uint8 RGB image, bool mask)``; ``ValueError`` if the sizes differ."""
        item = self.items[index]
        image = read_image(item.image_path)
        mask = read_mask(item.mask_path)
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask {item.mask_path} is {mask.shape[0]}x{mask.shape[1]} but image "
                             f"{item.image_path} is {image.shape[0]}x{image.shape[1]}")
        return item.name, image, mask

    def check(self, drop: bool = True) -> list[tuple[str, str]]:
        """Find images whose mask is of another size or unreadable, from the file headers only.

        Returns their ``(name, reason)`` pairs; with ``drop`` they are also removed from
        :attr:`items` and added to :attr:`skipped`. Cheap (no pixel decoding): run it before a
        long benchmark so that a bad pair is reported up front, not found halfway through.
        """
        bad = []
        for item in self.items:
            try:
                with Image.open(item.image_path) as im:
                    isize = im.size
                    if im.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: a 90-degree turn
                        isize = isize[::-1]
                with Image.open(item.mask_path) as m:
                    msize = m.size
            except Exception as exc:
                bad.append((item.name, f"unreadable: {exc}"))
                continue
            if isize != msize:
                bad.append((item.name, f"mask {item.mask_path.name} is {msize[1]}x{msize[0]} but image "
                                       f"{item.image_path.name} is {isize[1]}x{isize[0]}"))
        if drop and bad:
            names = {n for n, _ in bad}
            self.items = [it for it in self.items if it.name not in names]
            self.skipped += bad
        return bad

    def __iter__(self):
        for i in range(len(self)):
            yield self.load(i)
