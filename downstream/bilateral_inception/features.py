"""Superpixel features for Bilateral Inception: scaled mean position and colour per superpixel.

Every superpixel ``s`` gets the mean over its pixels (weighted by the assignment, so soft SIN
assignments work and pass gradients) of the 7-vector

    ``[a*y, a*x,  b*R, b*G, b*B,  c*y, c*x]``   with ``a = xy_scale = 0.1``,
                                                 ``b = rgbxy_rgb_scale = 0.1``, ``c = rgbxy_xy_scale = 0.01``

(the ``AVGXYRGBXY`` feature of the original ``SpixelFeature`` layer, spec section 2 item 1). The
first two channels span the "xy" space, the last five the "rgbxy" space.

Units (a documented equivalent of the spec's): ``y, x`` are pixel coordinates (row, column) of
the frame the assignment is given in, colour is RGB on a 0..255 scale. The original used BGR
with the ImageNet mean subtracted; squared feature *differences*, the only thing the kernels see,
are identical up to the order of the colour channels, so the default scales mean the same
kernel widths as in the released model (colour sigma ~7 grey levels and position sigma ~7 px in
"xy", ~70 px in "rgbxy", at theta = 1 and identity transform). The original marks empty
superpixel ids with the value 255 and relies on exact float equality after interpolation (spec
section 7 pitfalls); here empty slots are explicit boolean masks instead.

Also here: :func:`grid_assignment`, the assignment of the trunk's coarse feature grid points to
superpixels (the original's Smear + Interp steps), which provides the BI6 source features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sin.pooling import Assignment, superpixel_pool

__all__ = [
    "FEATURE_DIM",
    "XY_DIM",
    "SuperpixelFeatures",
    "pixel_features",
    "superpixel_features",
    "valid_pixel_mask",
    "grid_coordinates",
    "grid_assignment",
]

#: Length of the feature vector: 2 "xy" + 5 "rgbxy" channels.
FEATURE_DIM = 7
#: The first ``XY_DIM`` (transformed) channels form the "xy" space, the rest the "rgbxy" space.
XY_DIM = 2


@dataclass
class SuperpixelFeatures:
    """Per-superpixel features of a batch.

    Attributes
    ----------
    features : (B, 7, K) tensor
        Mean scaled ``[y, x, R, G, B, y, x]`` per superpixel (0 for empty slots).
    mass : (B, K) tensor
        Number of (valid) pixels of each superpixel, soft for soft assignments.
    mask : (B, K) bool tensor
        ``mass > 0``: the slot is a real superpixel. Empty slots (ids missing from a label map,
        padding of a batch) must never act as sources or targets.
    """

    features: torch.Tensor
    mass: torch.Tensor
    mask: torch.Tensor


def _check_image(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"image must be a torch.Tensor (B, 3, H, W), got {type(image).__name__}")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must have shape (B, 3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor in [0, 1], got {image.dtype}")
    return image


def pixel_features(image: torch.Tensor, *, xy_scale: float = 0.1, rgbxy_rgb_scale: float = 0.1,
                   rgbxy_xy_scale: float = 0.01, color_range: float = 255.0) -> torch.Tensor:
    """The scaled 7-vector of every pixel: ``(B, 7, H, W)``.

    Parameters
    ----------
    image : (B, 3, H, W) float tensor
        RGB in [0, 1]; multiplied by ``color_range`` (255: the original's grey-level units).
    xy_scale, rgbxy_rgb_scale, rgbxy_xy_scale : float
        Scales of the "xy" position, the "rgbxy" colour and the "rgbxy" position channels.
    """
    image = _check_image(image)
    b, _, h, w = image.shape
    y = torch.arange(h, device=image.device, dtype=image.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    x = torch.arange(w, device=image.device, dtype=image.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    yx = torch.cat([y, x], dim=1)
    return torch.cat([xy_scale * yx, (rgbxy_rgb_scale * color_range) * image, rgbxy_xy_scale * yx], dim=1)


def valid_pixel_mask(image_sizes, height: int, width: int, device=None) -> torch.Tensor:
    """``(B, H, W)`` bool: pixel inside its image's own ``(h_b, w_b)`` (top-left aligned padding)."""
    sizes = torch.as_tensor(image_sizes, device=device).long()
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    return (rows < sizes[:, 0].view(-1, 1, 1)) & (cols < sizes[:, 1].view(-1, 1, 1))


def _mask_assignment(assignment: Assignment, pixel_valid: torch.Tensor | None) -> Assignment:
    """Zero the weights of invalid (padding) pixels so they belong to no superpixel."""
    if pixel_valid is None:
        return assignment
    weight = assignment.weight * pixel_valid.unsqueeze(1).to(assignment.weight.dtype)
    return Assignment(index=assignment.index, weight=weight, num_superpixels=assignment.num_superpixels)


def superpixel_features(image: torch.Tensor, assignment: Assignment, *, pixel_valid: torch.Tensor | None = None,
                        xy_scale: float = 0.1, rgbxy_rgb_scale: float = 0.1, rgbxy_xy_scale: float = 0.01,
                        color_range: float = 255.0, min_mass: float = 1e-6) -> SuperpixelFeatures:
    """Scatter-mean of the scaled position/colour 7-vector over every superpixel.

    Parameters
    ----------
    image : (B, 3, H, W) float tensor
        RGB in [0, 1] at the resolution of ``assignment``.
    assignment : sin.pooling.Assignment
        Hard (:meth:`~sin.pooling.Assignment.from_labels`) or soft
        (:func:`sin.interpolation.soft_interpolate`); gradients flow into soft weights.
    pixel_valid : (B, H, W) bool tensor, optional
        Pixels to use (padding of a batch of different-size images is ``False``).
    xy_scale, rgbxy_rgb_scale, rgbxy_xy_scale, color_range : float
        See :func:`pixel_features`.
    min_mass : float
        Slots with less total weight are empty.

    Returns
    -------
    SuperpixelFeatures
    """
    image = _check_image(image)
    if image.shape[-2] == 0 or image.shape[-1] == 0 or assignment.num_superpixels < 1:
        raise ValueError(f"superpixel features need a non-empty image and label map, got image "
                         f"{tuple(image.shape)} with {assignment.num_superpixels} superpixels")
    if assignment.shape != tuple(image.shape[-2:]):
        raise ValueError(f"assignment is {assignment.shape}, image is {tuple(image.shape[-2:])}: "
                         "superpixels must be given at the image's resolution")
    feats = pixel_features(image, xy_scale=xy_scale, rgbxy_rgb_scale=rgbxy_rgb_scale,
                           rgbxy_xy_scale=rgbxy_xy_scale, color_range=color_range)
    pooled, mass = superpixel_pool(feats, _mask_assignment(assignment, pixel_valid))
    mask = mass > min_mass
    pooled = pooled * mask.unsqueeze(1).to(pooled.dtype)
    return SuperpixelFeatures(features=pooled, mass=mass, mask=mask)


def grid_coordinates(n_grid: int, n_pixels: int, *, align_corners: bool = True) -> torch.Tensor:
    """Float pixel coordinate of each of ``n_grid`` feature samples along an axis of ``n_pixels``.

    ``align_corners=True`` is TF DeepLab's convention (first and last samples on the first and
    last pixels: ``i * (n_pixels - 1) / (n_grid - 1)``; exactly ``8 i`` for 8k+1 inputs, the
    original's Interp layer); ``False`` is the half-pixel convention of torchvision models.
    """
    i = torch.arange(n_grid, dtype=torch.float64)
    if align_corners:
        return i * ((n_pixels - 1) / max(n_grid - 1, 1))
    return (i + 0.5) * (n_pixels / n_grid) - 0.5


def _grid_pixel_index(grid_sizes: torch.Tensor, image_sizes: torch.Tensor, grid_shape, width: int,
                      align_corners: bool):
    """Flat pixel index ``(B, h*w)`` of every grid point and its validity (inside the image's grid)."""
    gh, gw = grid_shape
    b = grid_sizes.shape[0]
    flat = torch.zeros((b, gh * gw), dtype=torch.long)
    valid = torch.zeros((b, gh * gw), dtype=torch.bool)
    for i in range(b):  # a handful of images: per-image coordinate vectors, no per-pixel Python loop
        hb, wb = (int(v) for v in grid_sizes[i])
        Hb, Wb = (int(v) for v in image_sizes[i])
        rows = grid_coordinates(hb, Hb, align_corners=align_corners).round().clamp(0, Hb - 1).long()
        cols = grid_coordinates(wb, Wb, align_corners=align_corners).round().clamp(0, Wb - 1).long()
        idx = torch.zeros((gh, gw), dtype=torch.long)
        idx[:hb, :wb] = rows[:, None] * width + cols[None, :]
        ok = torch.zeros((gh, gw), dtype=torch.bool)
        ok[:hb, :wb] = True
        flat[i], valid[i] = idx.reshape(-1), ok.reshape(-1)
    return flat, valid


def grid_assignment(assignment: Assignment, grid_shape, *, image_sizes=None, grid_sizes=None,
                    align_corners: bool = True):
    """The assignment at the trunk's coarse feature grid points (BI6 sources).

    Grid point ``(a, b)`` of an image with ``h x w`` feature samples and ``H x W`` pixels sits on
    pixel ``(round(ya), round(xb))`` with ``ya, xb`` from :func:`grid_coordinates`; it carries
    the features of the superpixel(s) of that pixel (the original smears superpixel features to
    pixels and samples every 8th pixel, spec section 2 items 3 and 5).

    Parameters
    ----------
    assignment : Assignment
        ``(B, S, H, W)`` at image resolution.
    grid_shape : (int, int)
        ``(h, w)`` of the (padded) feature tensor.
    image_sizes, grid_sizes : (B, 2) array_like, optional
        Per-image valid ``(H_b, W_b)`` and ``(h_b, w_b)`` when a batch is padded; default: all
        images fill the tensors.
    align_corners : bool
        The trunk's convention relating feature samples and pixels.

    Returns
    -------
    grid : Assignment
        ``(B, S, h, w)``: index/weight of the superpixels of every grid point.
    valid : (B, h*w) bool tensor
        Grid points that exist (padding is ``False``).
    """
    b, s, H, W = assignment.index.shape
    gh, gw = (int(v) for v in grid_shape)
    image_sizes = torch.tensor([[H, W]] * b) if image_sizes is None else torch.as_tensor(image_sizes).cpu().long()
    grid_sizes = torch.tensor([[gh, gw]] * b) if grid_sizes is None else torch.as_tensor(grid_sizes).cpu().long()
    if image_sizes.shape != (b, 2) or grid_sizes.shape != (b, 2):
        raise ValueError(f"image_sizes and grid_sizes must be ({b}, 2), got {tuple(image_sizes.shape)} "
                         f"and {tuple(grid_sizes.shape)}")
    if (image_sizes[:, 0] > H).any() or (image_sizes[:, 1] > W).any() or (grid_sizes[:, 0] > gh).any() \
            or (grid_sizes[:, 1] > gw).any() or (image_sizes < 1).any() or (grid_sizes < 1).any():
        raise ValueError("image_sizes / grid_sizes must be positive and fit the tensors")
    flat, valid = _grid_pixel_index(grid_sizes, image_sizes, (gh, gw), W, align_corners)
    device = assignment.index.device
    flat, valid = flat.to(device), valid.to(device)
    gather = flat.unsqueeze(1).expand(b, s, -1)
    index = assignment.index.expand(b, -1, -1, -1).reshape(b, s, H * W).gather(2, gather)
    weight = assignment.weight.expand(b, -1, -1, -1).reshape(b, s, H * W).gather(2, gather)
    weight = weight * valid.unsqueeze(1).to(weight.dtype)
    grid = Assignment(index=index.reshape(b, s, gh, gw), weight=weight.reshape(b, s, gh, gw),
                      num_superpixels=assignment.num_superpixels)
    return grid, valid
