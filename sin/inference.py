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

Precision (``precision=``): ``"fp32"`` is the reference (its labels are the ones the tests and
the published tables use). ``"bf16"`` runs the network in bfloat16 (image resize, interpolation
and label resize stay exact); on a CPU with native bf16 (AVX512-BF16 or AMX) it is about twice
as fast and labels 99 % of BSDS500 pixels as fp32 does with the same ASA
(``results/precision/``). ``"auto"`` (default) picks bf16 only where the hardware runs it
natively and fp32 elsewhere; :func:`resolve_precision` says which and why.

Size limit: the network input is ``(16n - 15) x (16m - 15)`` whatever the image size, so a huge
count on a small image would need a network input far larger than the image (K = 10**6 on
481 x 321 asks for a 5121 x 7681 input, over 7 GB). The grid is shrunk until the input has at
most ``max(MAX_NETWORK_PIXELS, H * W)`` pixels (8.4 M, or the image's own size if larger) and
a ``UserWarning`` says so; ``return_info`` reports the count actually produced.
"""

from __future__ import annotations

import copy
import math
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_model
from .connectivity import enforce_connectivity
from .fingerprint import file_sha256
from .fast_model import FastSIN
from .geometry import grid_shape, network_size
from .image import as_float_batch, check_n_segments, rgb_view
from .interpolation import hard_interpolate_decisions, logits_to_decisions
from .model import STEPS

__all__ = ["SINPredictor", "superpixels", "normalize_image", "IMAGE_MEAN", "resize_labels",
           "resolve_precision", "PRECISIONS", "MAX_NETWORK_PIXELS"]

#: Accepted values of ``precision``.
PRECISIONS = ("auto", "bf16", "fp32")

#: Largest network input (pixels) :func:`superpixels` builds, unless the image itself is larger:
#: 2**23 = 8.4 M, e.g. 2897 x 2897. Larger requests shrink the seed grid (with a warning).
MAX_NETWORK_PIXELS = 1 << 23

#: Per-channel RGB mean subtracted from [0, 1] images (original code; no std division).
IMAGE_MEAN = (0.411, 0.432, 0.45)


def _cpu_bf16_native() -> tuple[bool, str]:
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    have = [f for f in ("avx512_bf16", "amx_bf16") if f" {f}" in flags]
    if have:
        return True, "CPU has " + " and ".join(have)
    if not flags:  # no /proc/cpuinfo (macOS, Windows): ask oneDNN, which knows the ISA
        try:
            if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
                isa = torch.backends.cpu.get_cpu_capability()
                if isa.startswith("AVX512") or "AMX" in isa:
                    return True, f"oneDNN reports bf16 support ({isa})"
        except (AttributeError, RuntimeError):
            pass
    return False, "CPU has neither AVX512-BF16 nor AMX (bf16 would be emulated and slower)"


_RESOLVED: dict = {}


def resolve_precision(precision: str = "auto", device="cpu", *, explain: bool = False):
    """The precision SIN runs with: ``"fp32"`` or ``"bf16"`` (and why, with ``explain=True``).

    ``"auto"`` gives ``"bf16"`` only where it runs natively: a CPU with AVX512-BF16 or AMX
    (``/proc/cpuinfo`` flags ``avx512_bf16`` / ``amx_bf16``), or a CUDA GPU that supports bf16
    (compute capability 8.0 or newer); otherwise ``"fp32"``. The answer depends only on the
    machine and the device, so it is deterministic per machine (it enters the ``sin``
    provider's fingerprint).

    >>> resolve_precision("fp32")
    'fp32'
    >>> resolve_precision("auto", explain=True)  # doctest: +SKIP
    ('bf16', 'auto: CPU has avx512_bf16')
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    if precision != "auto":
        return (precision, f"{precision} requested") if explain else precision
    dev = torch.device(device)
    key = (dev.type, dev.index)
    if key not in _RESOLVED:
        if dev.type == "cuda":
            ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
            why = ("GPU supports bf16 natively" if ok else "GPU has no native bf16")
        elif dev.type == "cpu":
            ok, why = _cpu_bf16_native()
        else:
            ok, why = False, f"device type {dev.type!r}: bf16 not known to be native"
        _RESOLVED[key] = ("bf16" if ok else "fp32", "auto: " + why)
    return _RESOLVED[key] if explain else _RESOLVED[key][0]


def normalize_image(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> network input (mean subtracted)."""
    mean = torch.tensor(IMAGE_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x - mean


def _nearest_index(n_out: int, n_in: int, device) -> torch.Tensor:
    # centre-aligned nearest neighbour: out pixel i samples in pixel floor((i + 0.5) * n_in / n_out)
    idx = ((torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out)).floor()
    return idx.clamp_(0, n_in - 1).long()


def resize_labels(labels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest-neighbour resize of ``(B, h, w)`` integer labels to ``(B, height, width)``.

    The result is int32 (labels are below ``h * w`` < 2**31): the small map is narrowed
    first, so the full-size gathers move 4-byte values (half the memory traffic of int64 on a
    4000 x 3000 output).
    """
    _, h, w = labels.shape
    labels = labels.to(torch.int32)
    if (h, w) == (height, width):
        return labels
    rows = _nearest_index(height, h, labels.device)
    cols = _nearest_index(width, w, labels.device)
    return labels.index_select(2, cols).index_select(1, rows)


def _limit_grid(k: int, h: int, w: int) -> tuple[int, int, int]:
    """Seed grid for ``k`` on ``h x w`` with a network input of at most
    ``max(MAX_NETWORK_PIXELS, h * w)`` pixels (decided before anything is allocated)."""
    limit = max(MAX_NETWORK_PIXELS, h * w)
    n, m = grid_shape(k, h, w)
    hn, wn = network_size(n, m)
    if hn * wn <= limit:
        return n, m, k
    k_max = k
    while hn * wn > limit:  # shrink the request; 1-3 rounds in practice
        k_max = max(1, min(k_max - 1, int(k_max * limit / (hn * wn))))
        n, m = grid_shape(k_max, h, w)
        hn, wn = network_size(n, m)
    warnings.warn(f"SIN: n_segments={k} on a {h}x{w} image needs a network input over "
                  f"{limit} pixels; using a {n}x{m} grid ({n * m} superpixels) instead",
                  UserWarning, stacklevel=4)
    return n, m, k_max


def _unit_tensor(arr: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` array of a checked dtype -> ``(1, 3, H, W)`` float32 in [0, 1], one value scan.

    The values are those of :func:`sin.image.as_float_rgb` bit for bit (same float32 division),
    and the tensor has the channels-last strides the numpy path always produced, so the
    resize that follows computes exactly what it did before.
    """
    if arr.dtype in (np.uint8, np.uint16, np.bool_):
        # numpy's cast is 2-3x faster than torch's single-threaded uint8 -> float32 on a 12 MP
        # image; the division is the one as_float_rgb always did (float32 / 255.0), bit for bit
        f = arr.astype(np.float32, order="C")
        if arr.dtype != np.bool_:
            f /= 255.0 if arr.dtype == np.uint8 else 65535.0
        return torch.from_numpy(f).permute(2, 0, 1).unsqueeze(0)
    if any(st < 0 for st in arr.strides):
        arr = np.ascontiguousarray(arr)  # torch.from_numpy needs positive strides
    with warnings.catch_warnings():  # read-only input (e.g. np.asarray(PIL image)): we never write to it,
        warnings.simplefilter("ignore", UserWarning)  # every path below makes new tensors first
        t = torch.from_numpy(arr)
    # floating (rgb_view checked the dtype): one aminmax pass checks NaN/inf and the range
    x = t.to(torch.float32)
    lo, hi = (float(v) for v in torch.aminmax(x))  # NaN propagates into both
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("image contains NaN or infinite values")
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"float image must have values in [0, 1]; got range [{lo:.4g}, {hi:.4g}] "
                         "(pass uint8 for 0..255 data)")
    if lo < 0.0 or hi > 1.0:
        x = x.clamp(0.0, 1.0)
    if not x.is_contiguous():
        x = x.contiguous()
    return x.permute(2, 0, 1).unsqueeze(0)


class SINPredictor:
    """A loaded SIN network that turns images into superpixel label maps.

    Parameters
    ----------
    weights : str, path, dict or None, optional
        See :func:`sin.checkpoint.load_model` (``None`` = the shipped weights).
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"``, ...
    fast : bool, optional
        Use the decision-only re-parametrisation :class:`sin.fast_model.FastSIN` (identical
        label maps, about twice as fast on CPU). ``False`` runs the plain network.
    precision : {"auto", "bf16", "fp32"}, optional
        Network arithmetic (see the module notes and :func:`resolve_precision`); resolved once
        here, available as :attr:`precision` (and :attr:`precision_reason`).

    Examples
    --------
    >>> predictor = SINPredictor(weights="untrained", precision="fp32")
    >>> labels = predictor(np.random.rand(64, 80, 3), n_segments=20)
    >>> labels.shape, labels.dtype
    ((64, 80), dtype('int32'))
    """

    def __init__(self, weights=None, *, device="cpu", fast: bool = True, precision: str = "auto"):
        self.device = torch.device(device)
        self.precision, self.precision_reason = resolve_precision(precision, self.device, explain=True)
        self.dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.model = load_model(weights).to(self.device).eval()
        self.trained = getattr(self.model, "trained", True)
        self.fast_model = FastSIN.from_model(self.model).to(self.device, self.dtype) if fast else None
        # the plain path in bf16 runs a cast copy: self.model stays fp32 for logits() and training
        self._plain = None if fast else (self.model if self.dtype == torch.float32
                                         else copy.deepcopy(self.model).to(self.dtype))
        self._lock = threading.Lock()

    @torch.inference_mode()
    def decisions(self, x: torch.Tensor):
        """Per-step decisions for a network-sized, normalised batch (cast to :attr:`dtype`)."""
        x = x.to(self.dtype)
        if self.fast_model is not None:
            return self.fast_model(x)
        return [logits_to_decisions(lg.float(), s[1]) for s, lg in zip(STEPS, self._plain(x))]

    @torch.inference_mode()
    def label_batch(self, images: torch.Tensor, n_segments: int = 600):
        """Superpixels for a batch tensor.

        Parameters
        ----------
        images : (B, 3, H, W) or (3, H, W) tensor
            uint8 or float in [0, 1]; moved to the predictor's device.
        n_segments : int
            Requested number of superpixels per image (limited as in :func:`superpixels`).

        Returns
        -------
        labels : (B, H, W) int32 tensor on the predictor's device
            Labels ``0..K_b-1`` per image, every superpixel 4-connected.
        info : dict
            ``grid`` (n, m), ``network_size``, ``n_superpixels`` (list per image),
            ``n_repaired_pixels`` (list per image), ``precision``.
        """
        return self._label_checked(as_float_batch(images).to(self.device), n_segments)

    def _label_checked(self, x: torch.Tensor, n_segments):
        """``label_batch`` for a float batch in [0, 1] that is already validated."""
        k = check_n_segments(n_segments)
        b, _, h, w = x.shape
        n, m, _ = _limit_grid(k, h, w)
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
                "n_repaired_pixels": n_repaired, "precision": self.precision}
        return labels.to(torch.int32), info

    @torch.inference_mode()
    def __call__(self, image, n_segments: int = 600, *, channel_axis: int | None = -1,
                 return_info: bool = False):
        """Superpixels of one numpy image; see :func:`superpixels`."""
        t0 = time.perf_counter()
        # one validation: shape/dtype here, the value scan (float input only) in _unit_tensor;
        # uint8 stays uint8 until it is converted straight into the resize's float input
        x = _unit_tensor(rgb_view(image, channel_axis=channel_axis)).to(self.device)
        labels, info = self._label_checked(x, n_segments)
        out = labels[0].cpu().numpy()
        if not return_info:
            return out
        info = {"grid": info["grid"], "network_size": info["network_size"],
                "n_superpixels": info["n_superpixels"][0],
                "n_repaired_pixels": info["n_repaired_pixels"][0],
                "seconds": time.perf_counter() - t0, "trained": self.trained,
                "precision": self.precision}
        return out, info

    def logits(self, images: torch.Tensor, n_segments: int = 600):
        """Network logits (with autograd, fp32 plain network) for a batch resized to the grid.

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
_MAX_CACHED = 8


def _weights_key(weights):
    """Cache key of a weights argument by **content**, or None (do not cache).

    A file is keyed by its sha256 (:func:`sin.fingerprint.file_sha256`, memoised on path, size,
    inode, mtime and ctime), so a file rewritten in place loads again, even when its modification
    time was set back (``cp -p``, ``rsync -t``: the kernel still moves the change time), and two
    copies share one network; a state dict is never cached (two different dicts can print the same).
    """
    if weights is None:
        from .checkpoint import DEFAULT_WEIGHTS

        weights = DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else "untrained"
    if isinstance(weights, str) and weights == "untrained":
        return "untrained"
    if isinstance(weights, (str, Path)):
        path = Path(weights)
        if not path.is_file():
            return None  # load_model raises the FileNotFoundError with its message
        return "sha256:" + file_sha256(path)
    return None


def _get_predictor(weights, device, precision="auto") -> SINPredictor:
    key = _weights_key(weights)
    if key is None:
        return SINPredictor(weights, device=device, precision=precision)
    dev = torch.device(device)
    key = (key, str(dev), resolve_precision(precision, dev))
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            if len(_PREDICTORS) >= _MAX_CACHED:  # bounded: a sweep over many weight files
                _PREDICTORS.pop(next(iter(_PREDICTORS)))
            _PREDICTORS[key] = SINPredictor(weights, device=device, precision=key[2])
        return _PREDICTORS[key]


def superpixels(image, n_segments: int = 600, *, weights=None, device="cpu", precision: str = "auto",
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
        when down-sampling to a small image drops superpixels (see the module notes). Limit:
        the network input is at most ``max(MAX_NETWORK_PIXELS, H * W)`` pixels (8.4 M, or
        the image's size if larger), i.e. about ``K <= 32,000`` superpixels up to 8 MP and one
        superpixel per 256 pixels beyond; a larger request is reduced with a ``UserWarning``
        (never more superpixels than pixels, either).
    weights : str, path or dict, optional
        Network weights; ``None`` = the shipped weights. Loaded networks are cached per process
        by file content (sha256), device and precision; a state dict is loaded on every call.
    device : str, optional
        Torch device.
    precision : {"auto", "bf16", "fp32"}, optional
        ``"fp32"``: the reference arithmetic. ``"bf16"``: bfloat16 network (about 2x faster on
        a CPU with AVX512-BF16/AMX, 99 % of pixels labelled as fp32). ``"auto"``: bf16 where
        the hardware runs it natively, else fp32 (:func:`resolve_precision`).
    channel_axis : int or None, optional
        Axis of the colour channels in ``image`` (``None`` for grayscale).
    return_info : bool, optional
        Also return a dict with ``n_superpixels``, ``grid``, ``network_size``,
        ``n_repaired_pixels``, ``precision`` and ``seconds``.

    Returns
    -------
    labels : (H, W) int32 ndarray, or (B, H, W) int32 tensor for a tensor batch
        Superpixel ids ``0..K-1``; every superpixel is 4-connected.

    Raises
    ------
    ValueError
        Bad image (shape, channels, dtype, NaN/inf, empty or single pixel), ``n_segments`` or
        ``precision``.
    """
    predictor = _get_predictor(weights, device, precision)
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        t0 = time.perf_counter()
        labels, info = predictor.label_batch(image, n_segments)
        info["seconds"] = time.perf_counter() - t0
        return (labels, info) if return_info else labels
    return predictor(image, n_segments, channel_axis=channel_axis, return_info=return_info)
