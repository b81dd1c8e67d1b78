"""Image geometry for the trunk: uint8 RGB to tensors and the trunk's input size.

The trunk sees the image resized (align-corners bilinear) so that its shorter side is
``short_side`` and both sides are ``8k + 1`` (TF DeepLab's favourite sizes: grid points fall on
pixels); superpixels, BI and the evaluation work at the image's native resolution.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["trunk_input_size", "image_to_tensor", "resize_for_trunk", "label_tensor"]


def trunk_input_size(height: int, width: int, short_side: int | None = 257) -> tuple[int, int]:
    """Trunk input size: shorter side ``short_side``, aspect kept, both sides ``8k + 1``.

    ``short_side=None`` keeps the native size.
    """
    if short_side is None:
        return int(height), int(width)
    if short_side < 9:
        raise ValueError(f"short_side must be >= 9, got {short_side}")
    s = short_side / min(height, width)

    def snap(n):
        return int(8 * max(1, round((n * s - 1) / 8)) + 1)

    return snap(height), snap(width)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``(3, H, W)`` float32 in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1).div_(255.0)


def resize_for_trunk(image: torch.Tensor, size, align_corners: bool = True) -> torch.Tensor:
    """Bilinear resize of ``(B, 3, H, W)`` with the trunk's pixel convention (identity if same size)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=align_corners).clamp_(0.0, 1.0)



def label_tensor(label: np.ndarray) -> torch.Tensor:
    """``(H, W)`` class indices (255 = void) as int64."""
    return torch.from_numpy(np.asarray(label).astype(np.int64))
