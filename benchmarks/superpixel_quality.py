"""Superpixel quality vs number of superpixels (SIN paper Fig. 5 / Fig. 6 protocol).

For every method and requested size, run the provider on every image of the dataset, evaluate
every (image, ground truth) pair with :func:`sin.metrics.evaluate` (the superpixel-benchmark's
metrics) and average. Curves plot the mean *actual* number of superpixels on x.

Usage::

    python -m benchmarks.superpixel_quality --dataset bsds500 --split test \
        --providers slic snic ers sin grid --n-segments 200 300 400 500 600 700 800 900 1000 1100 1200 \
        [--limit N] [--data-root DIR] [--out results/bsds500] [--cache DIR] [--recompute] [--processes 2] \
        [--aggregate mean|worst|best] [--gt-max-segments 50] [--skip-unavailable]

    python -m benchmarks.superpixel_quality --dataset folder --images DIR --labels DIR ...

    # re-summarize an earlier run's raw rows (no provider runs): tables, intervals, plots
    python -m benchmarks.superpixel_quality --from-pairs results/bsds500 [--out DIR]

``--providers`` takes anything :func:`sin.providers.get_provider` accepts: registered names with
optional parameters (``slic:compactness=20``, ``sin:weights=PATH``, ``sin:weights=untrained``)
or your own function as ``package.module:function[:k=v,...]``.

Outputs (under ``--out``): ``quality.csv`` (one row per provider x size: mean actual K and the
aggregated metrics), ``pairs.csv.gz`` (every (image, GT) row; read it with
``pd.read_csv(..., dtype={"image": str})`` to keep ids as strings), ``quality.md`` (table,
providers with their weights file and sha256, protocol, machine), ``asa_vs_k.png``,
``co_vs_k.png``, ``br_bp.png`` and ``fig5.png`` (the three side by side), ``matched.csv``
(every provider's curve read at the same actual counts, 300 / 600 / 1000, with paired bootstrap
intervals of its difference to SIN, see :func:`matched` and :func:`paired_vs_reference`).
Interim CSVs are rewritten after every setting. The ``method`` column holds the provider's spec
string (``slic``, ``sin``, ``slic:compactness=20``).

Resumable: label maps live in the one label-map cache, :class:`sin.providers.LabelCache`
(``--cache``, default ``<cache root>/labels``, see :mod:`sin.paths`), keyed by the provider's
fingerprint (parameters, code, weights sha256) and checked against a digest of the image's
pixels, so new weights, parameters, provider code or another copy of the dataset with
different pixels never reuse a stale map (``--recompute`` ignores the cache). Metrics are always
recomputed from the maps (about 60 ms per image).
Work runs in ``--processes`` spawn workers, one thread each; the per-image seconds in the
tables are therefore single-thread times taken while the other workers run (see
``benchmarks/runtime.py`` for proper timings).

Protocol (``../shared/specs/metrics.md``): SIN / SpixelFCN average over **all** (image, GT)
pairs (1063 on the BSDS500 test split), default here; ``--aggregate worst`` gives the
Stutz et al. per-image worst-GT average. Ground truths are used as stored;
``--gt-max-segments 50`` reproduces SIN's test-GT conversion (segments beyond the 50th merged
into the first; changes 85 of 1063 BSDS500 annotations).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import (
    DEFAULT_SIZES,
    PLOT_STYLE,
    REPO,
    add_provider_args,
    command_line,
    machine_info,
    markdown_table,
    paired_bootstrap,
    positive_int,
    provider_info,
    resolve_providers,
    write_csv,
    write_figure,
    write_text,
)

#: Summary columns: metric -> (header in the markdown table, format).
SUMMARY_METRICS = {"asa": ("ASA", ".4f"), "rec": ("BR", ".4f"), "pre": ("BP", ".4f"), "co": ("CO", ".4f"),
                   "ue": ("UE (1-ASA)", ".4f"), "ue_np": ("UE_NP", ".4f"), "ue_levin": ("UE_Levin", ".3f"),
                   "oe": ("OE", ".4f"), "ev": ("EV", ".4f"), "mde": ("MDE", ".3f"), "cd": ("CD", ".4f")}


# --------------------------------------------------------------------------------------------
# worker side (top-level functions: they run in spawn workers)
# --------------------------------------------------------------------------------------------

_DATASETS: dict = {}


def _open_dataset(spec: tuple):
    # one dataset object per worker process and spec (scanning folders costs a little)
    if spec not in _DATASETS:
        from sin.datasets import load_dataset

        name, kwargs = spec
        _DATASETS[spec] = load_dataset(name, **dict(kwargs))
    return _DATASETS[spec]


_PROVIDERS: dict = {}


def _provider(spec: str):
    # workers get the CLI text, not the Provider: a registry entry may hold unpicklable parts
    # (e.g. a lambda for its default weights), and resolving once per worker is cheap
    if spec not in _PROVIDERS:
        from sin.providers import get_provider

        _PROVIDERS[spec] = get_provider(spec)
    return _PROVIDERS[spec]


def evaluate_image(job: dict) -> dict:
    """Superpixels of one image (from the label-map cache or computed) and their metric rows (one per GT)."""
    from sin.metrics import evaluate
    from sin.providers import LabelCache

    ds = _open_dataset(job["dataset"])
    image_id, image, gts = ds[job["index"]]
    cache = LabelCache(job["cache_root"], recompute=job["recompute"])
    provider, size = _provider(job["provider"]), job["size"]
    hit = cache.load(provider, image, size)
    if hit is None:  # computed and stored (the cache checks the stored image digest: other pixels, other map)
        labels, seconds = cache.labels(provider, image, size)
    else:
        labels, seconds = hit
    df = evaluate(labels, gts, image, image_id=image_id, tolerance=job["tolerance"])
    df.insert(0, "n_segments", size)
    df.insert(0, "method", job["label"])
    df["seconds"] = seconds
    return {"rows": df.to_dict("records"), "seconds": seconds, "cached": hit is not None}


# --------------------------------------------------------------------------------------------
# main side
# --------------------------------------------------------------------------------------------

def summarize(pairs: pd.DataFrame, mode: str = "mean") -> pd.DataFrame:
    """One row per (method, n_segments): counts, mean actual K, aggregated metrics, s/image."""
    from sin.metrics import aggregate

    rows = []
    for (method, size), grp in pairs.groupby(["method", "n_segments"], sort=False):
        agg = aggregate(grp, mode)
        per_image = grp.drop_duplicates("image")
        row = {"method": method, "n_segments": int(size), "n_images": int(per_image.shape[0]),
               "n_pairs": int(grp.shape[0]), "sp": float(per_image["sp"].mean())}
        row.update({m: float(agg[m]) for m in SUMMARY_METRICS})
        row["seconds_per_image"] = float(per_image["seconds"].median())
        rows.append(row)
    return pd.DataFrame(rows)


#: Superpixel counts at which methods are compared like for like (the issue's acceptance points).
MATCHED_AT = (300, 600, 1000)
#: Metrics of the like-for-like table: metric -> header.
MATCHED_METRICS = {"asa": "ASA", "rec": "BR", "co": "CO"}


def matched(summary: pd.DataFrame, at=MATCHED_AT, metrics=tuple(MATCHED_METRICS)) -> pd.DataFrame:
    """Every method's metrics at the same *actual* numbers of superpixels.

    Methods never produce exactly the requested count (SIN's and SNIC's seed grids give 294 for
    300 on BSDS500, SLIC 305), and every metric here grows or shrinks monotonically with the
    count, so comparing rows of equal *requested* K favours whoever over-shoots. The paper
    compares curves against the actual count; this reads each method's curve at ``at`` by linear
    interpolation between its two nearest measured points. Counts outside a method's measured
    range give NaN (no extrapolation).

    Returns one row per method with columns ``<metric>@<k>``.
    """
    rows = []
    for method, grp in summary.groupby("method", sort=False):
        grp = grp.sort_values("sp")
        x = grp["sp"].to_numpy(float)
        row = {"method": method}
        for k in at:
            for m in metrics:
                y = grp[m].to_numpy(float)
                row[f"{m}@{k}"] = float(np.interp(k, x, y)) if x[0] <= k <= x[-1] else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


#: The provider every other one is compared with in the paired intervals.
REFERENCE = "sin"


def reference_method(methods, name: str = REFERENCE) -> str | None:
    """The method string of the first run of provider ``name`` (``sin``, ``sin:precision=fp32``, ...)."""
    return next((m for m in methods if str(m).split(":")[0] == name), None)


def per_image_values(pairs: pd.DataFrame, mode: str = "mean", metrics=tuple(MATCHED_METRICS)) -> pd.DataFrame:
    """One value per (method, n_segments, image) and metric, aggregated over the image's GTs as
    :func:`sin.metrics.aggregate` does for ``mode``, plus ``weight``: the image's weight in the
    summary's mean (its number of GT pairs for ``"mean"``, where the summary averages over
    pairs; 1 for ``"worst"`` / ``"best"``, which average over images)."""
    from sin.metrics import HIGHER_IS_BETTER, LOWER_IS_BETTER

    if mode not in ("mean", "worst", "best"):
        raise ValueError(f"mode must be 'mean', 'worst' or 'best', got {mode!r}")
    grouped = pairs.groupby(["method", "n_segments", "image"], sort=False)
    out = {}
    for m in metrics:
        fn = "mean"
        if mode != "mean" and m in HIGHER_IS_BETTER:
            fn = "min" if mode == "worst" else "max"
        elif mode != "mean" and m in LOWER_IS_BETTER:
            fn = "max" if mode == "worst" else "min"
        out[m] = grouped[m].agg(fn).astype(float)
    df = pd.DataFrame(out)
    df["weight"] = grouped.size().astype(float) if mode == "mean" else 1.0
    return df


def _bracket(x: np.ndarray, k: float) -> tuple[int, int, float] | None:
    """Indices ``(j, j2)`` of the two measured points around ``k`` on the increasing axis ``x``
    and the weight ``t`` of ``j2`` (what :func:`numpy.interp` uses); None outside the range."""
    if not x[0] <= k <= x[-1]:
        return None
    j = int(np.searchsorted(x, k, side="right")) - 1
    if j >= len(x) - 1:  # k is the last point
        return len(x) - 1, len(x) - 1, 0.0
    t = 0.0 if x[j + 1] == x[j] else (k - x[j]) / (x[j + 1] - x[j])
    return j, j + 1, float(t)


def paired_vs_reference(pairs: pd.DataFrame, summary: pd.DataFrame, *, reference: str = REFERENCE,
                        at=MATCHED_AT, metrics=tuple(MATCHED_METRICS), mode: str = "mean",
                        n_boot: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Paired bootstrap intervals, over images, of each method's difference to ``reference`` at
    the matched counts ``at``.

    Per image, each method's value at actual count K is interpolated between the **same two
    requested sizes, with the same weight**, that :func:`matched` uses for the method's mean
    curve. Interpolation is linear and the per-image values are weighted as in the summary
    (number of GT pairs under ``mode="mean"``), so the mean of the per-image differences is
    exactly the difference of the two ``matched`` numbers, and the interval is about the
    table's own comparison. (Interpolating each image's curve at its own actual counts would
    estimate something slightly different, and images whose counts do not bracket K would
    drop out or need extrapolation.) Images are the resampled unit: the GTs of one image are
    not independent.

    Returns one row per method with, for every K and metric,
    ``<metric>@<K>_diff_vs_<reference>`` (method minus reference), ``..._lo`` / ``..._hi``
    (95 % interval), ``<metric>@<K>_n_better`` (images where the method's value is higher),
    and ``paired_images``. The reference's own row and cells where either curve does not
    reach K are NaN.
    """
    values = per_image_values(pairs, mode, metrics)
    methods = list(dict.fromkeys(summary["method"]))
    # ``reference`` names a provider; its run may carry parameters (e.g. sin:precision=fp32)
    ref_method = reference_method(methods, reference)
    curves = {}
    for method, grp in summary.groupby("method", sort=False):
        grp = grp.sort_values("sp")
        curves[method] = (grp["sp"].to_numpy(float), grp["n_segments"].to_numpy(int))

    def at_k(method, k):
        """Per-image interpolated values (DataFrame indexed by image), or None outside the range."""
        x, sizes = curves[method]
        br = _bracket(x, k)
        if br is None:
            return None
        j, j2, t = br
        v1 = values.loc[(method, sizes[j])]
        v2 = values.loc[(method, sizes[j2])]
        common = v1.index.intersection(v2.index)
        v = (1 - t) * v1.loc[common, list(metrics)] + t * v2.loc[common, list(metrics)]
        v["weight"] = v1.loc[common, "weight"]
        return v

    rows = []
    for method in methods:
        row = {"method": method}
        n_used = None
        for k in at:
            mine = at_k(method, k) if method != ref_method else None
            ref = at_k(ref_method, k) if ref_method in curves else None
            for m in metrics:
                key = f"{m}@{k}"
                cells = dict.fromkeys([f"{key}_diff_vs_{reference}", f"{key}_diff_vs_{reference}_lo",
                                       f"{key}_diff_vs_{reference}_hi", f"{key}_n_better"], float("nan"))
                if mine is not None and ref is not None:
                    common = mine.index.intersection(ref.index)
                    d = (mine.loc[common, m] - ref.loc[common, m]).to_numpy(float)
                    # the same images carry the same GTs for every method: one weight per image
                    mean, lo, hi = paired_bootstrap(d, n_boot, seed, weights=ref.loc[common, "weight"].to_numpy())
                    cells = dict(zip(cells, (mean, lo, hi, float((d > 0).sum()))))
                    n_used = len(common)
                row.update(cells)
        row["paired_images"] = float("nan") if n_used is None else float(n_used)
        rows.append(row)
    return pd.DataFrame(rows)


def _matched_markdown(table: pd.DataFrame) -> str:
    cols = [c for c in table.columns if re.fullmatch(r"[a-z_]+@\d+", c)]
    headers = {c: f"{MATCHED_METRICS[c.split('@')[0]]} @{c.split('@')[1]}" for c in cols}
    return markdown_table(table[["method", *cols]].rename(columns=headers), {h: ".4f" for h in headers.values()})


def _paired_markdown(table: pd.DataFrame, reference: str = REFERENCE, at=MATCHED_AT,
                     metrics=tuple(MATCHED_METRICS)) -> str:
    """One row per (method, K); per metric: difference to the reference, 95 % interval, whether
    the interval excludes 0, and on how many images the method is higher."""
    rows = []
    for r in table.to_dict("records"):
        if str(r["method"]).split(":")[0] == reference:
            continue
        for k in at:
            row = {"method": r["method"], "K actual": k}
            for m in metrics:
                key = f"{m}@{k}"
                d, lo, hi = (r.get(f"{key}_diff_vs_{reference}{s}", np.nan) for s in ("", "_lo", "_hi"))
                if np.isnan(d):
                    row[MATCHED_METRICS[m]] = ""
                    continue
                verdict = "includes 0" if lo <= 0 <= hi else "**excludes 0**"
                row[MATCHED_METRICS[m]] = (f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}] {verdict}, "
                                           f"{int(r[f'{key}_n_better'])}/{int(r['paired_images'])}")
            if any(row[MATCHED_METRICS[m]] for m in metrics):  # skip counts outside both curves
                rows.append(row)
    return markdown_table(pd.DataFrame(rows)) if rows else "(no method to compare)"


def plot_curves(summary: pd.DataFrame, out_dir: Path, *, xlim=(200, 1200), title: str = "") -> list[Path]:
    """ASA-vs-K, CO-vs-K and BR-BP plots in the style of the SIN paper's Fig. 5."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("asa_vs_k.png", "sp", "asa", "Number of superpixels", "ASA"),
              ("co_vs_k.png", "sp", "co", "Number of superpixels", "CO"),
              ("br_bp.png", "rec", "pre", "Boundary recall (BR)", "Boundary precision (BP)")]

    def draw(ax, x, y, xlabel, ylabel):
        for method, grp in summary.groupby("method", sort=False):
            grp = grp.sort_values("n_segments")  # polyline through the settings in order
            name = str(method).split(":")[0]
            style = dict(PLOT_STYLE.get(name, {"marker": "o", "label": name}))
            label = style.pop("label") + (str(method)[len(name):] if name != method else "")
            if "weights_trained" in grp and str(grp["weights_trained"].iloc[0]) == "False":
                label += " (untrained)"
            ax.plot(grp[x], grp[y], markersize=7, label=label, **style)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if x == "sp" and xlim is not None:
            lo, hi = float(summary["sp"].min()), float(summary["sp"].max())
            if hi >= xlim[0] and lo <= xlim[1]:  # the paper's range, widened so that no point is hidden
                ax.set_xlim(min(xlim[0], lo - 20), max(xlim[1], hi + 20))
        ax.legend(loc="best", fontsize=9)

    paths = []
    for name, x, y, xl, yl in panels:
        fig, ax = plt.subplots(figsize=(5.2, 4.2))
        draw(ax, x, y, xl, yl)
        if title:
            ax.set_title(title, fontsize=10)
        paths.append(write_figure(fig, out_dir / name))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (_, x, y, xl, yl) in zip(axes, panels):
        draw(ax, x, y, xl, yl)
    if title:
        fig.suptitle(title, fontsize=11)
    paths.append(write_figure(fig, out_dir / "fig5.png"))
    return paths


def _markdown(summary: pd.DataFrame, table: pd.DataFrame, meta: dict) -> str:
    cols = ["method", "n_segments", "sp", *SUMMARY_METRICS, "seconds_per_image"]
    shown = summary[cols].rename(columns={"n_segments": "K requested", "sp": "K actual",
                                          "seconds_per_image": "s / image",
                                          **{k: v[0] for k, v in SUMMARY_METRICS.items()}})
    formats = {"K actual": ".1f", "s / image": ".3f", **{v[0]: v[1] for v in SUMMARY_METRICS.values()}}
    lines = [
        f"# Superpixel quality on {meta['dataset_label']}",
        "",
        f"{meta['n_images']} images, {meta['n_pairs']} (image, ground truth) pairs"
        f"{' (subset: --limit ' + str(meta['limit']) + ')' if meta['limit'] else ''}. "
        f"Aggregation: **{meta['aggregate']}** "
        + {"mean": "(mean over all (image, GT) pairs, the SIN / SpixelFCN protocol).",
           "worst": "(per image the worst GT, then the mean over images; Stutz et al.).",
           "best": "(per image the best GT, then the mean over images)."}[meta["aggregate"]],
        f"Boundary tolerance: {meta['tolerance']}. Ground truths: {meta['gt_protocol']}.",
        "",
    ]
    for info in meta.get("untrained", []):
        lines += [(f"**{info}: no trained weights; its numbers below are those of a randomly initialised "
                   "network, not of the method.**"), ""]
    lines += [markdown_table(shown, formats), "",
              "## Like for like: every method at the same actual number of superpixels", "",
              ("Each method's curve read at K actual = " + " / ".join(str(k) for k in MATCHED_AT)
               + " by linear interpolation between its two nearest measured sizes (the rows above are at "
               "equal *requested* K, where the method that over-shoots the count looks better). "
               "Also in `matched.csv`."), "",
              _matched_markdown(table), ""]
    if any(c.endswith(f"_diff_vs_{REFERENCE}") for c in table.columns):
        lines += [f"### Paired differences to {REFERENCE.upper()} (bootstrap over images)", "",
                  (f"Method minus {REFERENCE.upper()} at the same actual K, with a 95 % paired bootstrap interval "
                  "(10000 resamples of the images, seed 0; per image the value is interpolated between the same "
                  "two measured sizes as the curve above, images weighted as in the mean, so the difference is "
                  "exactly that of the table above). Each cell: difference [95 % interval], whether the interval "
                  "excludes 0 (where it includes 0 the data show no difference), and n/N: on how many of the "
                  f"N images the method's value is above {REFERENCE.upper()}'s (higher is better for ASA and BR; "
                  "CO is compactness). Empty: K outside a curve's measured range. Columns "
                  f"`<metric>@<K>_diff_vs_{REFERENCE}`, `_lo`, `_hi`, `<metric>@<K>_n_better` in `matched.csv`."),
                  "", _paired_markdown(table), ""]
    lines += [("Columns: K actual = mean number of superpixels produced (x axis of the curves); "
              "BR/BP = boundary recall / the benchmark's boundary precision; UE = 1 - ASA (the benchmark's "
              "`ue`); UE_NP = Neubert-Protzel UE (Stutz et al.'s UE); EV on 8-bit colours; "
              "s / image = median single-thread provider time per image, measured inside the "
              f"{meta['processes']} parallel workers (noisy; see results/runtime.md for timings)."), "",
              "Plots: `asa_vs_k.png`, `co_vs_k.png`, `br_bp.png`, `fig5.png`. Raw rows: `pairs.csv.gz`.", "",
              PROVENANCE, "", meta["provenance"], ""]
    return "\n".join(lines)


#: Heading of quality.md's last section (carried over when re-summarizing with --from-pairs).
PROVENANCE = "## Provenance"
#: Provenance lines of quality.md files written before that section existed.
_LEGACY_PROVENANCE = ("**SIN weights", "Label-map cache tags", "Command:", "Machine:")


def _provenance(providers: list, meta: dict) -> str:
    rows = [{"method": label, "cache tag": info["tag"], "weights": info["weights"] or "",
             "weights sha256": info["sha256"] or ("none: UNTRAINED" if info["trained"] is False else "")}
            for label, info in zip(meta["labels"], (provider_info(p) for p in providers))]
    return "\n".join([
        ("Providers (cache tag = name and fingerprint over parameters, code and weights; label maps in the "
         "shared label-map cache, checked against each image's pixels):"), "",
        markdown_table(pd.DataFrame(rows)), "",
        f"Command: `{meta['command']}`", "",
        f"Machine: {meta['machine']}"])


def _old_provenance(md: Path) -> str | None:
    """The provenance part of an earlier quality.md (what produced its pairs), or None."""
    if not md.is_file():
        return None
    text = md.read_text()
    if PROVENANCE in text:
        return text.split(PROVENANCE, 1)[1].strip()
    kept = [line for line in text.splitlines() if line.startswith(_LEGACY_PROVENANCE)]
    return "\n\n".join(kept) or None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.superpixel_quality",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="bsds500", choices=("bsds500", "nyuv2", "folder"))
    p.add_argument("--split", default="test")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder (default: env / shared data)")
    p.add_argument("--images", type=Path, help="--dataset folder: image folder")
    p.add_argument("--labels", type=Path, help="--dataset folder: label-map folder")
    add_provider_args(p, default=("slic", "snic", "ers", "sin", "grid"))
    p.add_argument("--n-segments", nargs="+", type=positive_int, default=list(DEFAULT_SIZES), metavar="K",
                   help="requested numbers of superpixels (the curves' points)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images (sorted ids)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default results/<dataset>)")
    p.add_argument("--cache", type=Path, default=None,
                   help="label-map cache root (default: <cache root>/labels, $SIN_CACHE_DIR)")
    p.add_argument("--recompute", action="store_true", help="ignore cached label maps (they are overwritten)")
    p.add_argument("--processes", type=positive_int, default=2)
    p.add_argument("--aggregate", default="mean", choices=("mean", "worst", "best"))
    p.add_argument("--tolerance", type=int, default=None, help="boundary tolerance radius (default 0.0025 x diagonal)")
    p.add_argument("--gt-max-segments", type=positive_int, default=None,
                   help="merge GT segments beyond this many into the first (SIN's conversion: 50); BSDS500 only")
    p.add_argument("--from-pairs", type=Path, default=None, metavar="PATH",
                   help="re-summarize an earlier run's pairs.csv.gz (file or its folder) without running any "
                        "provider: rewrite quality.csv, matched.csv, quality.md and the plots in --out (default: "
                        "the folder of PATH); the dataset/protocol flags should describe that run")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plots", action="store_true", help="tables only (plots take a few seconds)")
    return p


def _protocol_meta(args) -> dict:
    return {"dataset_label": f"{args.dataset} ({args.split})" if args.dataset != "folder" else str(args.images),
            "aggregate": args.aggregate, "limit": args.limit, "processes": args.processes,
            "gt_protocol": ("as stored (all segments)" if args.gt_max_segments is None else
                            f"SIN conversion, segments beyond {args.gt_max_segments} merged into the first"),
            "tolerance": (f"{args.tolerance} px" if args.tolerance is not None
                          else "round(0.0025 x image diagonal) px (1 px on BSDS500), square window")}


def _write_outputs(pairs: pd.DataFrame, summary: pd.DataFrame, out: Path, meta: dict, *, plots: bool) -> None:
    """matched.csv (with the paired intervals when SIN ran), quality.md and the plots."""
    table = matched(summary)
    if reference_method(summary["method"]) is not None:
        paired = paired_vs_reference(pairs, summary, mode=meta["aggregate"])
        table = table.merge(paired, on="method", how="left", sort=False)
    write_csv(table, out / "matched.csv", float_format="%.6g")
    write_text(out / "quality.md", _markdown(summary, table, meta))
    if plots:
        plot_curves(summary, out, title=f"{meta['dataset_label']}, {meta['n_images']} images")


def _n_pairs(pairs: pd.DataFrame) -> int:
    return int(pairs.groupby(["method", "n_segments"]).size().iloc[0])


def resummarize(args) -> pd.DataFrame:
    """``--from-pairs``: the tables, intervals and plots of an earlier run, from its raw rows."""
    src = args.from_pairs / "pairs.csv.gz" if args.from_pairs.is_dir() else args.from_pairs
    if not src.is_file():
        raise SystemExit(f"error: --from-pairs: no such file: {src}")
    out = args.out or src.parent
    out.mkdir(parents=True, exist_ok=True)
    pairs = pd.read_csv(src, dtype={"image": str, "method": str})
    missing = {"method", "n_segments", "image", "sp", "seconds", *MATCHED_METRICS} - set(pairs.columns)
    if missing:
        raise SystemExit(f"error: --from-pairs: {src} lacks the column(s) {', '.join(sorted(missing))}")
    summary = summarize(pairs, args.aggregate)
    old_csv = src.parent / "quality.csv"
    if old_csv.is_file():  # which weights ran is not in the raw rows: keep what the run recorded
        old = pd.read_csv(old_csv, dtype=str, keep_default_na=False)
        keep = [c for c in ("weights", "weights_trained") if c in old.columns]
        if keep:
            old = old[["method", "n_segments", *keep]].assign(n_segments=lambda d: d["n_segments"].astype(int))
            summary = summary.merge(old, on=["method", "n_segments"], how="left", sort=False)
    summary["aggregate"] = args.aggregate
    write_csv(summary, out / "quality.csv", float_format="%.6g")
    if out.resolve() != src.parent.resolve():
        shutil.copyfile(src, out / "pairs.csv.gz")
    before = _old_provenance(src.parent / "quality.md")
    meta = _protocol_meta(args)
    meta.update(n_images=int(pairs["image"].nunique()), n_pairs=_n_pairs(pairs),
                provenance=f"Tables re-summarized from `{src.name}` by `{command_line()}` (no label map "
                           "recomputed). The run that produced the rows:\n\n" + (before or "(not recorded)"))
    if "weights_trained" in summary:
        meta["untrained"] = sorted(set(summary.loc[summary["weights_trained"].astype(str) == "False", "method"]))
    _write_outputs(pairs, summary, out, meta, plots=not args.no_plots)
    print(f"re-summarized {len(pairs)} rows of {src}; results in {out}", file=sys.stderr)
    return summary


def main(argv=None) -> pd.DataFrame:
    """Run the benchmark; returns the summary table (also written to ``<out>/quality.csv``)."""
    from sin.datasets import load_dataset
    from sin.paths import cache_root
    from sin.providers import get_provider, parallel_map, process_pool

    args = build_parser().parse_args(argv)
    if args.from_pairs is not None:
        return resummarize(args)
    providers = resolve_providers(args.providers, skip_unavailable=args.skip_unavailable)
    texts: dict = {}  # provider -> the CLI text that names it (what the workers resolve)
    for text in args.providers:
        try:
            texts.setdefault(get_provider(text), text)
        except ValueError:  # reported (or skipped) by resolve_providers
            pass
    labels = [p.spec_string() for p in providers]
    if len(set(labels)) != len(labels):
        raise SystemExit("error: two providers share the name " + ", ".join(
            sorted({x for x in labels if labels.count(x) > 1})) + " (the 'method' column could not tell them apart)")
    sizes = list(dict.fromkeys(args.n_segments))

    # dataset (opened here for the ids; every worker opens its own copy)
    kwargs = {}
    if args.dataset == "folder":
        if args.images is None or args.labels is None:
            raise SystemExit("error: --dataset folder needs --images DIR and --labels DIR")
        kwargs.update(images=str(args.images.resolve()), labels=str(args.labels.resolve()))
        group = f"folder-{args.images.resolve().name}"
    else:
        kwargs.update(root=str(args.data_root.resolve()) if args.data_root else None, split=args.split)
        group = f"{args.dataset}-{args.split}"
    if args.gt_max_segments is not None:
        if args.dataset != "bsds500":
            raise SystemExit("error: --gt-max-segments applies to --dataset bsds500 only")
        kwargs["max_segments"] = args.gt_max_segments
    spec = (args.dataset, tuple(sorted(kwargs.items())))
    try:
        ds = load_dataset(args.dataset, **kwargs)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    indices = list(range(len(ds)))[: args.limit]
    ids = [ds.ids[i] for i in indices]
    out = args.out or REPO / "results" / args.dataset
    out.mkdir(parents=True, exist_ok=True)
    root = args.cache if args.cache is not None else cache_root() / "labels"

    meta = _protocol_meta(args)
    meta.update(command=command_line(), labels=labels)
    infos = {label: provider_info(p) for label, p in zip(labels, providers)}
    meta["untrained"] = [label for label, info in infos.items() if info["trained"] is False]
    for info in infos.values():
        if info["weights"] is not None or info["trained"] is False:
            print(info["note"], file=sys.stderr)

    all_rows: list = []
    summary = pd.DataFrame()
    n_cached = n_computed = 0
    pool = process_pool(args.processes) if args.processes > 1 else None
    try:
        for label, provider in zip(labels, providers):
            for size in sizes:
                jobs = [{"dataset": spec, "index": i, "provider": texts[provider], "label": label, "size": size,
                         "tolerance": args.tolerance, "recompute": args.recompute, "cache_root": str(root),
                         "group": group}
                        for i in indices]
                results = parallel_map(evaluate_image, jobs, processes=args.processes, executor=pool,
                                       desc=f"{label} K={size}", progress=not args.no_progress)
                for r in results:
                    all_rows.extend(r["rows"])
                    n_cached += r["cached"]
                    n_computed += not r["cached"]
                pairs = pd.DataFrame(all_rows)
                summary = summarize(pairs, args.aggregate)
                if any(info["trained"] is not None for info in infos.values()):
                    summary["weights"] = [(infos[m]["weights"] or "untrained") if infos[m]["trained"] is not None
                                          else "" for m in summary["method"]]
                    summary["weights_trained"] = [infos[m]["trained"] for m in summary["method"]]
                summary["aggregate"] = args.aggregate
                # interim results after every setting: an interrupted run still leaves tables
                write_csv(summary, out / "quality.csv", float_format="%.6g")
                write_csv(pairs, out / "pairs.csv.gz", float_format="%.6g")
    finally:
        if pool is not None:
            pool.shutdown()

    meta.update(n_images=len(ids), n_pairs=_n_pairs(pairs),
                machine=", ".join(f"{k}={v}" for k, v in machine_info().items()))
    meta["provenance"] = _provenance(providers, meta)
    _write_outputs(pairs, summary, out, meta, plots=not args.no_plots)
    print(f"{len(ids)} images x {len(providers)} providers x {len(sizes)} sizes: {n_computed} label maps computed, "
          f"{n_cached} from cache; results in {out}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
