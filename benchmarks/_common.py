"""Shared helpers of the benchmark scripts: atomic writers, a paired bootstrap interval, a provider
probe, and the Fig. 4/5 plot style.

The command-line vocabulary (``--providers``, ``--dataset``/``--data-root``, ``--cache``, exit
codes, one-line errors) lives in :mod:`sin.argtypes`; report writing (markdown tables, interval
cells and sentences, provenance sidecars) in :mod:`benchmarks._report`. Both are re-exported here
for the scripts that import them from this module.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._report import (  # noqa: F401  (re-exported for the scripts importing them from here)
    command_line,
    machine_info,
    markdown_table,
    provider_info,
    repo_relative,
)
from sin.argtypes import add_provider_args, positive_int, resolve_providers  # noqa: F401  (re-exported)
from sin.io import atomic_write

REPO = Path(__file__).resolve().parents[1]

#: Requested superpixel counts of the paper's curves (Fig. 4 / Fig. 5 x axes).
DEFAULT_SIZES = tuple(range(200, 1201, 100))

#: Line styles of the SIN paper's MATLAB plots (``eval_spixel/plot_benchmark_curve.m``), plus
#: styles for the extras that the paper does not show.
PLOT_STYLE = {
    "slic": dict(color="b", marker="*", label="SLIC"),
    "snic": dict(color="g", marker="p", label="SNIC", mfc="g"),
    "ers": dict(color="tab:orange", marker="+", label="ERS"),
    "seal": dict(color="m", marker="d", label="SEAL", mfc="m"),
    "ssn": dict(color="c", marker="s", label="SSN", mfc="c"),
    "fcn": dict(color="k", marker="^", label="FCN", mfc="k"),
    "sin": dict(color="r", marker="o", label="SIN", mfc="r"),
    "grid": dict(color="0.5", marker="x", label="grid", linestyle="--"),
    "fh": dict(color="tab:brown", marker="v", label="FH", linestyle="--"),
    "seeds": dict(color="tab:olive", marker="<", label="SEEDS", linestyle="--"),
    "lsc": dict(color="tab:purple", marker=">", label="LSC", linestyle="--"),
    "fastslic": dict(color="tab:pink", marker="h", label="fast-slic", linestyle="--"),
}


def probe_providers(providers) -> None:
    """Run every provider once on a small synthetic image before a long run.

    A provider that cannot run at all (a corrupt or missing weights file, a user function that
    always raises) fails here, in one ``ValueError`` naming it, instead of on every image of
    the run; failures on single images are the run's to list.
    """
    import warnings

    yy, xx = np.mgrid[:48, :64]
    image = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx // 16 + yy // 12) % 2) * 200], -1).astype(np.uint8)
    for p in providers:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the run reports untrained weights and counts itself
                p(image, 12)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the provider is reported as one line
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise ValueError(f"provider {p.spec_string()!r} cannot run: {msg}") from None


def write_text(path, text: str) -> Path:
    """Write a text file atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return Path(path)


def write_csv(df: pd.DataFrame, path, *, float_format: str | None = None) -> Path:
    """Write a CSV atomically (gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)

    def _write(tmp):
        if path.suffix == ".gz":
            buf = io.StringIO()
            df.to_csv(buf, index=False, float_format=float_format)
            # mtime=0: identical content gives identical bytes (clean git diffs)
            with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
                f.write(buf.getvalue().encode())
        else:
            df.to_csv(tmp, index=False, float_format=float_format)

    atomic_write(path, _write)
    return path


def write_figure(fig, path, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically as PNG and close it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def paired_bootstrap(diff_per_unit, n_boot: int = 10000, seed: int = 0, *, weights=None,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its percentile bootstrap confidence interval.

    The units (e.g. images) are resampled with replacement ``n_boot`` times; the interval is
    the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means.

    Parameters
    ----------
    diff_per_unit : array_like, shape (n,)
        One difference per unit (method A minus method B on the same unit).
    n_boot : int
        Number of bootstrap resamples.
    seed : int
        Seed of the resampling (the same seed gives the same interval).
    weights : array_like, shape (n,), optional
        Non-negative weight per unit: the statistic is then the weighted mean
        ``sum(w d) / sum(w)`` of every resample (e.g. the number of ground truths of an image,
        so that the estimate is the difference of two means over (image, GT) pairs while whole
        images are resampled).
    level : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    mean, lo, hi : float
        The (weighted) mean difference and the interval bounds.

    Raises
    ------
    ValueError
        Empty or non-finite differences, bad weights, ``n_boot < 1`` or ``level`` outside (0, 1).
    """
    d = np.asarray(diff_per_unit, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"diff_per_unit must be a non-empty 1-D array, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("diff_per_unit has NaN or infinite values")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    w = np.ones_like(d) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != d.shape or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative, of the same length as the differences "
                         "and not all zero")
    mean = float((w * d).sum() / w.sum())
    rng = np.random.default_rng(seed)
    n = d.size
    stats = np.empty(int(n_boot))
    chunk = max(1, 2_000_000 // n)  # bounded memory for many units
    for start in range(0, int(n_boot), chunk):
        idx = rng.integers(0, n, size=(min(chunk, int(n_boot) - start), n))
        ws = w[idx]
        with np.errstate(invalid="ignore", divide="ignore"):  # a resample of zero-weight units only
            stats[start:start + len(idx)] = (ws * d[idx]).sum(axis=1) / ws.sum(axis=1)
    stats = stats[np.isfinite(stats)]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return mean, float(lo), float(hi)
