"""Input validation and conversion shared by SIN and every superpixel provider.

Every public entry point funnels its image through :func:`as_float_rgb` (numpy) or
:func:`as_float_batch` (torch), so that bad input fails early with a message that names the
problem instead of a traceback from deep inside numpy or torch.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_float_rgb", "rgb_view", "as_uint8_rgb", "as_float_batch", "check_n_segments", "check_labels",
           "ImageTooLarge", "format_pixels"]


def _to_unit_float(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(
                f"float {what} must have values in [0, 1]; got range [{lo:.4g}, {hi:.4g}] "
                "(pass uint8 for 0..255 data)"
            )
        return np.clip(arr, 0.0, 1.0)
    raise ValueError(_DTYPE_ERROR.format(what=what, dtype=arr.dtype))


_DTYPE_ERROR = "unsupported {what} dtype {dtype}; use uint8, uint16, bool or float in [0, 1]"


def rgb_view(image, *, channel_axis: int | None = -1, min_pixels: int = 2) -> np.ndarray:
    """Check an image's shape and dtype; return it as ``(H, W, 3)`` **without** converting values.

    The structural half of :func:`as_float_rgb` (same checks, same messages) for callers that
    convert the values themselves (SIN keeps uint8 until its resize): a view where possible
    (RGBA loses alpha by slicing, channel-first input is ``np.moveaxis``-ed), a 3x repeat for
    grayscale. Value checks (NaN/inf, the [0, 1] range of float images) are the caller's job.
    """
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor given to the numpy API
        image = image.detach().cpu().numpy()
    arr = np.asarray(image)
    if arr.dtype == object:
        raise ValueError("image must be a numeric array, got an object array")
    if channel_axis is None:
        if arr.ndim != 2:
            raise ValueError(f"grayscale image (channel_axis=None) must be 2-D, got shape {arr.shape}")
        arr = arr[..., None]
    else:
        if arr.ndim == 2:
            arr = arr[..., None]
        elif arr.ndim == 3:
            arr = np.moveaxis(arr, channel_axis, -1)
        else:
            raise ValueError(
                f"image must be 2-D (grayscale) or 3-D (H, W, C), got {arr.ndim}-D shape {arr.shape}"
            )
    if arr.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"image must have 1, 3 or 4 channels along channel_axis, got {arr.shape[-1]} "
            f"(shape {np.shape(image)}); pass channel_axis if the channels are not last"
        )
    h, w = arr.shape[:2]
    if h * w == 0:
        raise ValueError(f"image is empty (shape {np.shape(image)})")
    if h * w < min_pixels:
        raise ValueError(f"image has {h * w} pixel(s); at least {min_pixels} are needed")
    if not (arr.dtype in (np.uint8, np.uint16, np.bool_) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(_DTYPE_ERROR.format(what="image", dtype=arr.dtype))
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    elif arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return arr


def as_float_rgb(image, *, channel_axis: int | None = -1, min_pixels: int = 2) -> np.ndarray:
    """Validate an image and return it as a C-contiguous ``(H, W, 3)`` float32 array in [0, 1].

    Parameters
    ----------
    image : array_like
        ``(H, W)`` grayscale, or ``(H, W, C)`` with C in {1, 3, 4} (RGBA: alpha is dropped).
        uint8 (0..255), uint16, bool or float in [0, 1].
    channel_axis : int or None, optional
        Axis of the colour channels; ``None`` means the image is grayscale.
    min_pixels : int, optional
        Smallest accepted number of pixels (a one-pixel image has no superpixel structure).

    Raises
    ------
    ValueError
        Wrong number of dimensions or channels, unsupported dtype, NaN/inf, float values outside
        [0, 1], or fewer than ``min_pixels`` pixels.
    """
    arr = rgb_view(image, channel_axis=channel_axis, min_pixels=min_pixels)
    return np.ascontiguousarray(_to_unit_float(arr, "image"))


def as_uint8_rgb(image, *, channel_axis: int | None = -1, min_pixels: int = 2) -> np.ndarray:
    """Like :func:`as_float_rgb` but returns ``(H, W, 3)`` uint8 (for 8-bit algorithms)."""
    arr = np.asarray(image) if not hasattr(image, "detach") else image
    if isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3 \
            and channel_axis in (-1, 2) and arr.shape[0] * arr.shape[1] >= min_pixels:
        return np.ascontiguousarray(arr)
    f = as_float_rgb(image, channel_axis=channel_axis, min_pixels=min_pixels)
    return np.round(f * 255.0).astype(np.uint8)


def as_float_batch(images, *, min_pixels: int = 2):
    """Validate a torch batch ``(B, 3, H, W)`` or ``(3, H, W)``; return float32 in [0, 1].

    uint8 tensors are divided by 255; 1-channel batches are repeated to 3 channels and
    4-channel ones lose their alpha channel.
    """
    import torch

    if not isinstance(images, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor, got {type(images).__name__}")
    x = images
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"image batch must be (B, C, H, W) or (C, H, W), got shape {tuple(images.shape)}")
    b, c, h, w = x.shape
    if b == 0 or h * w == 0:
        raise ValueError(f"image batch is empty (shape {tuple(images.shape)})")
    if h * w < min_pixels:
        raise ValueError(f"images have {h * w} pixel(s); at least {min_pixels} are needed")
    if c not in (1, 3, 4):
        raise ValueError(f"image batch must have 1, 3 or 4 channels in dim 1, got {c} (shape {tuple(x.shape)})")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.is_floating_point():
        x = x.float()
        if not torch.isfinite(x).all():
            raise ValueError("image batch contains NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(f"float images must have values in [0, 1]; got range [{lo:.4g}, {hi:.4g}]")
        x = x.clamp(0.0, 1.0)
    else:
        raise ValueError(f"unsupported tensor dtype {x.dtype}; use uint8 or float in [0, 1]")
    if c == 4:
        x = x[:, :3]
    elif c == 1:
        x = x.expand(-1, 3, -1, -1)
    return x


def check_n_segments(n_segments) -> int:
    """Return ``n_segments`` as a positive int or raise ``ValueError``."""
    if isinstance(n_segments, (bool, np.bool_)):
        raise ValueError(f"n_segments must be a positive integer, got {n_segments!r}")
    if not isinstance(n_segments, numbers.Integral):
        if isinstance(n_segments, numbers.Real) and float(n_segments).is_integer():
            n_segments = int(n_segments)
        else:
            raise ValueError(f"n_segments must be a positive integer, got {n_segments!r}")
    n_segments = int(n_segments)
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    return n_segments


def check_labels(labels, shape=None, *, what: str = "labels") -> np.ndarray:
    """Validate a label map: 2-D, integer, non-negative, optionally of a given ``(H, W)`` shape."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D label map, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{what} shape {arr.shape} does not match the image shape {tuple(shape)}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty")
    if arr.min() < 0:
        raise ValueError(f"{what} must be non-negative, found {arr.min()}")
    return arr


def format_pixels(n: int) -> str:
    """``"12.0 MP"``, or ``"5000 pixels"`` below 0.1 MP (where MP would print as 0.0)."""
    return f"{n / 1e6:.1f} MP" if n >= 100_000 else f"{int(n)} pixels"


class ImageTooLarge(ValueError):
    """An image above the provider's size limit (without ``downscale``); :meth:`advice` words the
    way out for the caller (keywords here, flags in a command line)."""

    def __init__(self, provider: str, height: int, width: int, limit: int):
        self.provider, self.height, self.width, self.limit = provider, int(height), int(width), int(limit)
        super().__init__(self.advice())

    def advice(self, downscale: str = "pass downscale=True", full_size: str = "max_pixels=None") -> str:
        return (f"provider {self.provider!r}: the image has {self.height}x{self.width} = "
                f"{format_pixels(self.height * self.width)}, above its limit of {format_pixels(self.limit)} "
                f"(time and memory grow with the image); {downscale} to run it on a reduced copy, or "
                f"{full_size} to run it at full size anyway")

    def __reduce__(self):
        return (type(self), (self.provider, self.height, self.width, self.limit))
