"""Superpixel quality vs number of superpixels (SIN paper Fig. 5 / Fig. 6 protocol).

For every method and requested size, run the provider on every image of the dataset, evaluate
every (image, ground truth) pair with :func:`sin.metrics.evaluate` (the superpixel-benchmark's
metrics) and average. Curves plot the mean *actual* number of superpixels on x.

Usage::

    python -m benchmarks.superpixel_quality --dataset bsds500 --split test \
        --methods slic snic ers sin grid --sizes 200 300 400 500 600 700 800 900 1000 1100 1200 \
        [--limit N] [--data-root DIR] [--out results/bsds500] [--cache cache] [--processes 2] \
        [--aggregate mean|worst|best] [--gt-max-segments 50] [--sin-weights PT] [--skip-unavailable]

    python -m benchmarks.superpixel_quality --dataset folder --images DIR --labels DIR ...

Outputs (under ``--out``): ``quality.csv`` (one row per method x size: mean actual K and the
aggregated metrics), ``pairs.csv.gz`` (every (image, GT) row; read it with
``pd.read_csv(..., dtype={"image": str})`` to keep ids as strings), ``quality.md`` (table, SIN
weights used, protocol, machine), ``asa_vs_k.png``, ``co_vs_k.png``, ``br_bp.png`` and
``fig5.png`` (the three side by side), ``matched.csv`` (every method's curve read at the same
actual counts, 300 / 600 / 1000, see :func:`matched`). Interim CSVs are rewritten after every setting.

Resumable: label maps are cached as compressed ``.npz`` under
``<cache>/<dataset>-<split>/<method tag>/<size>/<image id>.npz`` and reused. The method tag
carries digests of the SIN weights, of non-default parameters and of the provider's source
file, so new weights, parameters or provider code never reuse old maps (changes elsewhere,
e.g. in shared modules, do not change the tag: pass ``--recompute``). Metrics are always
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
import inspect
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import (
    DEFAULT_SIZES,
    PLOT_STYLE,
    REPO,
    command_line,
    file_sha256,
    machine_info,
    markdown_table,
    params_tag,
    resolve_methods,
    sin_weights_info,
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


def _load_cached(path: Path, shape):
    try:
        with np.load(path) as z:
            labels, seconds = z["labels"].astype(np.int32), float(z["seconds"])
    except Exception:  # unreadable or half-written by an older crash: recompute
        return None
    return (labels, seconds) if labels.shape == tuple(shape) else None


def _save_cached(path: Path, labels: np.ndarray, seconds: float) -> None:
    from sin.io import atomic_write

    small = labels.astype(np.uint16) if labels.max() < 65536 else labels.astype(np.int32)

    def _write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, labels=small, seconds=np.float64(seconds))

    atomic_write(path, _write)


def evaluate_image(job: dict) -> dict:
    """Superpixels of one image (cached or computed) and their metric rows (one per GT)."""
    from sin.checkpoint import UntrainedWarning
    from sin.metrics import evaluate
    from sin.providers import get_provider

    ds = _open_dataset(job["dataset"])
    image_id, image, gts = ds[job["index"]]
    cache = Path(job["cache_file"])
    hit = _load_cached(cache, image.shape[:2]) if cache.exists() and not job["recompute"] else None
    if hit is None:
        provider = get_provider(job["method"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedWarning)  # recorded once by the main process
            t0 = time.perf_counter()
            labels = provider(image, job["size"], **job["params"])
            seconds = time.perf_counter() - t0
        _save_cached(cache, labels, seconds)
        cached = False
    else:
        (labels, seconds), cached = hit, True
    df = evaluate(labels, gts, image, image_id=image_id, tolerance=job["tolerance"])
    df.insert(0, "n_segments", job["size"])
    df.insert(0, "method", job["method"])
    df["seconds"] = seconds
    return {"rows": df.to_dict("records"), "seconds": seconds, "cached": cached}


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


def _matched_markdown(table: pd.DataFrame) -> str:
    headers = {c: f"{MATCHED_METRICS[c.split('@')[0]]} @{c.split('@')[1]}" for c in table.columns if "@" in c}
    return markdown_table(table.rename(columns=headers), {h: ".4f" for h in headers.values()})


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
            style = dict(PLOT_STYLE.get(method, dict(marker="o", label=method)))
            label = style.pop("label")
            if method == "sin" and "weights_trained" in grp and str(grp["weights_trained"].iloc[0]) == "False":
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


def _markdown(summary: pd.DataFrame, meta: dict) -> str:
    cols = ["method", "n_segments", "sp", *SUMMARY_METRICS, "seconds_per_image"]
    table = summary[cols].rename(columns={"n_segments": "K requested", "sp": "K actual",
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
    if "sin_weights" in meta:
        w = meta["sin_weights"]
        lines += [f"**SIN weights: {w['note']}.**" + ("" if w["trained"] else
                  " SIN numbers below are those of a randomly initialised network, not of the method."), ""]
    lines += [markdown_table(table, formats), "",
              "## Like for like: every method at the same actual number of superpixels", "",
              "Each method's curve read at K actual = " + " / ".join(str(k) for k in MATCHED_AT)
              + " by linear interpolation between its two nearest measured sizes (the rows above are at "
              "equal *requested* K, where the method that over-shoots the count looks better). "
              "Also in `matched.csv`.", "",
              _matched_markdown(matched(summary)), "",
              ("Columns: K actual = mean number of superpixels produced (x axis of the curves); "
              "BR/BP = boundary recall / the benchmark's boundary precision; UE = 1 - ASA (the benchmark's "
              "`ue`); UE_NP = Neubert-Protzel UE (Stutz et al.'s UE); EV on 8-bit colours; "
              "s / image = median single-thread provider time per image, measured inside the "
              f"{meta['processes']} parallel workers (noisy; see results/runtime.md for timings)."), "",
              "Plots: `asa_vs_k.png`, `co_vs_k.png`, `br_bp.png`, `fig5.png`. Raw rows: `pairs.csv.gz`.", "",
              "Label-map cache tags (method@[SIN weights-]provider source digest[@params digest]): "
              + ", ".join(f"`{t}`" for t in meta["tags"].values()), "",
              f"Command: `{meta['command']}`", "",
              f"Machine: {meta['machine']}", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.superpixel_quality",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="bsds500", choices=("bsds500", "nyuv2", "folder"))
    p.add_argument("--split", default="test")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder (default: env / shared data)")
    p.add_argument("--images", type=Path, help="--dataset folder: image folder")
    p.add_argument("--labels", type=Path, help="--dataset folder: label-map folder")
    p.add_argument("--methods", nargs="+", default=["slic", "snic", "ers", "sin", "grid"])
    p.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES))
    p.add_argument("--limit", type=int, default=None, help="only the first N images (sorted ids)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default results/<dataset>)")
    p.add_argument("--cache", type=Path, default=REPO / "cache", help="label-map cache root")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--aggregate", default="mean", choices=("mean", "worst", "best"))
    p.add_argument("--tolerance", type=int, default=None, help="boundary tolerance radius (default 0.0025 x diagonal)")
    p.add_argument("--gt-max-segments", type=int, default=None,
                   help="merge GT segments beyond this many into the first (SIN's conversion: 50); BSDS500 only")
    p.add_argument("--sin-weights", default=None, help="SIN weights file or 'untrained' (default: shipped weights)")
    p.add_argument("--params", type=json.loads, default={},
                   help='per-method parameters as JSON, e.g. \'{"slic": {"compactness": 20}}\'')
    p.add_argument("--skip-unavailable", action="store_true", help="drop unregistered methods instead of failing")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plots", action="store_true", help="tables only (plots take a few seconds)")
    p.add_argument("--recompute", action="store_true", help="ignore cached label maps (they are overwritten)")
    return p


def main(argv=None) -> pd.DataFrame:
    """Run the benchmark; returns the summary table (also written to ``<out>/quality.csv``)."""
    from sin.datasets import load_dataset
    from sin.providers import get_provider, parallel_map, process_pool

    args = build_parser().parse_args(argv)
    methods = resolve_methods(args.methods, skip_unavailable=args.skip_unavailable)
    sizes = list(dict.fromkeys(args.sizes))
    if any(s < 1 for s in sizes):
        raise SystemExit("error: --sizes must be positive")
    if args.limit is not None and args.limit < 1:
        raise SystemExit("error: --limit must be positive")
    if not isinstance(args.params, dict):
        raise SystemExit("error: --params must be a JSON object {method: {param: value}}")

    # dataset (opened here for the ids; every worker opens its own copy)
    kwargs = {}
    if args.dataset == "folder":
        if args.images is None or args.labels is None:
            raise SystemExit("error: --dataset folder needs --images DIR and --labels DIR")
        kwargs.update(images=str(args.images.resolve()), labels=str(args.labels.resolve()))
        dataset_key = f"folder-{args.images.resolve().name}"
    else:
        kwargs.update(root=str(args.data_root.resolve()) if args.data_root else None, split=args.split)
        dataset_key = f"{args.dataset}-{args.split}"
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

    # per-method parameters and cache tags (SIN: which weights)
    meta = {"dataset_label": f"{args.dataset} ({args.split})" if args.dataset != "folder" else str(args.images),
            "aggregate": args.aggregate, "limit": args.limit, "processes": args.processes,
            "command": command_line(), "machine": None,
            "gt_protocol": ("as stored (all segments)" if args.gt_max_segments is None else
                            f"SIN conversion, segments beyond {args.gt_max_segments} merged into the first"),
            "tolerance": (f"{args.tolerance} px" if args.tolerance is not None
                          else "round(0.0025 x image diagonal) px (1 px on BSDS500), square window")}
    params, tags = {}, {}
    for m in methods:
        params[m] = dict(args.params.get(m, {}))
        extra = None
        if m == "sin":
            info = sin_weights_info(args.sin_weights)
            meta["sin_weights"] = info
            params[m].setdefault("weights", "untrained" if info["file"] is None else args.sin_weights)
            extra = info["tag"]
            print(info["note"], file=sys.stderr)
        user = {k: v for k, v in params[m].items() if k != "weights"}
        # the provider's source file digest: editing a provider never reuses its old maps
        code = file_sha256(inspect.getsourcefile(get_provider(m).fn), 8)
        tags[m] = params_tag(m, user, "-".join(filter(None, [extra, code])))

    all_rows: list = []
    summary = pd.DataFrame()
    n_cached = n_computed = 0
    pool = process_pool(args.processes) if args.processes > 1 else None
    try:
        for m in methods:
            for size in sizes:
                jobs = [{"dataset": spec, "index": i, "method": m, "size": size, "params": params[m],
                         "tolerance": args.tolerance, "recompute": args.recompute,
                         "cache_file": str(args.cache / dataset_key / tags[m] / str(size) / f"{image_id}.npz")}
                        for i, image_id in zip(indices, ids)]
                results = parallel_map(evaluate_image, jobs, processes=args.processes, executor=pool,
                                       desc=f"{m} K={size}", progress=not args.no_progress)
                for r in results:
                    all_rows.extend(r["rows"])
                    n_cached += r["cached"]
                    n_computed += not r["cached"]
                pairs = pd.DataFrame(all_rows)
                summary = summarize(pairs, args.aggregate)
                if "sin_weights" in meta:
                    w = meta["sin_weights"]
                    summary["weights"] = np.where(summary["method"] == "sin", w["file"] or "untrained", "")
                    summary["weights_trained"] = [w["trained"] if m == "sin" else None for m in summary["method"]]
                summary["aggregate"] = args.aggregate
                # interim results after every setting: an interrupted run still leaves tables
                write_csv(summary, out / "quality.csv", float_format="%.6g")
                write_csv(pairs, out / "pairs.csv.gz", float_format="%.6g")
    finally:
        if pool is not None:
            pool.shutdown()

    meta.update(tags=tags, n_images=len(ids), n_pairs=int(pairs.groupby(["method", "n_segments"]).size().iloc[0]),
                machine=", ".join(f"{k}={v}" for k, v in machine_info().items()))
    write_csv(matched(summary), out / "matched.csv", float_format="%.6g")
    write_text(out / "quality.md", _markdown(summary, meta))
    if not args.no_plots:
        plot_curves(summary, out, title=f"{meta['dataset_label']}, {len(ids)} images")
    print(f"{len(ids)} images x {len(methods)} methods x {len(sizes)} sizes: {n_computed} label maps computed, "
          f"{n_cached} from cache; results in {out}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
