"""Shared helpers of the superpixel benchmark scripts (quality, runtime).

Method resolution against the provider registry, SIN weights provenance, machine state,
atomic text/CSV writers, a small markdown-table formatter and the Fig. 4/5 plot style.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import io
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

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
}


def resolve_methods(requested, *, skip_unavailable: bool = False) -> list[str]:
    """Keep the requested providers that are registered.

    Raises ``SystemExit`` naming the missing ones and listing the available providers, unless
    ``skip_unavailable`` (then they are dropped with a message on stderr).
    """
    from sin.providers import available_providers

    available = available_providers()
    missing = [m for m in requested if m not in available]
    if missing and not skip_unavailable:
        raise SystemExit(f"error: method(s) not registered: {', '.join(missing)}. "
                         f"Available providers: {', '.join(available)} "
                         "(or pass --skip-unavailable to run the others)")
    if missing:
        print(f"skipping unregistered method(s): {', '.join(missing)} (available: {', '.join(available)})",
              file=sys.stderr)
    methods = [m for m in requested if m in available]
    if not methods:
        raise SystemExit("error: no method left to run")
    return list(dict.fromkeys(methods))


def file_sha256(path, n: int = 12) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]


def sin_weights_info(weights=None) -> dict:
    """Which SIN weights a run uses: ``{"file", "sha256", "trained", "tag", "note"}``.

    ``weights=None`` means the shipped file :data:`sin.checkpoint.DEFAULT_WEIGHTS` (an
    untrained, seeded network when it is absent); ``"untrained"`` the seeded network.
    """
    import warnings

    from sin.checkpoint import DEFAULT_WEIGHTS, UntrainedWarning, load_model

    if weights is None and not DEFAULT_WEIGHTS.exists():
        weights = "untrained"
    if isinstance(weights, str) and weights == "untrained":
        return {"file": None, "sha256": None, "trained": False, "tag": "untrained",
                "note": "UNTRAINED SIN (seeded random initialisation; no trained weights were available)"}
    path = Path(DEFAULT_WEIGHTS if weights is None else weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWarning)
        model = load_model(path)
    sha = file_sha256(path)
    trained = bool(getattr(model, "trained", True))
    try:
        shown = path.resolve().relative_to(REPO)
    except ValueError:
        shown = path
    return {"file": str(shown), "sha256": sha, "trained": trained, "tag": sha,
            "note": f"SIN weights {shown} (sha256 {sha}, {'trained' if trained else 'UNTRAINED'})"}


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


def params_tag(method: str, params: dict | None, extra: str | None = None) -> str:
    """Cache-folder name of a method setting: the name, plus a short hash of non-default
    parameters and of ``extra`` (e.g. the SIN weights digest), so a change never reuses
    stale label maps."""
    parts = [method]
    if extra:
        parts.append(extra)
    if params:
        blob = json.dumps(params, sort_keys=True, default=str)
        parts.append(hashlib.sha1(blob.encode()).hexdigest()[:8])
    return "@".join(parts)


def command_line() -> str:
    """The command that produced a result, for the result files."""
    prog = Path(sys.argv[0])
    head = f"python -m benchmarks.{prog.stem}" if prog.parent.name == "benchmarks" else prog.name
    return " ".join([head, *sys.argv[1:]])
