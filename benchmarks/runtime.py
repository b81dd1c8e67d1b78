"""Runtime vs number of superpixels for every provider (SIN paper Fig. 4 style, CPU).

Each provider runs on one 481 x 321 BSDS500 test image (default: the first landscape image of
the test split; the bundled sample photo resized to 481 x 321 when BSDS500 is absent). Per
method: warm-up calls first (numba JIT compilation, model loading and first-call allocations
are excluded), then for every size one more warm-up and ``--repeats`` timed calls in this
process; the median is reported. Threads of torch / OpenCV / numba are capped to
``--threads`` (default 1: single-thread numbers are the most reproducible on a shared machine;
skimage's SLIC and FH are single-threaded anyway).

Usage::

    python -m benchmarks.runtime [--methods sin slic ...] [--sizes 200 300 ... 1200]
        [--repeats 5] [--warmup 2] [--threads 1] [--image PATH] [--out results]
        [--sin-weights PT] [--skip-unavailable]

Writes ``<out>/runtime.csv`` (method, requested and actual K, median / min / max seconds),
``<out>/runtime.png`` (log-scale y) and ``<out>/runtime.md`` (table, machine load before and
after, thread settings, SIN weights).

The paper's Fig. 4 times deep models on an RTX 2080Ti GPU; these are CPU times and only the
ratios between methods measured side by side in one run are meaningful.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    machine_info,
    markdown_table,
    resolve_methods,
    sin_weights_info,
    write_csv,
    write_figure,
    write_text,
)



def default_image(data_root=None) -> tuple[np.ndarray, str]:
    """The first landscape (481 x 321) BSDS500 test image, else the bundled sample resized."""
    from PIL import Image

    from sin.datasets import dataset_root
    from sin.io import SAMPLE_IMAGE, read_image

    try:
        folder = dataset_root("BSDS500", data_root, env_var="SIN_BSDS500") / "images" / "test"
        for path in sorted(folder.glob("*.jpg")):
            img = read_image(path)
            if img.shape[:2] == (321, 481):
                return img, f"BSDS500 test {path.stem} (481x321)"
    except FileNotFoundError:
        pass
    img = np.asarray(Image.fromarray(read_image(SAMPLE_IMAGE)).resize((481, 321), Image.BICUBIC))
    return img, f"{SAMPLE_IMAGE.name} resized to 481x321 (BSDS500 not found)"


def time_provider(provider, image, size: int, *, repeats: int, warmup: int, params: dict) -> dict:
    """Median/min/max wall time of ``provider(image, size)`` over ``repeats`` calls."""
    for _ in range(warmup):
        labels = provider(image, size, **params)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        labels = provider(image, size, **params)
        times.append(time.perf_counter() - t0)
    return {"sp": int(labels.max()) + 1, "median_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times), "repeats": repeats}


def plot_runtime(table: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method, grp in table.groupby("method", sort=False):
        grp = grp.sort_values("n_segments")  # polyline through the settings in order
        style = dict(PLOT_STYLE.get(method, dict(marker="o", label=method)))
        label = style.pop("label")
        ax.semilogy(grp["sp"], grp["median_s"], markersize=7, label=label, **style)
    ax.set_xlabel("Number of superpixels")
    ax.set_ylabel("Time per image (s, log scale)")
    lo, hi = float(table["sp"].min()), float(table["sp"].max())
    if hi >= 200 and lo <= 1200:  # the paper's range, widened so that no point is hidden
        ax.set_xlim(min(200, lo - 20), max(1200, hi + 20))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=10)
    return write_figure(fig, path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.runtime", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=None, help="default: every registered provider")
    p.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2, help="warm-up calls per method before timing")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--image", type=Path, default=None)
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--out", type=Path, default=REPO / "results")
    p.add_argument("--sin-weights", default=None)
    p.add_argument("--skip-unavailable", action="store_true")
    p.add_argument("--plot-only", action="store_true", help="redraw <out>/runtime.png from <out>/runtime.csv")
    return p


def main(argv=None) -> pd.DataFrame:
    from sin.checkpoint import UntrainedWarning
    from sin.io import read_image
    from sin.providers import available_providers, get_provider
    from sin.providers.batch import limit_threads

    args = build_parser().parse_args(argv)
    if args.plot_only:
        table = pd.read_csv(args.out / "runtime.csv")
        plot_runtime(table, args.out / "runtime.png", title=f"CPU, {int(table['threads'].iloc[0])} thread(s)")
        return table
    methods = resolve_methods(args.methods or available_providers(), skip_unavailable=args.skip_unavailable)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1 or any(s < 1 for s in args.sizes):
        raise SystemExit("error: --repeats, --threads and --sizes must be positive, --warmup >= 0")
    limit_threads(args.threads)
    if args.image is not None:
        image, image_label = read_image(args.image), str(args.image)
    else:
        image, image_label = default_image(args.data_root)
    load_before = os.getloadavg()
    params = {m: {} for m in methods}
    notes = []
    if "sin" in methods:
        info = sin_weights_info(args.sin_weights)
        params["sin"]["weights"] = "untrained" if info["file"] is None else args.sin_weights
        notes.append(info["note"] + " (runtime does not depend on the weight values)")

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWarning)
        for m in methods:
            provider = get_provider(m)
            for _ in range(args.warmup):  # JIT / model load / first-call costs, excluded
                provider(image, args.sizes[0], **params[m])
            for size in args.sizes:
                r = time_provider(provider, image, size, repeats=args.repeats, warmup=1, params=params[m])
                rows.append({"method": m, "n_segments": size, **r, "threads": args.threads})
                print(f"{m:6s} K={size:5d} actual={r['sp']:5d} median {r['median_s'] * 1000:8.1f} ms", file=sys.stderr)
    table = pd.DataFrame(rows)
    load_after = os.getloadavg()

    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(table, args.out / "runtime.csv", float_format="%.6g")
    plot_runtime(table, args.out / "runtime.png", title=f"CPU, {args.threads} thread(s)")
    wide = table.pivot(index="n_segments", columns="method", values="median_s")[methods] * 1000
    wide = wide.reset_index().rename(columns={"n_segments": "K requested"})
    md = [
        "# Runtime vs number of superpixels (CPU)",
        "",
        (f"Median of {args.repeats} runs per point after warm-up (JIT, model loading excluded), in one process, "
        f"{args.threads} thread(s) for torch / OpenCV / numba. Image: {image_label}."),
        "",
        ("Median time per image in **milliseconds** (rows: requested K; the actual K of every point is in "
        "`runtime.csv`):"),
        "",
        markdown_table(wide, {m: ".1f" for m in methods}),
        "",
        *[f"- {n}" for n in notes],
        (f"- Load average (1/5/15 min) before: {tuple(round(x, 2) for x in load_before)}, "
        f"after: {tuple(round(x, 2) for x in load_after)} on {os.cpu_count()} cores; timings on a loaded "
        "machine are noisy, compare methods only within one run."),
        "- The SIN paper's Fig. 4 is measured on an RTX 2080Ti GPU; these are CPU numbers.",
        "",
        f"Command: `{command_line()}`",
        "",
        "Machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()),
        "",
    ]
    write_text(args.out / "runtime.md", "\n".join(md))
    return table


if __name__ == "__main__":
    main()
