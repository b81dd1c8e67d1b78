"""Reading images and writing label maps and overlays (PNG, NPY, superpixel-benchmark CSV)."""

from __future__ import annotations

import errno
import os
import re
import socket
import struct
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
    "remove_stale_temporaries",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")

#: A 451x300 photo bundled with the package (Chelsea the cat, from scikit-image's data, CC0).
SAMPLE_IMAGE = Path(__file__).resolve().parent / "data" / "sample.jpg"


def read_image(path, *, dtype=np.uint8, stretch: bool = False) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` RGB (grayscale is repeated, alpha dropped).

    The EXIF orientation tag is applied (a portrait photo comes out upright).

    Samples are scaled by the range of their container, exactly as the array API does
    (:func:`sin.image.as_float_rgb` divides uint16 by 65535): a 16-bit image is read as
    ``value / 65535``, so a lossless 16-bit copy of an 8-bit photo (``v * 257``) reads back the
    8-bit values and one hot pixel changes nothing else. When a PNG records fewer significant
    bits (``sBIT``, e.g. 12 of 16) and its samples were stored unscaled (all below ``2**12``),
    they are scaled by that depth instead. Float images must lie in [0, 1].

    Parameters
    ----------
    path : path
        Image file (JPEG, PNG incl. 16-bit, TIFF incl. 16-bit and float, BMP, PPM/PGM).
    dtype : numpy.uint8, numpy.float32 or None, optional
        ``uint8`` (default): 0..255. ``float32``: [0, 1] at the file's full precision (equal to
        ``as_float_rgb`` of the stored 16-bit array). ``None``: uint8 for files with 8 bits per
        sample, float32 for deeper ones (what ``python -m sin segment`` reads).
    stretch : bool, optional
        Map the image's own minimum..maximum to the full range (a contrast stretch, e.g. for raw
        sensor data that fills a small part of its container, or float data outside [0, 1]).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a readable image; it has non-finite (NaN / inf) values, negative values,
        or float values outside [0, 1] (the last two are accepted with ``stretch=True``); or
        ``dtype`` is not one of the above.
    """
    path = Path(path)
    out = None if dtype is None else np.dtype(dtype)
    if out is not None and out not in (np.uint8, np.float32):
        raise ValueError(f"read_image: dtype must be uint8, float32 or None, got {dtype!r}")
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        arr, top = _decode(path)
    except Exception as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None
    deep = arr.dtype != np.uint8
    if not deep and not stretch:
        img = arr if out != np.float32 else arr.astype(np.float32) / 255.0
    else:
        unit = _to_unit(arr, top, path, stretch)
        img = unit if (out == np.float32 or (out is None and deep)) else _unit_to_uint8(unit)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return np.ascontiguousarray(img)


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray | float | None]:
    """Pixels as stored (orientation applied) and the value that means "full scale" per channel
    (``None`` for floats)."""
    with Image.open(path) as im:
        im.load()
        fmt, bits = im.format, _bits_per_sample(im, path)
        if bits > 8 and im.mode in ("RGB", "RGBA", "LA", "RGBX"):
            # Pillow keeps only the high byte of 16-bit colour samples: decode them with OpenCV
            arr = _orient(_decode_deep_colour(path), im)
        else:
            im = ImageOps.exif_transpose(im)
            if im.mode not in ("RGB", "L") and not im.mode.startswith(("I", "F")):
                im = im.convert("RGB")  # palette, RGBA, CMYK, 1-bit, LA, ...
            arr = np.array(im)  # a copy: np.asarray of a PIL image is read-only
        if arr.ndim == 2:
            arr = arr[..., None]
        arr = arr[..., :1] if arr.shape[-1] == 2 else arr[..., :3]  # alpha dropped
        if arr.dtype == np.uint8:
            return arr, 255.0
        if np.issubdtype(arr.dtype, np.floating):
            return arr, None
        return arr, _full_scale(arr, bits, _png_sbit(path) if fmt == "PNG" else None)


def _bits_per_sample(im: Image.Image, path: Path) -> int:
    """Bits per sample the file stores (Pillow's mode does not say for 16-bit colour)."""
    if im.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        return head[24] if len(head) == 26 and head[12:16] == b"IHDR" else 8
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, (8,))
        return int(max(bits if isinstance(bits, tuple) else (bits,)))
    if im.mode.startswith("I;16") or im.format == "PPM" and im.mode == "I":  # Pillow scales PGM maxval to 16 bits
        return 16
    return {"I": 32, "F": 32}.get(im.mode, 8)


def _png_sbit(path: Path) -> tuple[int, ...] | None:
    """The ``sBIT`` chunk (significant bits per channel) of a PNG, if it has one before IDAT."""
    with open(path, "rb") as f:
        f.seek(8)
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND"):
                return None
            data = f.read(length)
            f.seek(4, os.SEEK_CUR)  # CRC
            if kind == b"sBIT":
                return tuple(data)


def _full_scale(arr: np.ndarray, bits: int, sbit) -> np.ndarray | float:
    """``2**bits - 1``; per channel ``2**sbit - 1`` for samples stored unscaled below their sBIT.

    A conforming PNG scales b-bit samples up to its container (then dividing by the container's
    range is right, and its dark images hold multiples of ``2**(bits - b)``); some writers store
    them unscaled, which shows as every sample below ``2**b`` with other low bits in use.
    """
    top = float(2 ** bits - 1)
    if not sbit:
        return top
    channels = arr.shape[-1]
    sbit = sbit[:1] * channels if len(sbit) in (1, 2) else sbit[:channels]  # gray(+alpha) or RGB(A)
    scale = np.full(channels, top)
    for c, b in enumerate(sbit):
        x = arr[..., c]
        if 0 < b < bits and x.max() < 2 ** b and np.any(x % (2 ** (bits - b))):
            scale[c] = 2 ** b - 1
    return scale


def _decode_deep_colour(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(path, np.uint8)  # imdecode: also for paths OpenCV cannot open
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("OpenCV cannot decode its 16-bit colour samples")
    if arr.ndim == 3 and arr.shape[-1] >= 3:
        arr = arr[..., [2, 1, 0] + list(range(3, arr.shape[-1]))]  # BGR(A) -> RGB(A)
    return arr


def _orient(arr: np.ndarray, im: Image.Image) -> np.ndarray:
    """Apply ``im``'s EXIF orientation to ``arr`` (any dtype), through an index image."""
    orientation = im.getexif().get(0x0112, 1)
    if orientation in (None, 1):
        return arr
    h, w = arr.shape[:2]
    index = Image.fromarray(np.arange(h * w, dtype=np.int32).reshape(h, w))
    index.getexif()[0x0112] = orientation
    moved = np.asarray(ImageOps.exif_transpose(index))
    return arr.reshape(h * w, *arr.shape[2:])[moved]


def _to_unit(arr: np.ndarray, top, path, stretch: bool) -> np.ndarray:
    """float32 in [0, 1]: by the container's full scale ``top``, or by the data's range (stretch)."""
    if not np.isfinite(arr).all():
        raise ValueError(f"image {path} has non-finite (NaN or inf) pixel values")
    lo, hi = float(arr.min()), float(arr.max())
    if stretch and hi > lo:
        return ((arr.astype(np.float64) - lo) / (hi - lo)).astype(np.float32)
    if top is None:  # float samples: [0, 1] by convention
        if (lo < 0.0 or hi > 1.0) and not stretch:
            raise ValueError(f"float image {path} has values in [{lo:.4g}, {hi:.4g}], outside [0, 1]; "
                             "read it with stretch=True (segment: --stretch) to map its range to [0, 1]")
        return np.clip(arr.astype(np.float32), 0.0, 1.0)
    if lo < 0:
        if not stretch:
            raise ValueError(f"image {path} has negative pixel values (min {lo:g}); read it with "
                             "stretch=True (segment: --stretch) to map its range to [0, 1]")
        return np.zeros(arr.shape, np.float32)  # constant and negative: no range to stretch
    # float32 arithmetic, as sin.image.as_float_rgb: the same array gives the same values
    return np.clip(arr.astype(np.float32) / np.asarray(top, np.float32), 0.0, 1.0)


def _unit_to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.round(unit.astype(np.float64) * 255.0).astype(np.uint8)


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


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:32] or "host"


def _temp_prefix(path: Path) -> str:
    """``.<name>.tmp-<pid>-<host>-``: the writer of a temporary is known, so that a leftover of a
    killed process can be told from the file a live one is writing."""
    return f".{path.name}.tmp-{os.getpid()}-{_host_tag()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process / not a pid
        return True
    return True


def remove_stale_temporaries(folder, names=None, *, legacy: bool = False) -> list[Path]:
    """Delete the temporaries that writers killed mid-write (``kill -9``, power loss) left in ``folder``.

    A temporary of :func:`atomic_write` names its process and host; it is stale when that process
    is gone (same host; temporaries of other hosts are left alone). ``names``: only those of
    these target file names. ``legacy``: also the unattributed temporaries of earlier versions
    (``<name>.XXXXXXXX.tmp`` and ``.<stem>.XXXXXXXX<suffix>``); only for a caller that owns the
    folder (e.g. a training run being resumed), since their writers cannot be checked.

    Returns the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = _host_tag()
    wanted = None if names is None else {str(n) for n in names}
    ours = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<host>[A-Za-z0-9_]+)-")
    old = re.compile(r"^(?:(?P<a>.+)\.[A-Za-z0-9_]{8}\.tmp|\.(?P<stem>.+)\.[A-Za-z0-9_]{8}(?P<suffix>\.[^.]*))$")
    removed = []
    for entry in os.scandir(folder):
        m = ours.match(entry.name)
        if m:
            stale = (m["host"] == host and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"]))
                     and (wanted is None or m["name"] in wanted))
        else:
            m = old.match(entry.name) if legacy else None
            target = None if m is None else (m["a"] or f"{m['stem']}{m['suffix']}")
            stale = m is not None and (wanted is None or target in wanted)
        if stale and entry.is_file(follow_symlinks=False):
            try:
                os.remove(entry.path)
                removed.append(Path(entry.path))
            except FileNotFoundError:  # removed meanwhile by another cleaner
                pass
    return removed


def atomic_write(path, write_fn, *, exclusive: bool = False, clean_stale: bool = False) -> None:
    """Call ``write_fn(tmp_path)`` then rename to ``path``, so readers never see half a file.

    The temporary lies next to ``path``, keeps its suffix (writers that pick the format from it
    work) and names this process and host. The file gets the usual permissions (0666 minus the
    umask), not ``mkstemp``'s 0600.

    Parameters
    ----------
    exclusive : bool, optional
        Create ``path`` only if it does not exist *at the moment of the rename* (a hard link, which
        fails atomically when the name is taken): two processes writing the same output cannot
        replace each other's file. Raises ``FileExistsError`` (nothing is replaced).
    clean_stale : bool, optional
        First delete this path's temporaries left by killed writers (see
        :func:`remove_stale_temporaries`; for large files such as checkpoints).
    """
    path = Path(path)
    # the rename would replace whatever stands at ``path``: a device (``/dev/null``), a FIFO or a
    # socket must never be swapped for a regular file, nor a folder for anything
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise ValueError(f"cannot write {path}: it is {kind}; give the path of a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean_stale:
        remove_stale_temporaries(path.parent, [path.name])
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=path.suffix)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, _umask_mode())
        if exclusive:
            _link_exclusive(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _link_exclusive(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "already exists (written by another process meanwhile); not replaced",
                              str(path)) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        # a file system without hard links: claim the name exclusively, then move the bytes in
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "already exists (written by another process meanwhile); "
                                  "not replaced", str(path)) from None
        os.replace(tmp, path)


def write_labels(labels: np.ndarray, path, fmt: str | None = None, *, exclusive: bool = False) -> Path:
    """Write a label map as 16-bit PNG, ``.npy`` or CSV (comma-separated, one row per line).

    The CSV layout is the one read by the superpixel-benchmark (``eval_summary_cli``). Written
    atomically; ``exclusive``: never replace an existing file (see :func:`atomic_write`).

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
        atomic_write(path, lambda t: Image.fromarray(labels.astype(np.uint16)).save(t, format="PNG"),
                     exclusive=exclusive)
    elif fmt == "npy":
        if labels.max() > np.iinfo(np.int32).max or labels.min() < np.iinfo(np.int32).min:
            raise ValueError("label ids exceed the int32 range of .npy label maps; use csv")
        atomic_write(path, lambda t: np.save(t, labels.astype(np.int32)), exclusive=exclusive)
    elif fmt == "csv":
        atomic_write(path, lambda t: np.savetxt(t, labels.astype(np.int64), fmt="%d", delimiter=","),
                     exclusive=exclusive)
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


def write_overlay(image, labels, path, *, exclusive: bool = False) -> Path:
    """Write :func:`overlay_boundaries` as a PNG, atomically (``exclusive``: see :func:`atomic_write`)."""
    over = overlay_boundaries(image, labels)
    atomic_write(path, lambda t: Image.fromarray(over).save(t, format="PNG"), exclusive=exclusive)
    return Path(path)
