"""Reading images and writing label maps and overlays (PNG, NPY, superpixel-benchmark CSV)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "IMAGE_EXTENSIONS",
    "SAMPLE_IMAGE",
    "read_image",
    "list_images",
    "write_labels",
    "read_labels",
    "overlay_boundaries",
    "write_overlay",
    "atomic_write",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")

#: A 451x300 photo bundled with the package (Chelsea the cat, from scikit-image's data, CC0).
SAMPLE_IMAGE = Path(__file__).resolve().parent / "data" / "sample.jpg"


def read_image(path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grayscale is repeated, alpha dropped).

    The EXIF orientation tag is applied (a portrait photo comes out upright). Images with more
    than 8 bits per sample are scaled to 0..255 by their real range instead of being clipped:
    16/32-bit integer images (e.g. 16-bit grayscale PNG) and float images (e.g. float TIFF) are
    mapped linearly from their minimum..maximum, except float images already in [0, 1], which
    are taken as such. A constant image keeps its value relative to the type's range.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a readable image, or has non-finite (NaN / inf) pixel values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode not in ("RGB", "L") and not im.mode.startswith(("I", "F")):
                im = im.convert("RGB")  # palette, RGBA, CMYK, 1-bit, LA, ...
            arr = np.array(im)  # a copy: np.asarray of a PIL image is read-only
    except Exception as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None
    if arr.dtype != np.uint8:
        arr = _scale_to_uint8(arr, path)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return np.ascontiguousarray(arr)


def _scale_to_uint8(arr: np.ndarray, path) -> np.ndarray:
    """High bit-depth / float samples to uint8 by the data's range (PIL's convert would clip)."""
    a = arr.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"image {path} has non-finite (NaN or inf) pixel values")
    lo, hi = float(a.min()), float(a.max())
    if np.issubdtype(arr.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        unit = a  # the usual float convention: already [0, 1]
    elif hi > lo:
        unit = (a - lo) / (hi - lo)
    else:  # constant: no range to stretch; place it within the type's nominal range
        top = 1.0 if np.issubdtype(arr.dtype, np.floating) else float(np.iinfo(arr.dtype).max)
        unit = np.clip(a / top, 0.0, 1.0)
    return np.round(unit * 255.0).astype(np.uint8)


def list_images(paths) -> list[Path]:
    """Expand files and folders (non-recursive) into a sorted list of image files."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such image or folder: {p}")
    return out


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path, write_fn) -> None:
    """Call ``write_fn(tmp_path)`` then rename to ``path``, so readers never see half a file.

    The file gets the usual permissions (0666 minus the umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.stem + ".", suffix=path.suffix)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_labels(labels: np.ndarray, path, fmt: str | None = None) -> Path:
    """Write a label map as 16-bit PNG, ``.npy`` or CSV (comma-separated, one row per line).

    The CSV layout is the one read by the superpixel-benchmark (``eval_summary_cli``).

    Raises
    ------
    ValueError
        Not a 2-D map, empty, non-integer values (float labels must hold exact integers: they
        are never truncated), ids outside the format's range, or an unknown format.
    """
    labels = np.asarray(labels)
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if labels.ndim != 2:
        raise ValueError(f"a label map is 2-D (H, W), got shape {labels.shape}")
    if labels.dtype == bool or not (np.issubdtype(labels.dtype, np.integer)
                                    or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(f"label maps hold integer ids, got dtype {labels.dtype}")
    if np.issubdtype(labels.dtype, np.floating):
        # casting would silently truncate 2.7 -> 2 (and NaN to garbage): only exact integers pass
        if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
            raise ValueError(f"label map has non-integer values (dtype {labels.dtype}); "
                             "labels must be integer ids (round or relabel them first)")
        labels = labels.astype(np.int64)
    if labels.size == 0:
        raise ValueError(f"empty label map (shape {labels.shape})")
    if fmt == "png":
        if labels.max() > 65535 or labels.min() < 0:
            raise ValueError("PNG label maps hold ids 0..65535; use npy or csv")
        atomic_write(path, lambda t: Image.fromarray(labels.astype(np.uint16)).save(t, format="PNG"))
    elif fmt == "npy":
        if labels.max() > np.iinfo(np.int32).max or labels.min() < np.iinfo(np.int32).min:
            raise ValueError("label ids exceed the int32 range of .npy label maps; use csv")
        atomic_write(path, lambda t: np.save(t, labels.astype(np.int32)))
    elif fmt == "csv":
        atomic_write(path, lambda t: np.savetxt(t, labels.astype(np.int64), fmt="%d", delimiter=","))
    else:
        raise ValueError(f"unknown label format {fmt!r}; use png, npy or csv")
    return path


def read_labels(path) -> np.ndarray:
    """Read a label map written by :func:`write_labels` (or any integer PNG / CSV / NPY)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label map not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path)
        elif suffix == ".csv":
            arr = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
        else:
            with Image.open(path) as im:
                arr = np.asarray(im)
    except Exception as exc:
        raise ValueError(f"cannot read label map {path}: {exc}") from None
    if arr.ndim != 2:
        raise ValueError(f"label map {path} must be 2-D, got shape {arr.shape}")
    return arr.astype(np.int32)


def overlay_boundaries(image: np.ndarray, labels: np.ndarray, color=(255, 230, 0)) -> np.ndarray:
    """uint8 RGB image with superpixel boundaries (4-neighbour label changes) painted.

    Raises ``ValueError`` for a bad image (see :func:`sin.image.as_uint8_rgb`) or labels that are
    not an ``(H, W)`` map of the image's size.
    """
    from .image import as_uint8_rgb

    img = as_uint8_rgb(image).copy()
    labels = np.asarray(labels)
    if labels.shape != img.shape[:2]:
        raise ValueError(f"labels of shape {labels.shape} do not match the image ({img.shape[0]}x{img.shape[1]}): "
                         "one label per pixel is needed")
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    img[edge] = color
    return img


def write_overlay(image, labels, path) -> Path:
    """Write :func:`overlay_boundaries` as a PNG, atomically."""
    over = overlay_boundaries(image, labels)
    atomic_write(path, lambda t: Image.fromarray(over).save(t, format="PNG"))
    return Path(path)
