"""Merge the raw rows of several ``superpixel_quality`` runs into one table, without running any provider.

A new method (say, a new weights tag of SIN) is evaluated alone into its own folder; this script
puts its per-(image, GT) rows next to the committed rows of the other methods and re-summarises
them with ``superpixel_quality --from-pairs`` (tables, matched counts, paired intervals vs SIN,
plots). The sources must share the protocol (dataset, split, ground-truth protocol, boundary
tolerance, image limit) and every method must have rows for the same images as SIN.

Usage::

    python -m benchmarks.merge_pairs --out results/bsds500_small \\
        results/bsds500 results/bsds500_extras:ssn results/bsds500_small_raw

``SOURCE[:METHOD,...]`` takes a run folder (``pairs.csv.gz`` + ``quality.json``), optionally only
the listed methods (the ``method`` column, e.g. ``ssn`` or ``sin:precision=fp32``). A method may
come from one source only; methods keep the order of the sources (the first SIN method is the
reference of the paired intervals, as in ``superpixel_quality``).
"""

from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path

import pandas as pd

from benchmarks import _report as R
from benchmarks._common import write_csv
from benchmarks._matched import reference_method
from sin import argtypes as A

#: protocol fields that must agree between merged sources (``processes`` and labels may differ)
SAME_PROTOCOL = ("dataset", "split", "limit", "gt_protocol", "tolerance")


def parse_source(text: str) -> tuple[Path, list[str] | None]:
    """``"DIR"`` or ``"DIR:m1,m2"`` -> ``(DIR, [m1, m2] or None)``. Method specs hold ``:`` too
    (``sin:precision=fp32``), so the folder is the longest prefix that exists as a folder."""
    parts = text.split(":")
    for cut in range(len(parts), 0, -1):
        folder = Path(":".join(parts[:cut]))
        if folder.is_dir():
            rest = ":".join(parts[cut:])
            return folder, ([m for m in rest.split(",") if m] or None) if rest else None
    raise FileNotFoundError(f"source folder not found: {parts[0]}")


def load_source(folder: Path, methods: list[str] | None) -> tuple[pd.DataFrame, dict]:
    """The rows (optionally of ``methods`` only) and the sidecar of one run folder."""
    src = folder / "pairs.csv.gz"
    if not src.is_file():
        raise FileNotFoundError(f"no pairs.csv.gz in {folder}")
    record = R.read_sidecar(folder / "quality.md", required=("providers", "protocol", "command", "machine"))
    pairs = pd.read_csv(src, dtype={"image": str, "method": str})
    have = list(dict.fromkeys(pairs["method"]))
    if methods is not None:
        unknown = [m for m in methods if m not in have]
        if unknown:
            raise ValueError(f"{folder}: no rows of {', '.join(unknown)} (it has {', '.join(have)})")
        pairs = pairs[pairs["method"].isin(methods)]
    return pairs, record


def merge(sources: list[tuple[Path, list[str] | None]]) -> tuple[pd.DataFrame, dict]:
    """Concatenate the sources' rows and provider records after checking that they fit together."""
    frames, providers, parts = [], [], []
    first = None
    seen: dict = {}
    for folder, methods in sources:
        pairs, record = load_source(folder, methods)
        proto = {k: record["protocol"].get(k) for k in SAME_PROTOCOL}
        if first is None:
            first = (folder, record["protocol"], proto)
        elif proto != first[2]:
            diff = {k: (first[2][k], proto[k]) for k in SAME_PROTOCOL if first[2][k] != proto[k]}
            raise ValueError(f"{folder} was run with another protocol than {first[0]}: {diff}")
        names = list(dict.fromkeys(pairs["method"]))
        for m in names:
            if m in seen:
                raise ValueError(f"method {m!r} is in both {seen[m]} and {folder}: pick one with {folder}:METHODS")
            seen[m] = folder
        info = {p["method"]: p for p in record["providers"]}
        providers += [info[m] for m in names]
        frames.append(pairs)
        parts.append({"source": str(folder), "methods": names, "command": record["command"],
                      "date": record["machine"].get("date")})
    merged = pd.concat(frames, ignore_index=True)
    ref = reference_method(list(dict.fromkeys(merged["method"])))
    if ref is not None:  # every method must cover SIN's images, or the paired intervals would be over fewer
        ref_images = set(merged.loc[merged["method"] == ref, "image"])
        for m, grp in merged.groupby("method", sort=False):
            missing = ref_images - set(grp["image"])
            if missing:
                raise ValueError(f"method {m!r} lacks {len(missing)} of the reference {ref!r}'s images "
                                 f"(e.g. {sorted(missing)[:3]})")
    record = {"script": "benchmarks.superpixel_quality", "command": R.command_line(),
              "machine": R.machine_info(), "protocol": first[1], "providers": providers, "failures": [],
              "history": [], "merged_from": parts}
    return merged, record


def build_parser() -> A.Parser:
    ap = A.Parser(prog="python -m benchmarks.merge_pairs", description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="+", help="run folders, each optionally :METHOD[,METHOD...]")
    ap.add_argument("--out", type=Path, required=True, help="folder of the merged table (must not be a source)")
    ap.add_argument("--no-plots", action="store_true")
    return ap


def run(args):
    from benchmarks import superpixel_quality as Q

    sources = [parse_source(s) for s in args.sources]
    out = A.output_dir(args.out)
    if any(out.resolve() == folder.resolve() for folder, _ in sources):
        raise ValueError(f"--out {out} is one of the sources: write the merged table elsewhere")
    pairs, record = merge(sources)
    write_csv(pairs, out / "pairs.csv.gz", float_format="%.6g")
    R.write_sidecar(out / "quality.md", record)
    summary, _ = Q.run(Q.Config(from_pairs=out, no_plots=args.no_plots))  # its history records this command
    print(f"merged {len(pairs)} rows of {len(record['providers'])} methods from {len(sources)} sources into {out} "
          f"({_dt.date.today()})", file=sys.stderr)
    return summary


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 2 usage error or expected failure, one line)."""
    return A.cli_main(build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
