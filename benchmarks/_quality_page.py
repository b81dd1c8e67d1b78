"""The page of ``benchmarks.superpixel_quality``: ``quality.md`` from the summary, the like-for-like
table and the run's sidecar record, and the Fig. 5-style plots. Built from :mod:`benchmarks._report`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import _report as R
from benchmarks._common import PLOT_STYLE, write_figure
from benchmarks._matched import reference_method

__all__ = ["AGGREGATION", "matched_markdown", "paired_markdown", "plot_curves", "render"]

#: How each aggregation is described on the page.
AGGREGATION = {"mean": "(mean over all (image, GT) pairs, the SIN / SpixelFCN protocol).",
               "worst": "(per image the worst GT, then the mean over images; Stutz et al.).",
               "best": "(per image the best GT, then the mean over images)."}


def matched_markdown(table: pd.DataFrame, metrics: dict) -> str:
    """The like-for-like table: every method's metrics at the matched actual counts."""
    cols = [c for c in table.columns if re.fullmatch(r"[a-z_]+@\d+", c)]
    headers = {c: f"{metrics[c.split('@')[0]]} @{c.split('@')[1]}" for c in cols}
    return R.markdown_table(table[["method", *cols]].rename(columns=headers), {h: ".4f" for h in headers.values()})


def paired_markdown(table: pd.DataFrame, reference: str, at, metrics: dict) -> str:
    """One row per (method, K); per metric: difference to the reference, 95 % interval, whether
    the interval excludes 0, and on how many images the method is higher."""
    rows, records = [], table.to_dict("records")
    ref_method = reference_method([r["method"] for r in records], reference)
    for r in records:
        if r["method"] == ref_method:  # only the reference run itself: another SIN (a weights tag) is compared
            continue
        for k in at:
            row = {"method": r["method"], "K actual": k}
            for m, header in metrics.items():
                key = f"{m}@{k}"
                d, lo, hi = (r.get(f"{key}_diff_vs_{reference}{s}", np.nan) for s in ("", "_lo", "_hi"))
                row[header] = "" if np.isnan(d) else R.interval_cell(
                    d, lo, hi, n_better=r[f"{key}_n_better"], n=r["paired_images"])
            if any(row[h] for h in metrics.values()):  # skip counts outside both curves
                rows.append(row)
    return R.markdown_table(pd.DataFrame(rows)) if rows else "(no method to compare)"


def _provenance(record: dict) -> list[str]:
    lines = [f"Tables re-summarized from `{h['source']}` by `{h['command']}` (no label map recomputed)."
             for h in record.get("history", [])]
    lines = [x for line in lines for x in (line, "")]
    return lines + [
        ("Providers (cache tag = name and fingerprint over parameters, code and weights; label maps in the "
         "shared label-map cache, checked against each image's pixels):"), "",
        R.provider_rows(record["providers"]), "",
        f"Command: `{record['command']}`", "",
        f"Machine: {R.machine_line(record['machine'])}", "",
        "Everything above is also in `quality.json` (the provenance sidecar)."]


def render(summary: pd.DataFrame, table: pd.DataFrame, record: dict, *, summary_metrics: dict, matched_at,
           matched_metrics: dict, reference: str, aggregate: str, n_images: int, n_pairs: int) -> str:
    """The markdown page ``quality.md``."""
    proto = record["protocol"]
    cols = ["method", "n_segments", "sp", *summary_metrics, "seconds_per_image"]
    shown = summary[cols].rename(columns={"n_segments": "K requested", "sp": "K actual",
                                          "seconds_per_image": "s / image",
                                          **{k: v[0] for k, v in summary_metrics.items()}})
    formats = {"K actual": ".1f", "s / image": ".3f", **{v[0]: v[1] for v in summary_metrics.values()}}
    limit = proto.get("limit")
    lines = [f"# Superpixel quality on {proto['dataset_label']}", "",
             f"{n_images} images, {n_pairs} (image, ground truth) pairs"
             f"{' (subset: --limit ' + str(limit) + ')' if limit else ''}. "
             f"Aggregation: **{aggregate}** " + AGGREGATION[aggregate],
             f"Boundary tolerance: {proto['tolerance']}. Ground truths: {proto['gt_protocol']}.", ""]
    for p in record["providers"]:
        if p.get("trained") is False:
            lines += [(f"**{p['method']}: no trained weights; its numbers below are those of a randomly initialised "
                       "network, not of the method.**"), ""]
    up = reference.upper()
    lines += [R.markdown_table(shown, formats), "",
              "## Like for like: every method at the same actual number of superpixels", "",
              ("Each method's curve read at K actual = " + " / ".join(str(k) for k in matched_at)
               + " by linear interpolation between its two nearest measured sizes (the rows above are at "
               "equal *requested* K, where the method that over-shoots the count looks better). "
               "Also in `matched.csv`."), "",
              matched_markdown(table, matched_metrics), ""]
    if any(c.endswith(f"_diff_vs_{reference}") for c in table.columns):
        lines += [f"### Paired differences to {up} (bootstrap over images)", "",
                  (f"Method minus {up} at the same actual K, with a 95 % paired bootstrap interval "
                   "(10000 resamples of the images, seed 0; per image the value is interpolated between the same "
                   "two measured sizes as the curve above, images weighted as in the mean, so the difference is "
                   "exactly that of the table above). Each cell: difference [95 % interval], whether the interval "
                   "excludes 0 (where it includes 0 the data show no difference), and n/N: on how many of the "
                   f"N images the method's value is above {up}'s (higher is better for ASA and BR; "
                   "CO is compactness). Empty: K outside a curve's measured range. Columns "
                   f"`<metric>@<K>_diff_vs_{reference}`, `_lo`, `_hi`, `<metric>@<K>_n_better` in `matched.csv`."),
                  "", paired_markdown(table, reference, matched_at, matched_metrics), ""]
    if record.get("failures"):
        lines += ["## Failures", "", f"{len(record['failures'])} (method, K, image) settings failed and are left "
                  "out of the tables above:", ""]
        lines += [f"* `{m}` K={k} `{img}`: {err}" for m, k, img, err in record["failures"]]
        lines.append("")
    lines += [("Columns: K actual = mean number of superpixels produced (x axis of the curves); "
               "BR/BP = boundary recall / the benchmark's boundary precision; UE = 1 - ASA (the benchmark's "
               "`ue`); UE_NP = Neubert-Protzel UE (Stutz et al.'s UE); EV on 8-bit colours; "
               "s / image = median single-thread provider time per image, measured inside the "
               + (f"workers of the Dask cluster at {proto['scheduler']}" if proto.get("scheduler") else
                  f"{proto['processes']} parallel workers") + " (noisy; see results/runtime.md for timings)."), "",
              "Plots: `asa_vs_k.png`, `co_vs_k.png`, `br_bp.png`, `fig5.png`. Raw rows: `pairs.csv.gz`.", "",
              "## Provenance", "", *_provenance(record), ""]
    return "\n".join(lines)


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
