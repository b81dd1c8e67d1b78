"""NYUv2 in the superpixel-benchmark layout (Stutz et al.; ``docs/DATASETS.md`` there).

The benchmark's conversion (``lib_tools/nyuv2_convert_script.m``) writes::

    <root>/images/{train,test}/<8-digit index>.png         # RGB, 16 px cropped per side: 448 x 608
    <root>/csv_groundTruth/{train,test}/<index>.csv         # one instance segmentation per image
    <root>/depth/{train,test}/<index>.png                  # not used here

(its "train" is the 199-image validation subset, "test" the 400-image test subset; SIN
evaluates on the latter). Several annotations per image (``<index>-<t>.csv``) are accepted
as well. ``root`` defaults to ``$SIN_NYUV2``, else ``$SIN_DATA_ROOT/NYUV2``, else
``<repo>/../shared/data/NYUV2``. The data are not shipped with this project.
"""

from __future__ import annotations

from .folder import LabelledImageFolder, dataset_root

__all__ = ["SPLITS", "NYUv2", "load_nyuv2"]

SPLITS = ("train", "test")


class NYUv2(LabelledImageFolder):
    """NYUv2 images with their benchmark ground truth (items: ``(image_id, image, [gt])``).

    Parameters
    ----------
    root : path, optional
        Dataset folder (see the module notes for the default).
    split : {"train", "test"}

    Raises
    ------
    FileNotFoundError
        Missing folders or ground-truth CSVs (the message names them).
    ValueError
        Unknown split; unreadable CSV or a size mismatch when an item is read.
    """

    def __init__(self, root=None, split: str = "test"):
        if split not in SPLITS:
            raise ValueError(f"NYUv2 split must be one of {SPLITS}, got {split!r}")
        self.root = dataset_root("NYUV2", root, env_var="SIN_NYUV2")
        self.split = split
        super().__init__(self.root / "images" / split, self.root / "csv_groundTruth" / split,
                         label_extensions=(".csv",))

    def __repr__(self) -> str:
        return f"NYUv2(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"


def load_nyuv2(root=None, split: str = "test") -> NYUv2:
    """:class:`NYUv2` of ``split``."""
    return NYUv2(root, split)
