"""Report writing of the table scripts: markdown tables, interval cells and sentences, provenance.

Every table script writes its numbers (CSV), a markdown page, and a **JSON sidecar** next to them
(``quality.json`` beside ``quality.md`` / ``quality.csv``; ``table2_ECSSD.json`` beside
``table2_ECSSD.md`` / ``.csv``) that records how they were made: the command, the machine, every
provider with its fingerprint tag and weights sha256, the protocol, and every later re-derivation.
A script re-deriving its tables from its raw per-image rows reads the sidecar, never its own
earlier markdown.

The pieces here are small and exact on purpose (tested on hand-computed cases): what differs
between the scripts is which numbers they show, not how a number, an interval or a sentence is
written.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sin.io import atomic_write

__all__ = ["SIDECAR_VERSION", "command_line", "excludes_zero", "format_interval", "interval_cell",
           "interval_sentence", "machine_info", "machine_line", "markdown_table", "provider_info",
           "provider_rows", "read_sidecar", "repo_relative", "sidecar_path", "write_sidecar"]

REPO = Path(__file__).resolve().parents[1]

#: Version of the sidecar layout (bumped when a key changes meaning).
SIDECAR_VERSION = 1


# ---------------------------------------------------------------------------------- tables

def markdown_table(df: pd.DataFrame, formats: dict | None = None) -> str:
    """A GitHub markdown table of ``df`` (``formats``: column -> format spec like ``".4f"``).

    NaN cells are empty; ints stay ints; other values are ``str``-ed.
    """
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


# ---------------------------------------------------------------------------------- intervals

def excludes_zero(lo: float, hi: float) -> bool:
    """Whether the interval [lo, hi] lies entirely on one side of 0 (a difference beyond the noise)."""
    return bool(lo > 0 or hi < 0)


def format_interval(diff: float, lo: float, hi: float, spec: str = "+.4f") -> str:
    """``"-0.0163 [-0.0180, -0.0146]"``: a difference and its interval, signed."""
    return f"{diff:{spec}} [{lo:{spec}}, {hi:{spec}}]"


def interval_cell(diff: float, lo: float, hi: float, *, n_better: int | None = None, n: int | None = None,
                  spec: str = "+.4f") -> str:
    """A table cell: difference [interval], whether it excludes 0 (bold), and ``n_better/n``."""
    verdict = "**excludes 0**" if excludes_zero(lo, hi) else "includes 0"
    text = f"{format_interval(diff, lo, hi, spec)} {verdict}"
    return text if n_better is None else f"{text}, {int(n_better)}/{int(n)}"


def interval_sentence(ref: str, other: str, metric: str, diff: float, lo: float, hi: float, n: int, *,
                      lower_is_better: bool) -> str:
    """One sentence on ``ref - other`` with its 95 % interval over ``n`` images.

    >>> interval_sentence("SIN", "SLIC", "MAE", -0.0059, -0.0078, -0.0039, 1000, lower_is_better=True)
    'SIN is better than SLIC on MAE: SIN - SLIC = -0.0059 (95 % CI [-0.0078, -0.0039], 1000 images); larger than the noise (the interval excludes 0).'
    """  # noqa: E501
    ci = f"{diff:+.4f} (95 % CI [{lo:+.4f}, {hi:+.4f}], {n} images)"
    if excludes_zero(lo, hi):
        how = "better" if (diff < 0) == lower_is_better else "worse"
        return (f"{ref} is {how} than {other} on {metric}: {ref} - {other} = {ci}; larger than the noise (the "
                "interval excludes 0).")
    return (f"{ref} vs {other} on {metric}: {ref} - {other} = {ci}; not larger than the noise (the interval "
            "contains 0).")


# ---------------------------------------------------------------------------------- provenance

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


def provider_rows(providers: list[dict]) -> str:
    """The markdown table of the sidecar's ``providers`` records: method, spec (where it says more
    than the method's column name), cache tag, weights file and sha256."""
    rows = [{"method": p["method"], "spec": f"`{p.get('spec') or p['method']}`", "cache tag": p["tag"],
             "weights": p.get("weights") or "",
             "weights sha256": p.get("sha256") or ("none: UNTRAINED" if p.get("trained") is False else "")}
            for p in providers]
    cols = ["method", "spec", "cache tag", "weights", "weights sha256"]
    if all((p.get("spec") or p["method"]) == p["method"] for p in providers):
        cols.remove("spec")
    return markdown_table(pd.DataFrame(rows, columns=cols))


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


def machine_line(machine: dict) -> str:
    """``key=value, ...`` of :func:`machine_info` (lists, as JSON gives tuples back, shown as tuples)."""
    return ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v}" for k, v in machine.items())


def command_line(argv=None) -> str:
    """The command that produced a result (``python -m benchmarks.<script> ...``), for the result files."""
    prog = Path(sys.argv[0])
    head = f"python -m benchmarks.{prog.stem}" if prog.parent.name == "benchmarks" else prog.name
    return " ".join([head, *(sys.argv[1:] if argv is None else map(str, argv))])


# ---------------------------------------------------------------------------------- sidecar

def sidecar_path(path) -> Path:
    """The sidecar of a result file: ``<stem>.json`` beside it (``quality.md`` -> ``quality.json``)."""
    path = Path(path)
    name = path.name
    for ext in (".csv.gz", ".md", ".csv", ".json"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + ".json")
    return path.with_name(name + ".json")


def write_sidecar(path, record: dict) -> Path:
    """Write ``record`` (JSON-able; tuples become lists) atomically as the sidecar of ``path``."""
    out = sidecar_path(path)
    text = json.dumps({"sidecar": SIDECAR_VERSION, **record}, indent=2, default=str) + "\n"  # keys in written order
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    return out


def read_sidecar(path, *, required=()) -> dict:
    """The sidecar of ``path``, checked: a readable JSON object of a known version holding ``required`` keys.

    Raises
    ------
    FileNotFoundError
        No sidecar.
    ValueError
        Not JSON, not an object, another version, or a required key missing (all named).
    """
    src = sidecar_path(path)
    if not src.is_file():
        raise FileNotFoundError(f"no provenance sidecar {src} (written by the run that made the tables)")
    try:
        record = json.loads(src.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"provenance sidecar {src} is not valid JSON: {exc}") from None
    if not isinstance(record, dict) or record.get("sidecar") != SIDECAR_VERSION:
        raise ValueError(f"provenance sidecar {src} is not a version-{SIDECAR_VERSION} sidecar")
    missing = [k for k in required if k not in record]
    if missing:
        raise ValueError(f"provenance sidecar {src} lacks {', '.join(missing)}")
    return record
