"""SIN superpixels for images of any size: ``superpixels(image, n_segments=600)``.

Pipeline (``../shared/specs/sin.md`` section 6): choose the seed grid ``n x m`` from the
requested count and the aspect ratio, resize the image to ``(16n-15) x (16m-15)`` (bicubic,
antialiased), predict the interpolation decisions, grow the label map, and resize it back to
the input size with nearest-neighbour sampling (pixel centres aligned).

Connectivity at the input resolution: nearest *up*-sampling maps every network pixel to a
non-empty block of contiguous output pixels and keeps neighbours adjacent, so 4-connectivity
is preserved exactly. Nearest *down*-sampling (network grid larger than the image along some
axis, e.g. more than ~600 superpixels on a 321x481 image) skips rows or columns and can split
a superpixel or drop it. In that case only, :func:`sin.connectivity.enforce_connectivity`
merges every stray fragment into the neighbour it shares the longest border with; the number
of pixels it changed is reported as ``n_repaired_pixels`` and the actual count as
``n_superpixels``.
"""

from __future__ import annotations

import threading
import time

import torch
import torch.nn.functional as F

from .checkpoint import load_model
from .connectivity import enforce_connectivity
from .fast_model import FastSIN
from .geometry import grid_shape, network_size
from .image import as_float_batch, as_float_rgb, check_n_segments
from .interpolation import hard_interpolate_decisions, logits_to_decisions
from .model import STEPS

__all__ = ["SINPredictor", "superpixels", "normalize_image", "IMAGE_MEAN", "resize_labels"]

#: Per-channel RGB mean subtracted from [0, 1] images (original code; no std division).
IMAGE_MEAN = (0.411, 0.432, 0.45)


def normalize_image(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> network input (mean subtracted)."""
    mean = torch.tensor(IMAGE_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x - mean


def _nearest_index(n_out: int, n_in: int, device) -> torch.Tensor:
    # centre-aligned nearest neighbour: out pixel i samples in pixel floor((i + 0.5) * n_in / n_out)
    idx = ((torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out)).floor()
    return idx.clamp_(0, n_in - 1).long()


def resize_labels(labels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest-neighbour resize of ``(B, h, w)`` integer labels to ``(B, height, width)``."""
    _, h, w = labels.shape
    if (h, w) == (height, width):
        return labels
    rows = _nearest_index(height, h, labels.device)
    cols = _nearest_index(width, w, labels.device)
    return labels[:, rows][:, :, cols]


class SINPredictor:
    """A loaded SIN network that turns images into superpixel label maps.

    Parameters
    ----------
    weights : str, path or None, optional
        See :func:`sin.checkpoint.load_model` (``None`` = the shipped weights).
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"``, ...
    fast : bool, optional
        Use the decision-only re-parametrisation :class:`sin.fast_model.FastSIN` (identical
        label maps, about twice as fast on CPU). ``False`` runs the plain network.

    Examples
    --------
    >>> predictor = SINPredictor(weights="untrained")
    >>> labels = predictor(np.random.rand(64, 80, 3), n_segments=20)
    >>> labels.shape, labels.dtype
    ((64, 80), dtype('int32'))
    """

    def __init__(self, weights=None, *, device="cpu", fast: bool = True):
        self.device = torch.device(device)
        self.model = load_model(weights).to(self.device).eval()
        self.trained = getattr(self.model, "trained", True)
        self.fast_model = FastSIN.from_model(self.model).to(self.device) if fast else None
        self._lock = threading.Lock()

    @torch.inference_mode()
    def decisions(self, x: torch.Tensor):
        """Per-step decisions for a network-sized, normalised batch."""
        if self.fast_model is not None:
            return self.fast_model(x)
        return [logits_to_decisions(lg, s[1]) for s, lg in zip(STEPS, self.model(x))]

    @torch.inference_mode()
    def label_batch(self, images: torch.Tensor, n_segments: int = 600):
        """Superpixels for a batch tensor.

        Parameters
        ----------
        images : (B, 3, H, W) or (3, H, W) tensor
            uint8 or float in [0, 1]; moved to the predictor's device.
        n_segments : int
            Requested number of superpixels per image.

        Returns
        -------
        labels : (B, H, W) int32 tensor on the predictor's device
            Labels ``0..K_b-1`` per image, every superpixel 4-connected.
        info : dict
            ``grid`` (n, m), ``network_size``, ``n_superpixels`` (list per image),
            ``n_repaired_pixels`` (list per image).
        """
        x = as_float_batch(images).to(self.device)
        k = check_n_segments(n_segments)
        b, _, h, w = x.shape
        n, m = grid_shape(k, h, w)
        hn, wn = network_size(n, m)
        if (hn, wn) != (h, w):
            x = F.interpolate(x, size=(hn, wn), mode="bicubic", align_corners=False,
                              antialias=True).clamp_(0.0, 1.0)
        with self._lock:  # FastSIN reuses no state, but keep one forward at a time per device
            dec = self.decisions(normalize_image(x))
        labels = hard_interpolate_decisions(dec, n, m)
        labels = resize_labels(labels, h, w)
        n_repaired = [0] * b
        counts = [n * m] * b
        if hn > h or wn > w:  # down-sampling along some axis may break connectivity
            out = []
            for i in range(b):
                lab, changed = enforce_connectivity(labels[i].cpu().numpy())
                out.append(torch.from_numpy(lab))
                n_repaired[i] = changed
                counts[i] = int(lab.max()) + 1
            labels = torch.stack(out).to(self.device)
        info = {"grid": (n, m), "network_size": (hn, wn), "n_superpixels": counts,
                "n_repaired_pixels": n_repaired}
        return labels.to(torch.int32), info

    def __call__(self, image, n_segments: int = 600, *, channel_axis: int | None = -1,
                 return_info: bool = False):
        """Superpixels of one numpy image; see :func:`superpixels`."""
        t0 = time.perf_counter()
        rgb = as_float_rgb(image, channel_axis=channel_axis)
        x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
        labels, info = self.label_batch(x, n_segments)
        out = labels[0].cpu().numpy()
        if not return_info:
            return out
        info = {"grid": info["grid"], "network_size": info["network_size"],
                "n_superpixels": info["n_superpixels"][0],
                "n_repaired_pixels": info["n_repaired_pixels"][0],
                "seconds": time.perf_counter() - t0, "trained": self.trained}
        return out, info

    def logits(self, images: torch.Tensor, n_segments: int = 600):
        """Network logits (with autograd) for a batch resized to the grid of ``n_segments``.

        Returns the list of 8 logit tensors and the resized batch; combine with
        :func:`sin.interpolation.soft_interpolate` for end-to-end training.
        """
        x = as_float_batch(images).to(self.device)
        n, m = grid_shape(check_n_segments(n_segments), *x.shape[-2:])
        x = F.interpolate(x, size=network_size(n, m), mode="bicubic", align_corners=False,
                          antialias=True).clamp(0.0, 1.0)
        return self.model(normalize_image(x)), x


_PREDICTORS: dict = {}
_PREDICTORS_LOCK = threading.Lock()


def _get_predictor(weights, device) -> SINPredictor:
    key = (str(weights), str(device))
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            _PREDICTORS[key] = SINPredictor(weights, device=device)
        return _PREDICTORS[key]


def superpixels(image, n_segments: int = 600, *, weights=None, device="cpu",
                channel_axis: int | None = -1, return_info: bool = False):
    """SIN superpixels of an image.

    Parameters
    ----------
    image : array_like or torch.Tensor
        ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA (alpha dropped) or ``(H, W)`` grayscale; uint8 or
        float in [0, 1]. A torch tensor ``(B, 3, H, W)`` is processed as a batch on ``device``.
    n_segments : int, optional
        Requested number of superpixels. The actual count is ``n * m`` for the seed grid
        chosen by :func:`sin.geometry.grid_shape` (e.g. 600 -> 20 x 30 on 321 x 481), except
        when down-sampling to a small image drops superpixels (see the module notes).
    weights : str or path, optional
        Network weights; ``None`` = the shipped weights.
    device : str, optional
        Torch device.
    channel_axis : int or None, optional
        Axis of the colour channels in ``image`` (``None`` for grayscale).
    return_info : bool, optional
        Also return a dict with ``n_superpixels``, ``grid``, ``network_size``,
        ``n_repaired_pixels`` and ``seconds``.

    Returns
    -------
    labels : (H, W) int32 ndarray, or (B, H, W) int32 tensor for a tensor batch
        Superpixel ids ``0..K-1``; every superpixel is 4-connected.

    Raises
    ------
    ValueError
        Bad image (shape, channels, dtype, NaN/inf, empty or single pixel) or ``n_segments``.
    """
    predictor = _get_predictor(weights, device)
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        t0 = time.perf_counter()
        labels, info = predictor.label_batch(image, n_segments)
        info["seconds"] = time.perf_counter() - t0
        return (labels, info) if return_info else labels
    return predictor(image, n_segments, channel_axis=channel_axis, return_info=return_info)

