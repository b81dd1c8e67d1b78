"""Datasets for superpixel evaluation: items are ``(image_id, image, ground_truths)``.

* :class:`BSDS500` / :func:`load_bsds500`: the original ``.mat`` layout, all annotations.
* :class:`NYUv2` / :func:`load_nyuv2`: the superpixel-benchmark's CSV layout.
* :class:`LabelledImageFolder`: any folder of images + folder of label maps (png/csv/npy,
  ``<stem>.<ext>`` or ``<stem>-<t>.<ext>``).

:func:`load_dataset` opens one by name.
"""

from .bsds500 import BSDS500, load_bsds500, merge_extra_segments, read_bsds500_ground_truth
from .folder import LabelledImageFolder, Sample, dataset_root, read_id_list
from .nyuv2 import NYUv2, load_nyuv2

__all__ = [
    "BSDS500",
    "DATASETS",
    "LabelledImageFolder",
    "NYUv2",
    "Sample",
    "dataset_root",
    "load_bsds500",
    "load_dataset",
    "load_nyuv2",
    "merge_extra_segments",
    "read_bsds500_ground_truth",
    "read_id_list",
]

DATASETS = ("bsds500", "nyuv2", "folder")


def load_dataset(name: str, *, root=None, split: str = "test", images=None, labels=None, **options):
    """Open a dataset by name: ``"bsds500"``, ``"nyuv2"`` or ``"folder"``.

    ``"folder"`` needs ``images`` and ``labels`` (folders); the others take ``root`` and
    ``split``. ``options`` go to the class (e.g. ``max_segments`` for BSDS500).
    """
    key = name.lower()
    if key == "bsds500":
        return BSDS500(root, split, **options)
    if key == "nyuv2":
        return NYUv2(root, split, **options)
    if key == "folder":
        if images is None or labels is None:
            raise ValueError("the 'folder' dataset needs images=<folder> and labels=<folder>")
        return LabelledImageFolder(images, labels, **options)
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
