"""Generic segmentation datasets: a folder of images and a folder of label maps.

Also the shared pieces of every dataset loader: the :class:`Sample` tuple and
:func:`dataset_root` (where a dataset lives: argument, environment variable, default).

Label maps are matched to images by file stem: ``<stem>.<ext>`` is the only ground truth of
``<stem>.jpg``, ``<stem>-0.<ext>``, ``<stem>-1.<ext>``, ... are several (the
superpixel-benchmark's ``csv_groundTruth`` layout). Extensions: ``png`` (8/16-bit label
images), ``csv`` (comma separated integers) and ``npy``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import paths
from ..io import IMAGE_EXTENSIONS, read_image, read_labels

__all__ = ["DEFAULT_DATA_ROOT", "LABEL_EXTENSIONS", "LabelledImageFolder", "Sample", "dataset_root", "read_id_list"]

#: ``<repo>/../shared/data`` (the project's shared data folder), used when nothing is set
#: (kept for callers; the rule itself lives in :mod:`sin.paths`).
DEFAULT_DATA_ROOT = paths.REPO.parent / "shared" / "data"

LABEL_EXTENSIONS = (".png", ".csv", ".npy")


def checked_index(index, n: int) -> int:
    """``index`` (negative counts from the end) as a position in ``0..n-1``, or a clear error."""
    if not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if not -n <= index < n:
        raise IndexError(f"index {index} out of range for {n} images")
    return int(index) % n


def read_id_list(path) -> list[str]:
    """Image ids from a text file, one a line; ``#`` starts a comment, blank lines are skipped.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an empty list, an id
    with white space inside, or an id listed twice (the messages name the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"id list not found: {path}")
    ids, seen = [], {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if len(text.split()) != 1:
            raise ValueError(f"{path}:{n}: one image id per line, got {text!r}")
        if text in seen:
            raise ValueError(f"{path}:{n}: id {text!r} listed twice (first on line {seen[text]})")
        seen[text] = n
        ids.append(text)
    if not ids:
        raise ValueError(f"{path} lists no image ids")
    return ids


class Sample(NamedTuple):
    """One dataset item: ``(image_id, image, ground_truths)``.

    ``image`` is ``(H, W, 3)`` uint8 RGB; ``ground_truths`` a list of ``(H, W)`` int32 label
    maps (one per annotation).
    """

    image_id: str
    image: np.ndarray
    ground_truths: list


def dataset_root(name: str, root=None, *, env_var: str | None = None) -> Path:
    """Folder of dataset ``name``.

    Resolution order (:mod:`sin.paths`): ``root`` (argument), the environment variable
    ``env_var`` (e.g. ``SIN_BSDS500``), ``$SIN_DATA_ROOT/<name>``, then
    ``<repo>/../shared/data/<name>``.

    Raises
    ------
    FileNotFoundError
        The folder does not exist (the message names it and how to point elsewhere).
    """
    if root is not None and str(root) != "":
        how = "the root argument"
    elif env_var and os.environ.get(env_var):
        how = f"${env_var}"
    elif os.environ.get("SIN_DATA_ROOT"):
        how = "$SIN_DATA_ROOT"
    else:
        how = "the default data root"
    # the one resolution rule (sin.paths): argument -> $env_var -> data root (itself $SIN_DATA_ROOT or default)
    path = paths.resolve(root, env_var, paths.data_root() / name)
    if not path.is_dir():
        hint = f"set {env_var} or SIN_DATA_ROOT" if env_var else "set SIN_DATA_ROOT"
        raise FileNotFoundError(f"{name} dataset folder not found: {path} (from {how}; pass root= or {hint})")
    return path


_MULTI_GT = re.compile(r"^(?P<stem>.+)-(?P<t>\d+)$")


def _match_ground_truths(image_stems: list[str], label_files: list[Path]) -> dict[str, list[Path]]:
    """Assign label files to image stems: exact stem, else ``<stem>-<t>`` (sorted by t)."""
    stems = set(image_stems)
    single: dict[str, Path] = {}
    multi: dict[str, list[tuple[int, Path]]] = {}
    for f in label_files:
        if f.stem in stems:  # exact match wins, so an image called "a-1" keeps "a-1.png"
            if f.stem in single:
                raise ValueError(f"two label maps for image {f.stem!r}: {single[f.stem].name} and {f.name}")
            single[f.stem] = f
            continue
        m = _MULTI_GT.match(f.stem)
        if m and m["stem"] in stems:
            multi.setdefault(m["stem"], []).append((int(m["t"]), f))
    out = {}
    for s in image_stems:
        if s in single and s in multi:
            raise ValueError(f"image {s!r} has both {single[s].name} and numbered label maps "
                             f"({multi[s][0][1].name}, ...); keep one layout")
        if s in single:
            out[s] = [single[s]]
        elif s in multi:
            ts = sorted(multi[s], key=lambda p: p[0])
            indices = [t for t, _ in ts]
            if len(set(indices)) != len(indices):
                raise ValueError(f"image {s!r} has duplicate ground-truth numbers: {[f.name for _, f in ts]}")
            out[s] = [f for _, f in ts]
    return out


class LabelledImageFolder:
    """Images and their ground-truth label maps from two folders, matched by file stem.

    Parameters
    ----------
    images_dir : path
        Folder of images (jpg, png, bmp, tif, ...; not recursive).
    labels_dir : path
        Folder of label maps ``<stem>.<ext>`` or ``<stem>-<t>.<ext>`` (several annotations).
    label_extensions : sequence of str, optional
        Which label files to consider (default png, csv, npy).
    require_labels : bool, optional
        Raise if an image has no label map (default); ``False`` skips such images.

    Items are :class:`Sample` tuples ``(image_id, image, ground_truths)``; ground-truth label
    values are kept as stored (the benchmark's metrics do not care, except UE-Levin's slot
    count).

    Raises
    ------
    FileNotFoundError
        A folder is missing, there are no images, or (``require_labels``) an image has no
        label map.
    ValueError
        Ambiguous label files; when an item is read: an unreadable file or a label map whose
        size differs from its image (the message names the file).
    """

    def __init__(self, images_dir, labels_dir, *, label_extensions=LABEL_EXTENSIONS, require_labels: bool = True):
        self.images_dir, self.labels_dir = Path(images_dir), Path(labels_dir)
        for d, what in ((self.images_dir, "image"), (self.labels_dir, "label")):
            if not d.is_dir():
                raise FileNotFoundError(f"{what} folder not found: {d}")
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in label_extensions)
        images = sorted((p for p in self.images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                        key=lambda p: p.stem)
        if not images:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {self.images_dir}")
        stems = [p.stem for p in images]
        if len(set(stems)) != len(stems):
            dup = sorted({s for s in stems if stems.count(s) > 1})
            raise ValueError(f"several images share a stem in {self.images_dir}: {dup[:5]}")
        labels = sorted(p for p in self.labels_dir.iterdir() if p.is_file() and p.suffix.lower() in exts)
        matched = _match_ground_truths(stems, labels)
        missing = [s for s in stems if s not in matched]
        if missing and require_labels:
            raise FileNotFoundError(
                f"{len(missing)} image(s) without a label map in {self.labels_dir} (expected <stem>.<ext> or "
                f"<stem>-<t>.<ext> with ext in {exts}): {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        self._items = [(p.stem, p, matched[p.stem]) for p in images if p.stem in matched]

    @property
    def ids(self) -> list[str]:
        """Image ids (file stems), sorted."""
        return [i for i, _, _ in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def image_path(self, index: int) -> Path:
        return self._items[self._index(index)][1]

    def label_paths(self, index: int) -> list[Path]:
        return list(self._items[self._index(index)][2])

    def _index(self, index: int) -> int:
        return checked_index(index, len(self._items))

    def index(self, image_id: str) -> int:
        """Position of ``image_id`` (``ValueError`` if absent)."""
        for i, (s, _, _) in enumerate(self._items):
            if s == image_id:
                return i
        raise ValueError(f"no image {image_id!r} in {self.images_dir}")

    def __getitem__(self, index: int) -> Sample:
        image_id, image_path, label_paths = self._items[self._index(index)]
        image = read_image(image_path)
        gts = []
        for p in label_paths:
            gt = read_labels(p)
            if gt.shape != image.shape[:2]:
                raise ValueError(f"label map {p} has shape {gt.shape}, its image {image_path.name} {image.shape[:2]}")
            if gt.min() < 0:
                raise ValueError(f"label map {p} has negative labels")
            gts.append(gt)
        return Sample(image_id, image, gts)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.images_dir)!r}, {str(self.labels_dir)!r}, n={len(self)})"
