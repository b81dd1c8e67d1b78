"""Shared helpers of the benchmark scripts.

Provider resolution for the shared CLI vocabulary (``--providers NAME[:k=v,...]``), provider
provenance for result files, machine state, a paired bootstrap interval,
atomic text/CSV writers, a small markdown-table formatter and the Fig. 4/5 plot style.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sin.argtypes import positive_int  # noqa: F401  (re-exported for the benchmark CLIs)
from sin.io import atomic_write

REPO = Path(__file__).resolve().parents[1]

#: Line styles of the SIN paper's MATLAB plots (``eval_spixel/plot_benchmark_curve.m``), plus
#: styles for the extras that the paper does not show.
#: Requested superpixel counts of the paper's curves (Fig. 4 / Fig. 5 x axes).
DEFAULT_SIZES = tuple(range(200, 1201, 100))

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


def resolve_providers(specs, *, skip_unavailable: bool = False) -> list:
    """:class:`sin.providers.Provider` objects for the CLI's ``--providers`` values.

    Each value is anything :func:`sin.providers.get_provider` accepts (``slic``,
    ``slic:compactness=20``, ``sin:weights=PATH``, ``package.module:function``). A value that
    cannot be resolved raises ``SystemExit`` with one line naming it (and the registered
    providers), unless ``skip_unavailable`` (then it is dropped with a note on stderr).
    Duplicates (same method and parameters) are kept once, in order.
    """
    from sin.providers import get_provider

    providers, problems = [], []
    for spec in specs:
        try:
            providers.append(get_provider(spec))
        except ValueError as exc:
            problems.append(str(exc))
    if problems and not skip_unavailable:
        raise SystemExit("error: " + "; ".join(problems) + " (or pass --skip-unavailable to run the others)")
    for p in problems:
        print(f"skipping: {p}", file=sys.stderr)
    providers = list(dict.fromkeys(providers))
    if not providers:
        raise SystemExit("error: no provider left to run")
    return providers


def repo_relative(path) -> str:
    """``path`` relative to the checkout when it is inside it (result files never record /home/...)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def provider_info(provider) -> dict:
    """What a result file records about a provider: spec, fingerprint tag, weights file and sha256.

    ``trained`` is False for SIN without weights (a seeded random network), None for methods
    without weights.
    """
    path = provider.weights_file
    sha = provider.weights_sha256()
    shown = None if path is None else repo_relative(path)
    trained = None
    if provider.spec.weights is not None:
        trained = bool(sha) and not sha.startswith("absent")
    note = provider.spec_string()
    if path is not None:
        note += f" (weights {shown}, sha256 {sha[:12] if trained else 'none: UNTRAINED'})"
    return {"spec": provider.spec_string(), "tag": provider.tag, "fingerprint": provider.fingerprint,
            "weights": shown, "sha256": sha if trained else None, "trained": trained, "note": note}


def add_provider_args(parser, *, default=("slic", "snic", "ers", "sin"), several: bool = True) -> None:
    """``--providers NAME[:key=value,...] ...`` (or ``--provider`` when ``several`` is False)."""
    what = ("superpixel providers: registered names (python -m sin providers), optionally with parameters "
            "NAME:key=value,... (e.g. slic:compactness=20, sin:weights=PATH), or package.module:function")
    if several:
        parser.add_argument("--providers", nargs="+", default=list(default), metavar="NAME[:k=v,...]", help=what)
        parser.add_argument("--skip-unavailable", action="store_true",
                            help="drop providers that cannot be resolved instead of failing")
    else:
        parser.add_argument("--provider", default=default, metavar="NAME[:k=v,...]", help=what)


def machine_info() -> dict:
    """CPU count, load average, library versions and thread settings, for result files."""
    import torch

    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover - not on every OS
        load = (float("nan"),) * 3
    return {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load_avg_1_5_15": tuple(round(x, 2) for x in load),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


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


def markdown_table(df: pd.DataFrame, formats: dict | None = None) -> str:
    """A GitHub markdown table of ``df`` (``formats``: column -> format spec like ``".4f"``)."""
    formats = formats or {}

    def cell(col, v):
        if isinstance(v, float) and np.isnan(v):
            return ""
        if col in formats and isinstance(v, (int, float, np.integer, np.floating)):
            return format(v, formats[col])
        return str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    for row in df.astype(object).itertuples(index=False):  # object: ints stay ints
        lines.append("| " + " | ".join(cell(c, v) for c, v in zip(df.columns, row)) + " |")
    return "\n".join(lines)


def command_line() -> str:
    """The command that produced a result, for the result files."""
    prog = Path(sys.argv[0])
    head = f"python -m benchmarks.{prog.stem}" if prog.parent.name == "benchmarks" else prog.name
    return " ".join([head, *sys.argv[1:]])


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
