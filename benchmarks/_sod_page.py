"""The page of ``benchmarks.sod_table`` (Table 2): markdown from the rows, the paired comparisons and
the run's sidecar record, and the example figure. Built from :mod:`benchmarks._report` pieces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import _report as R
from benchmarks._common import write_figure

__all__ = ["dataset_label", "example_figure", "render"]


def dataset_label(name: str, n: int) -> str:
    """How the page names the set: only the full 1000-image ECSSD is "ECSSD"."""
    if name.lower() == "ecssd" and n == 1000:
        return "ECSSD (1000 images)"
    if name == "saliency-mini":
        return f"{n}-image saliency-mini set, not ECSSD"
    return f"{n}-image `{name}` set" + ("" if name.lower() == "ecssd" else ", not ECSSD")


def _flips(comps, paired) -> list[str]:
    # MAE and S / E can disagree: MAE rewards maps that are dark on the background, S and E
    # reward structure and contrast; say where the sign flips instead of hiding it.
    flips = []
    for c in comps:
        if c["metric"] == "mae":
            continue
        m = next(x for x in comps if x["size"] == c["size"] and x["other"] == c["other"] and x["metric"] == "mae")
        if (m["diff"] < 0) != (c["diff"] > 0):
            flips.append(f"{c['other']} at {c['size']} on {paired[c['metric']]} "
                         f"({'significant' if c['significant'] else 'within the noise'})")
    return flips


def _comparison_lines(comps, sizes, stem: str, *, paired, n_boot: int, lower_better) -> list[str]:
    n_img = comps[0]["n"]
    lines = ["", "## Is SIN's difference larger than the noise?", "",
             f"Paired bootstrap over images ({n_boot} resamples, seed 0): the mean per-image difference "
             "SIN minus the other provider and its 95 % percentile interval, for the metrics that are means "
             "of per-image values (max F is a maximum over thresholds of the mean curve and has no per-image "
             f"decomposition). Per-image values: `{stem}_per_image.csv.gz`."
             + (" With this few images the intervals are wide and say little." if n_img < 30 else ""), ""]
    df = pd.DataFrame([{"row": c["size"], "SIN minus": c["other"], "metric": paired[c["metric"]],
                        "mean diff": c["diff"], "95 % CI low": c["lo"], "95 % CI high": c["hi"],
                        "beyond noise": "yes" if c["significant"] else "no"} for c in comps])
    lines += [R.markdown_table(df, {"mean diff": "+.4f", "95 % CI low": "+.4f", "95 % CI high": "+.4f"}), ""]
    for size in sizes:
        lines.append(f"**{size} superpixels.**")
        for c in comps:
            if c["size"] == size and c["metric"] == "mae":
                other = c["other"].upper() if c["other"].isalnum() else c["other"]
                lines.append("* " + R.interval_sentence("SIN", other, paired["mae"], c["diff"], c["lo"], c["hi"],
                                                        c["n"], lower_is_better="mae" in lower_better))
        lines.append("")
    flips = _flips(comps, paired)
    if flips:
        lines += ["Where the order reverses relative to MAE: " + "; ".join(flips) + ". MAE scores the raw map "
                  "against the binary mask (a map that is uniformly dark on the background wins), while S- and "
                  "E-measure min-max normalise each map and score region/object structure and alignment, so "
                  "a provider can lead on one and trail on the other.", ""]
    return lines


def render(record: dict, rows: list[dict], comps: list[dict], stem: str, *, paired: dict, paper: dict,
           n_boot: int, lower_better) -> str:
    """The markdown page of Table 2."""
    ds, run, proto = record["dataset"], record["run"], record["protocol"]
    label = dataset_label(ds["name"], ds["n_images"])
    sizes = proto["rows"]
    names = {p["method"]: p["spec"].split(":")[0] for p in record["providers"]}
    by = {(r["provider"], r["size"]): r for r in rows}
    cols = [*names, *record.get("skipped_providers", [])]
    lines = [f"# Saliency Optimization with different superpixels: MAE ({label})", "",
             f"**{label}.** The `paper (ECSSD)` rows are the SIN paper's Table 2 on the 1000-image ECSSD set, "
             "given for reference" + ("" if label.startswith("ECSSD") else
                                      " only: numbers from this set are not comparable to them") + ".", "",
             f"Generated {record['date']} by `{record['command']}`; SO parameters: `{proto['so_params']}` "
             "(`downstream.saliency_optimization`, a port of W. Zhu's released MATLAB code).", "",
             f"Wall time: {run['wall_s']:.0f} s for {len(names)} providers x {len(sizes)} sizes x "
             f"{rows[0]['n_images']} images with {run['processes']} worker process(es), 1 thread each "
             f"({run['computed']} maps computed, {run['reused']} reused from the cache; {run['cpu_count']} CPUs, "
             f"load average {run['load_before']:.2f} before / {run['load_after']:.2f} after). Worker CPU time "
             f"(reading, maps made in this run, scoring): {run['cpu_s']:.0f} s, i.e. {run['cpu_per_image']:.2f} s per "
             f"image; for a run that computes every map, CPU time / processes is the wall time on idle cores.", ""]
    lines += [f"{h['what'][0].upper()}{h['what'][1:]}: `{h['command']}` ({h['date']})." for h in
              record.get("history", [])]
    lines += ["", "## Table 2 layout: MAE (lower is better)", "",
              "| superpixels | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for size in sizes:
        cells = [f"{by[(p, size)]['mae']:.4f}" if (p, size) in by else "skipped" for p in cols]
        lines.append(f"| {size} (ours, {ds['name']}) | " + " | ".join(cells) + " |")
        if size in paper:
            ref = [f"{paper[size][names.get(p, p)]:.4f}" if names.get(p, p) in paper[size] else "n/a" for p in cols]
            lines.append(f"| {size} paper (ECSSD) | " + " | ".join(ref) + " |")
    table = pd.DataFrame([{"row": r["size"], "provider": r["provider"], "images": r["n_images"],
                           "K req.": r["mean_requested"], "K": r["mean_superpixels"], "MAE": r["mae"],
                           "S": r["s_measure"], "max F": r["max_f"], "mean E": r["mean_e"], "max E": r["max_e"],
                           "provider s": r["median_provider_s"], "SO s": r["median_so_s"],
                           "provider CPU s": r["median_provider_cpu_s"], "SO CPU s": r["median_so_cpu_s"]}
                          for r in rows])
    fmt = {**dict.fromkeys(["K req.", "K"], ".1f"), **dict.fromkeys(["MAE", "S", "max F", "mean E", "max E"], ".4f"),
           **dict.fromkeys(["provider s", "SO s", "provider CPU s", "SO CPU s"], ".3f")}
    lines += ["", "## All metrics", "",
              "MAE as in the SO code (8-bit map, GT > 128, mean of per-image values); S-measure, max F-measure "
              "(beta^2 = 0.3) and mean / max E-measure from pysodmetrics. `K req.` / `K` are the mean requested "
              "and obtained superpixel counts per image; times are per-image medians (provider: when the label "
              "map was computed, possibly by an earlier run; SO excludes the superpixels), wall and CPU seconds "
              "(CPU: `time.process_time` of the single-threaded worker, what the work costs without waiting for "
              "other jobs on the machine).", "", R.markdown_table(table, fmt)]
    if comps:
        lines += _comparison_lines(comps, sizes, stem, paired=paired, n_boot=n_boot, lower_better=lower_better)
    else:
        lines.append("")
    slic = proto.get("slic_compactness")
    lines += ["## How every method gets its superpixel count", "",
              f"Protocol: the `{proto.get('preset', 'sin_paper')}` preset of `downstream.saliency_optimization` "
              "(`so_saliency` applies it by default).", "",
              "* Row S requests `K = round(h * w * S / 120000)` superpixels per image: `round(h w / 600)` for the "
              "200 row and `round(h w / 300)` for 400, the SO demo's `pixNumInSP` rule (about 200 / 400 on a "
              "300 x 400 image).",
              f"* `slic`: scikit-image SLIC with compactness {slic:g} (the SO demo's `SLIC_mex` value, unless the "
              "spec sets one; a different implementation from the compiled one the paper used), count calibrated "
              "towards K.",
              "* `snic`, `ers`, `ssn`, `grid`: K passed to the provider.",
              "* `sin`: K goes through SIN's seed-grid rule `sin.geometry.grid_shape(K, h, w)` (about square "
              "cells), so SIN yields `n * m` superpixels (e.g. 12 x 17 = 204 for K = 200 on 300 x 400). The released "
              "SIN script instead resized each image by a fixed 0.7 factor, about 252 superpixels on 300 x 400, so "
              "its 200 row used more superpixels than the others.",
              "* `ssn` and `grid` are extras outside the paper's table (SSN: the deep reference; grid: trivial "
              "baseline).", "",
              "## Providers", "", R.provider_rows(record["providers"]), "",
              f"Machine: {R.machine_line(record['machine'])}. Provenance: `{stem}.json`.", ""]
    if record.get("skipped_providers"):
        lines += ["## Skipped providers", "",
                  f"Could not be resolved when this ran: {', '.join(record['skipped_providers'])}.", ""]
    if ds["skipped"] or ds["failed"]:
        lines += ["## Images left out", ""]
        lines += [f"* `{n}`: {why}" for n, why in ds["skipped"] + ds["failed"]]
        lines.append("")
    ex = record["examples"]
    lines += [f"Example maps: `{stem}_examples.png` ({', '.join(n for n, _ in ex['picks'])}; chosen as "
              f"{ex['rule']}).", ""]
    return "\n".join(lines)


def example_figure(dataset, picks, results, labels, size: int, path: Path) -> None:
    """Rows: the picked images; columns: image, ground truth, every provider's SO map at ``size``
    (read back from the SO-map cache, where the workers stored them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    index = {it.name: i for i, it in enumerate(dataset.items)}
    by_name = {r["name"]: r for r in results}
    cols = 2 + len(labels)
    fig, axes = plt.subplots(len(picks), cols, figsize=(2.0 * cols, 1.8 * len(picks)), squeeze=False)
    for r, (name, note) in enumerate(picks):
        _, image, gt = dataset.load(index[name])
        panels = [(image, "image"), (gt, "ground truth")]
        for pi, label in enumerate(labels):
            rec = by_name[name]["records"][(pi, size)]
            with Image.open(rec["path"]) as im:
                panels.append((np.asarray(im), f"{label} K={rec['n_superpixels']}"))
        for c, (arr, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(arr, cmap=None if arr.ndim == 3 else "gray", vmin=0, vmax=255 if arr.dtype == np.uint8 else 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 or c >= 2:
                ax.set_title(title, fontsize=7)
        axes[r, 0].set_ylabel(f"{name}\n{note}" if note else name, fontsize=8)
    fig.suptitle(f"SO maps, {dataset.name}, {size} superpixels", fontsize=9)
    fig.tight_layout()
    write_figure(fig, path, dpi=110)
