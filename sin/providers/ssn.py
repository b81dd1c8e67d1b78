"""``ssn``: Superpixel Sampling Networks (Jampani et al., ECCV 2018), deep variant, on CPU.

A deep comparison method (an *extra*, not in the SIN paper's tables). Pipeline:

1. Input: CIELAB colour (``skimage.color.rgb2lab``) times ``color_scale = 0.26`` and the pixel
   coordinates ``(y, x)`` times ``pos_scale * max(s / H, s / W)`` with ``s = int(sqrt(K))`` and
   ``pos_scale = 2.5``: the scaling of the training/evaluation code of the weights
   (``vvarga90/ssn-pytorch-optflow``; the original NVlabs code uses the same 0.26 / 2.5 with the
   grid counts per axis instead of ``sqrt(K)``: ``pos_scale = max(n / H, m / W) / 0.4``).
   Channel order ``[L, a, b, y, x]`` as in that code (the weights' README says "XY+Lab" loosely;
   the order matters for the first convolution).
2. :class:`SSNFeatureNet` (215k parameters): two 3x3 conv-BN-ReLU at full, half and quarter
   resolution (max-pool 3/2), bilinear up-sampling, concatenation with the input, a 3x3 conv to 15
   channels (no ReLU), and the 5 scaled input channels appended: 20-D pixel features.
3. :func:`ssn_iterations`, the differentiable SLIC of SSN: centroids start as the cell means of a
   regular ``n x m`` grid; every pixel is softly assigned to the 9 centroids of its own and the
   8 surrounding initial cells, ``softmax(-||f_p - c_k||)``, and centroids are re-estimated as the
   affinity-weighted means; ``n_iter = 10`` rounds (SSN's test-time setting). The hard label of a
   pixel is the argmax of its last soft assignment.
4. Connectivity (``connectivity="post-processing"``): :func:`sin.connectivity.enforce_connectivity`
   merges every stray fragment into the region it shares the longest border with.

Deviations from the reference code, and why
-------------------------------------------
* Distance: ``||f_p - c_k||`` (Euclidean, not squared) as in the code the weights were trained
  with (the original SSN uses the squared distance; these weights expect the plain norm).
* Neighbour cells are the 3x3 block of the 2-D grid. The reference code checks neighbours on the
  flattened cell index only, so a pixel in the first grid column also "sees" the last cell of the
  previous grid row (far away, so its affinity is ~0); we exclude such wrap-around cells.
* Grid: :func:`sin.geometry.grid_shape` (rounded, e.g. 20 x 30 = 600 on 321 x 481) instead of
  the reference's floored ``int(sqrt(K H / W)) x int(sqrt(K W / H))`` (20 x 29 = 580), so that the
  count matches the request as for the other providers.
* Connectivity: the shared :func:`~sin.connectivity.enforce_connectivity` (4-connectivity
  guaranteed and tested) instead of scikit-image's private ``_enforce_label_connectivity_cython``
  used by the reference inference code (and NVlabs'), which also absorbs connected segments
  smaller than 6 % of the mean size. On 20 BSDS500 test images at K = 600 only 0.2 such segments
  per image remain, so the two rules give practically the same maps.

Weights are never shipped: ``weights=`` path, else ``$SIN_SSN_WEIGHTS``, else
``<repo>/../shared/weights/ssn_deep_bsds500.pth`` (MIT, vvarga90/ssn-pytorch-optflow, trained on
BSDS500 train/val).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import rgb2lab
from torch import nn

from ..checkpoint import load_torch_file
from ..connectivity import enforce_connectivity
from ..geometry import grid_shape
from .params import Float, Int
from .registry import register_provider
from .weights import WeightsInfo

__all__ = [
    "SSNFeatureNet",
    "default_ssn_weights",
    "load_ssn_model",
    "ssn_input",
    "ssn_iterations",
    "ssn_superpixels",
    "COLOR_SCALE",
    "POS_SCALE",
]

#: Colour scale of the Lab channels (SSN, NVlabs and vvarga90 code).
COLOR_SCALE = 0.26
#: Position scale: coordinates are multiplied by ``POS_SCALE * max(s / H, s / W)``, ``s = int(sqrt(K))``.
POS_SCALE = 2.5
_WEIGHTS_ENV = "SIN_SSN_WEIGHTS"


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class _FeatureExtract(nn.Module):
    def __init__(self, in_ch: int = 5, mid_ch: int = 64, out_ch: int = 15):
        super().__init__()
        self.scale1 = nn.Sequential(_conv_bn_relu(in_ch, mid_ch), _conv_bn_relu(mid_ch, mid_ch))
        self.scale2 = nn.Sequential(nn.MaxPool2d(3, 2, padding=1), _conv_bn_relu(mid_ch, mid_ch),
                                    _conv_bn_relu(mid_ch, mid_ch))
        self.scale3 = nn.Sequential(nn.MaxPool2d(3, 2, padding=1), _conv_bn_relu(mid_ch, mid_ch),
                                    _conv_bn_relu(mid_ch, mid_ch))
        # no ReLU after the output conv (the weights' authors removed it: features may be negative)
        self.output_conv = nn.Sequential(nn.Conv2d(3 * mid_ch + in_ch, out_ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.scale1(x)
        s2 = self.scale2(s1)
        s3 = self.scale3(s2)
        size = s1.shape[-2:]
        s2 = F.interpolate(s2, size=size, mode="bilinear", align_corners=False)
        s3 = F.interpolate(s3, size=size, mode="bilinear", align_corners=False)
        return torch.cat([self.output_conv(torch.cat([x, s1, s2, s3], 1)), x], 1)


class SSNFeatureNet(nn.Module):
    """SSN's deep pixel-feature network: ``(B, 5, H, W)`` scaled ``[L, a, b, y, x]`` -> ``(B, 20, H, W)``.

    The 20 features are 15 learned channels followed by the 5 input channels (as in SSN). The
    state-dict layout (``feature_extract.scale1.0.0.weight`` ...) is that of the reference code.
    """

    in_channels = 5
    out_channels = 20

    def __init__(self):
        super().__init__()
        self.feature_extract = _FeatureExtract()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_extract(x)


def default_ssn_weights() -> Path:
    """``$SIN_SSN_WEIGHTS`` if set, else ``<repo>/../shared/weights/ssn_deep_bsds500.pth``."""
    from ..paths import resolve, weights_root

    return resolve(None, _WEIGHTS_ENV, weights_root() / "ssn_deep_bsds500.pth")


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def load_ssn_model(weights=None) -> SSNFeatureNet:
    """The SSN feature network with the given weights (path; ``None``: :func:`default_ssn_weights`), eval mode.

    Loaded models are cached per (path, modification time, size).

    Raises
    ------
    FileNotFoundError
        The weights file does not exist.
    ValueError
        The file is not a torch state dict of this network (wrong keys/shapes, corrupted, non-finite).
    """
    path = Path(weights) if weights is not None else default_ssn_weights()
    if not path.is_file():
        raise FileNotFoundError(
            f"SSN weights not found: {path}. Pass weights=<path to ssn_deep_bsds500.pth> or set ${_WEIGHTS_ENV} "
            "(the deep SSN BSDS500 model of vvarga90/ssn-pytorch-optflow, see ../shared/weights/README.md)")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    state = load_torch_file(path, "SSN weights")
    model = SSNFeatureNet()
    own = model.state_dict()
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{path} does not hold SSN deep-feature weights: {len(missing)} missing "
                         f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{path}: {k!r} has shape {tuple(getattr(v, 'shape', ()))}, expected {tuple(own[k].shape)}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{path}: {k!r} has non-finite values (corrupted weights?)")
    model.load_state_dict(state)
    # channels-last runs these 64-channel 3x3 convolutions about twice as fast on CPU (oneDNN)
    model = model.to(memory_format=torch.channels_last).eval()
    with _CACHE_LOCK:
        _CACHE[key] = model
    return model


def ssn_input(image: np.ndarray, n_segments: int, *, color_scale: float = COLOR_SCALE,
              pos_scale: float = POS_SCALE) -> torch.Tensor:
    """Network input ``(1, 5, H, W)``: ``[color_scale * Lab, pos * y, pos * x]``, see the module docstring."""
    h, w = image.shape[:2]
    lab = rgb2lab(image).astype(np.float32)
    s = int(math.sqrt(n_segments))
    pos = pos_scale * max(s / h, s / w)
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    x = np.concatenate([color_scale * lab, pos * yy[..., None], pos * xx[..., None]], axis=-1)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def _cell_blocks(size: int, cells: int, device) -> torch.Tensor:
    """``(cells, max_len)`` pixel indices of every initial cell along one axis (-1 = padding).

    A pixel ``y`` belongs to cell ``floor(y * cells / size)`` (SSN's ``int(y / (size / cells))``).
    """
    cell = torch.clamp((torch.arange(size, device=device, dtype=torch.float64) * cells / size).long(), max=cells - 1)
    counts = torch.bincount(cell, minlength=cells)
    start = torch.cumsum(counts, 0) - counts
    length = int(counts.max())
    pos = start[:, None] + torch.arange(length, device=device)[None, :]
    return torch.where(torch.arange(length, device=device)[None, :] < counts[:, None], pos, torch.full_like(pos, -1))


#: the 3x3 neighbourhood of a cell, row-major: (dy, dx) = (-1,-1), (-1,0), ..., (1,1)
_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def ssn_iterations(features: torch.Tensor, grid: tuple[int, int], n_iter: int = 10):
    """SSN's differentiable SLIC on pixel features ``(C, H, W)`` with an ``n x m`` initial grid.

    Every pixel is softly assigned to the centroids of the 3x3 block of initial grid cells around
    its own cell, ``softmax_k(-||f_p - c_k||)``; centroids are then the affinity-weighted pixel
    means. Initial centroids: the cell means (``adaptive_avg_pool2d``, as in SSN).

    Returns
    -------
    labels : (H, W) int64 tensor
        Hard assignment (argmax of the last soft assignment), cell index ``row * m + col``.
    affinity : (9, H, W) tensor
        Last soft assignment of every pixel to its 3x3 neighbourhood of cells (row-major offsets
        ``(-1,-1), (-1,0), ... (1,1)``; 0 for cells outside the grid); sums to 1 over axis 0.
    centroids : (C, n * m) tensor
        Final superpixel features (updated after the last assignment).

    Notes
    -----
    Differentiable in ``features`` (the hard labels are not). Pixels are regrouped once into
    per-cell blocks (padded to the largest cell), so that one iteration is two batched matrix
    products over cells — ``(pixels of a cell) x (its 9 candidate centroids)`` — plus 9 shifted
    sums on the small cell grid; memory ``O(9 H W)``, never a dense pixel x superpixel matrix.
    Squared distances are expanded as ``|f|^2 + |c|^2 - 2 f.c`` after subtracting each cell's
    initial centroid from both sides, which keeps the cancellation error small.
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 3:
        raise ValueError(f"features must be a (C, H, W) tensor, got {getattr(features, 'shape', type(features))}")
    c, h, w = features.shape
    n, m = int(grid[0]), int(grid[1])
    if not (1 <= n <= h and 1 <= m <= w):
        raise ValueError(f"grid {n}x{m} does not fit an image of {h}x{w} pixels")
    if int(n_iter) < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    device, k = features.device, n * m

    # ---- pixel blocks per cell (fixed): pix[cell, s] = flat pixel index or -1
    rows, cols = _cell_blocks(h, n, device), _cell_blocks(w, m, device)           # (n, hb), (m, wb)
    hb, wb = rows.shape[1], cols.shape[1]
    pix = rows[:, None, :, None] * w + cols[None, :, None, :]                        # (n, m, hb, wb)
    inside = (rows[:, None, :, None] >= 0) & (cols[None, :, None, :] >= 0)
    pix = torch.where(inside, pix, torch.zeros_like(pix)).reshape(k, hb * wb)
    inside = inside.reshape(k, hb * wb)
    fb = features.reshape(c, h * w).t()[pix] * inside[..., None]                       # (K, S, C)

    # ---- which of the 9 neighbour cells exist, per cell
    iy = torch.arange(n, device=device)[:, None]
    ix = torch.arange(m, device=device)[None, :]
    nb_valid = torch.stack([((iy + dy >= 0) & (iy + dy < n) & (ix + dx >= 0) & (ix + dx < m)).expand(n, m)
                            for dy, dx in _NEIGHBOURS], -1)

    centroids = F.adaptive_avg_pool2d(features[None], (n, m))[0]                       # (C, n, m)
    ref = centroids.detach().reshape(c, k).t()                                        # (K, C) centring
    fct = (fb - ref[:, None, :]).transpose(1, 2).contiguous()                         # (K, C, S)
    f2 = fct.pow(2).sum(1, keepdim=True)                                              # (K, 1, S)
    nb_valid = nb_valid.reshape(k, 9, 1)
    affinity = None
    for _ in range(int(n_iter)):
        padded = F.pad(centroids, (1, 1, 1, 1))
        nbr = torch.stack([padded[:, 1 + dy:1 + dy + n, 1 + dx:1 + dx + m] for dy, dx in _NEIGHBOURS], 0)
        nbr = (nbr.reshape(9, c, k).permute(2, 0, 1) - ref[:, None, :]).contiguous()  # (K, 9, C)
        # (K, 9, S): candidates on the middle axis, so the 9-way softmax is vectorised over pixels
        d2 = f2 + nbr.pow(2).sum(-1, keepdim=True) - 2.0 * torch.bmm(nbr, fct)
        # Euclidean (not squared) distance, as the weights were trained; eps keeps the gradient finite
        dist = torch.sqrt(d2.clamp_min(0.0) + 1e-12).masked_fill(~nb_valid, float("inf"))
        affinity = torch.softmax(-dist, dim=1) * inside[:, None, :]                   # padding pixels: 0
        contrib = torch.bmm(affinity, fb)                                              # (K, 9, C)
        mass = affinity.sum(2, keepdim=True)                                           # (K, 9, 1)
        # contribution (cell, o) belongs to cell + offset o: shift back onto the grid and sum
        contrib = torch.cat([contrib, mass], -1).reshape(n, m, 9, c + 1).permute(2, 3, 0, 1)
        acc = sum(F.pad(contrib[o], (1 + dx, 1 - dx, 1 + dy, 1 - dy)) for o, (dy, dx) in enumerate(_NEIGHBOURS))
        acc = acc[:, 1:-1, 1:-1]
        centroids = acc[:c] / (acc[c:] + 1e-16)

    # ---- back to pixels
    best = affinity.argmax(1)                                                          # (K, S)
    dy = torch.tensor([o[0] for o in _NEIGHBOURS], device=device)[best]
    dx = torch.tensor([o[1] for o in _NEIGHBOURS], device=device)[best]
    cell = torch.arange(k, device=device)[:, None]
    label_b = (cell // m + dy) * m + (cell % m + dx)
    flat = pix[inside]
    labels = torch.empty(h * w, dtype=torch.long, device=device)
    labels[flat] = label_b[inside]
    aff_pix = affinity.new_zeros(h * w, 9).index_copy(0, flat, affinity.transpose(1, 2)[inside])
    return labels.reshape(h, w), aff_pix.t().reshape(9, h, w), centroids.reshape(c, k)


# max_pixels: 4 MP, the limit of the earlier central table (dense 20-channel features per pixel)
@register_provider("ssn", connected=True, connectivity="post-processing", extra=True, version="1",
                   max_pixels=4_000_000,
                   description="SSN deep superpixels (Jampani et al. 2018), BSDS500 weights, connectivity enforced",
                   params={"n_iter": Int(1, 1000, help="differentiable-SLIC iterations"),
                           "color_scale": Float(0, low_open=True, help="scale of the Lab input"),
                           "pos_scale": Float(0, help="scale of the position input (compactness)")},
                   weights=WeightsInfo(param="weights", default=default_ssn_weights,
                                       source="vvarga90/ssn-pytorch-optflow, deep SSN trained on BSDS500",
                                       licence="MIT"))
def ssn_superpixels(image: np.ndarray, n_segments: int, *, weights=None, n_iter: int = 10,
                    color_scale: float = COLOR_SCALE, pos_scale: float = POS_SCALE) -> np.ndarray:
    """SSN superpixels of a float RGB image in [0, 1] (``(H, W)`` labels, 4-connected).

    Parameters
    ----------
    weights : str or Path, optional
        ``ssn_deep_bsds500.pth``; default ``$SIN_SSN_WEIGHTS`` or ``<repo>/../shared/weights/``.
    n_iter : int
        Differentiable-SLIC iterations (SSN: 5 in training, 10 at test time).
    color_scale, pos_scale : float
        Input scaling (see the module docstring); ``pos_scale`` trades compactness for adherence.
    """
    model = load_ssn_model(weights)
    h, w = image.shape[:2]
    grid = grid_shape(n_segments, h, w)
    with torch.inference_mode():
        x = ssn_input(image, n_segments, color_scale=color_scale, pos_scale=pos_scale)
        feats = model(x.contiguous(memory_format=torch.channels_last))[0]
        labels, _, _ = ssn_iterations(feats, grid, n_iter=int(n_iter))
    labels, _ = enforce_connectivity(labels.numpy())
    return labels
