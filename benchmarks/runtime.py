"""Runtime of every provider: against the number of superpixels and against the image size (CPU).

Two tables, measured **interleaved in one run** (every round times each provider once on each
setting, then the next round; medians over rounds), so that load changes on a shared machine
hit every method alike:

* ``runtime.{csv,md,png}``: time vs requested K (``--n-segments``, default 200..1200) on one
  481 x 321 BSDS500 test image (SIN paper Fig. 4 style);
* ``runtime_scaling.{csv,md,png}``: time vs image size (``--image-sizes``, default 481x321,
  1024x768, 2048x1536, 4000x3000; the same image resized bicubically) at a fixed count
  (``--scaling-count``, 600) and at a count proportional to the area (600 at 481 x 321, i.e.
  one superpixel per 257 pixels), with the exponent ``b`` of a least-squares fit
  ``time ~ pixels^b`` per provider and mode.

Threads of torch / OpenCV / numba (and fast-slic's ``num_threads``) are capped to ``--threads``
(default 1); the OpenMP wait policy is PASSIVE (set before torch starts, see
:mod:`sin.threads`). A provider whose warm-up call on a setting takes more CPU time
than ``--budget-s`` is not timed there nor on larger images (the reason is written to the tables).
The CPU's SIMD flags (avx2 / avx512 / bf16 / amx), the load average before and after and SIN's
resolved precision are recorded.

Usage::

    python -m benchmarks.runtime [--providers sin slic ... | default: all registered]
        [--n-segments 200 300 ... 1200] [--image-sizes 481x321 1024x768 2048x1536 4000x3000]
        [--scaling-count 600] [--repeats 5] [--threads 1] [--budget-s 30]
        [--no-k-sweep] [--no-scaling] [--image PATH] [--out results]
    python -m benchmarks.runtime --quick          # 2 repeats, small sizes: a smoke test
    python -m benchmarks.runtime --plot-only      # redraw the figures from the CSVs

The paper's Fig. 4 times deep models on an RTX 2080Ti GPU; these are CPU times and only ratios
between methods measured side by side in one run are meaningful.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts (sin.threads)
os.environ.setdefault("KMP_BLOCKTIME", "0")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks._common import (  # noqa: E402
    DEFAULT_SIZES,
    PLOT_STYLE,
    REPO,
    add_provider_args,
    command_line,
    machine_info,
    markdown_table,
    positive_int,
    provider_info,
    resolve_providers,
    write_csv,
    write_figure,
    write_text,
)
from sin.argtypes import Parser, cli_main, positive_float  # noqa: E402

IMAGE_SIZES = ("481x321", "1024x768", "2048x1536", "4000x3000")
#: Pixels per superpixel of the proportional mode: 600 superpixels at 481 x 321.
BASE_PIXELS = 481 * 321
STYLE = PLOT_STYLE


def parse_size(text: str) -> tuple[int, int]:
    """argparse type: ``WIDTHxHEIGHT`` -> (height, width)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1024x768, got {text!r}") from None
    if w < 2 or h < 2:
        raise argparse.ArgumentTypeError(f"image size must be at least 2x2, got {text!r}")
    return h, w


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


def resized(image: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC))


def cpu_flags() -> str:
    from benchmarks.sin_speed import cpu_flags as flags

    return flags()


def run_interleaved(providers, settings, images, *, repeats: int, budget_s: float, log=print) -> pd.DataFrame:
    """Time every provider on every setting, interleaved round by round.

    ``settings``: list of dicts with ``table``, ``size`` (label), ``h``, ``w``, ``n_segments``.
    Round 0 is a warm-up (JIT, model loading, first-call allocations; not timed); a provider
    whose warm-up call on a setting takes more than ``budget_s`` seconds of CPU time (of this
    process, all threads) is skipped there and on every larger image of the same table.
    """
    skip: dict = {}  # (provider tag, setting index) -> reason
    times: dict = {}
    counts: dict = {}
    for p in providers:  # one call on the smallest image first: model loading / numba JIT
        p(images[min(images, key=lambda k: k[0] * k[1])], 100)
    for rnd in range(repeats + 1):
        for i, s in enumerate(settings):
            img = images[(s["h"], s["w"])]
            for p in providers:
                key = (p.tag, i)
                if key in skip:
                    continue
                c0, t0 = time.process_time(), time.perf_counter()
                try:
                    labels = p(img, s["n_segments"])
                except ValueError as exc:  # e.g. a provider's image-size limit: recorded, not fatal
                    why = f"refused: {str(exc).split(';')[0].split(' (')[0]}"
                    log(f"{p.spec_string()} {s['size']} K={s['n_segments']}: {why}")
                    for j, t in enumerate(settings):
                        if t["table"] == s["table"] and t["h"] * t["w"] >= s["h"] * s["w"] and j >= i:
                            skip.setdefault((p.tag, j), why)
                    continue
                dt = time.perf_counter() - t0
                cpu = time.process_time() - c0  # the budget is CPU time: robust to a loaded machine
                counts[key] = int(labels.max()) + 1
                if rnd == 0:
                    log(f"warm-up {p.spec_string()} {s['size']} K={s['n_segments']}: {dt:.2f} s wall, {cpu:.2f} s CPU")
                    if cpu > budget_s:
                        why = f"warm-up call took {cpu:.0f} s CPU > budget {budget_s:g} s"
                        for j, t in enumerate(settings):  # and on every larger image of this table
                            if t["table"] == s["table"] and t["h"] * t["w"] >= s["h"] * s["w"] and j >= i:
                                skip.setdefault((p.tag, j), why if j == i else f"skipped: {why} at {s['size']}")
                    continue
                times.setdefault(key, []).append(dt)
        if rnd:
            log(f"round {rnd}/{repeats} done, load {os.getloadavg()[0]:.2f}")
    rows = []
    for i, s in enumerate(settings):
        for p in providers:
            key = (p.tag, i)
            ts = times.get(key, [])
            rows.append({**{k: s[k] for k in ("table", "size", "n_segments")}, "pixels": s["h"] * s["w"],
                         "method": p.name, "spec": p.spec_string(), "sp": counts.get(key),
                         "median_s": float(np.median(ts)) if ts else math.nan,
                         "min_s": min(ts) if ts else math.nan, "max_s": max(ts) if ts else math.nan,
                         "repeats": len(ts), "note": skip.get(key, "")})
    return pd.DataFrame(rows)


def fit_exponents(table: pd.DataFrame) -> pd.DataFrame:
    """Least-squares slope of log(time) vs log(pixels) per provider and mode (>= 2 sizes)."""
    rows = []
    for (mode, spec), g in table.dropna(subset=["median_s"]).groupby(["table", "spec"], sort=False):
        if g["pixels"].nunique() < 2:
            continue
        b, a = np.polyfit(np.log(g["pixels"]), np.log(g["median_s"]), 1)
        rows.append({"table": mode, "spec": spec, "exponent": b, "sizes": g["pixels"].nunique()})
    return pd.DataFrame(rows)


def plot_runtime(table: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for spec, grp in table.dropna(subset=["median_s"]).groupby("spec", sort=False):
        grp = grp.sort_values("n_segments")
        style = dict(STYLE.get(spec, dict(marker="o", label=spec)))
        label = style.pop("label", spec)
        ax.semilogy(grp["sp"], grp["median_s"], markersize=7, label=label, **style)
    ax.set_xlabel("Number of superpixels")
    ax.set_ylabel("Time per image (s, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=10)
    return write_figure(fig, path)


def plot_scaling(table: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in ("fixed", "proportional") if (table["table"] == m).any()]
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4.5), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        sub = table[(table["table"] == mode)].dropna(subset=["median_s"])
        for spec, grp in sub.groupby("spec", sort=False):
            grp = grp.sort_values("pixels")
            style = dict(STYLE.get(spec, dict(marker="o", label=spec)))
            label = style.pop("label", spec)
            ax.loglog(grp["pixels"] / 1e6, grp["median_s"], markersize=7, label=label, **style)
        k = int(sub["n_segments"].iloc[0]) if mode == "fixed" and len(sub) else None
        ax.set_title(f"{k} superpixels" if k else "superpixels proportional to area (1 per 257 px)", fontsize=10)
        ax.set_xlabel("Image size (megapixels, log)")
        ax.set_ylabel("Time per image (s, log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        fig.suptitle(title, fontsize=10)
    return write_figure(fig, path)


def build_parser() -> Parser:
    p = Parser(prog="python -m benchmarks.runtime", description=__doc__.split("\n\n")[0])
    add_provider_args(p, default=())
    p.add_argument("--n-segments", nargs="+", type=positive_int, default=list(DEFAULT_SIZES),
                   help="requested counts of the K sweep at 481x321")
    p.add_argument("--image-sizes", nargs="+", type=parse_size, default=[parse_size(s) for s in IMAGE_SIZES],
                   metavar="WxH", help="image sizes of the scaling table")
    p.add_argument("--scaling-count", type=positive_int, default=600, help="the fixed count of the scaling table")
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--budget-s", type=positive_float, default=30.0, help="skip a provider whose warm-up call exceeds this")
    p.add_argument("--no-k-sweep", action="store_true")
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--quick", action="store_true", help="2 repeats, K 300/600, sizes 481x321 and 1024x768")
    p.add_argument("--image", type=Path, default=None)
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--out", type=Path, default=REPO / "results")
    p.add_argument("--plot-only", action="store_true", help="redraw the figures from the CSVs in --out")
    return p


def main(argv=None) -> int:
    """Command line; returns the exit code (0 done, 2 usage error or expected failure, one line)."""
    return cli_main(build_parser, run, argv)


def run(args) -> pd.DataFrame | None:
    """The measurements, tables and plots; returns the table (``None`` with ``--plot-only``)."""
    from sin.checkpoint import UntrainedWarning
    from sin.inference import resolve_precision
    from sin.io import read_image
    from sin.providers import available_providers
    from sin.providers.batch import limit_threads

    out = args.out
    if args.plot_only:
        for name, fn in (("runtime", plot_runtime), ("runtime_scaling", plot_scaling)):
            if (out / f"{name}.csv").is_file():
                fn(pd.read_csv(out / f"{name}.csv"), out / f"{name}.png")
        return None
    if args.quick:
        args.repeats = min(args.repeats, 2)
        args.n_segments = [300, 600]
        args.image_sizes = [(321, 481), (768, 1024)]
    specs = args.providers or available_providers()
    # fast-slic takes its thread count as a parameter (it does not read OMP_NUM_THREADS)
    specs = [f"{s}:num_threads={args.threads}" if s == "fastslic" else s for s in specs]
    providers = resolve_providers(specs, skip_unavailable=args.skip_unavailable)
    limit_threads(args.threads)
    image, image_label = (read_image(args.image), str(args.image)) if args.image else default_image(args.data_root)

    settings = []
    if not args.no_k_sweep:
        settings += [{"table": "k_sweep", "size": "481x321", "h": 321, "w": 481, "n_segments": k}
                     for k in args.n_segments]
    if not args.no_scaling:
        for h, w in sorted(args.image_sizes, key=lambda s: s[0] * s[1]):
            label = f"{w}x{h}"
            settings.append({"table": "fixed", "size": label, "h": h, "w": w, "n_segments": args.scaling_count})
            settings.append({"table": "proportional", "size": label, "h": h, "w": w,
                             "n_segments": max(1, round(args.scaling_count * h * w / BASE_PIXELS))})
    if not settings:
        raise ValueError("nothing to run (--no-k-sweep and --no-scaling)")
    images = {(s["h"], s["w"]): resized(image, s["h"], s["w"]) for s in settings}

    load_before = os.getloadavg()
    t_start = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWarning)
        table = run_interleaved(providers, settings, images, repeats=args.repeats, budget_s=args.budget_s,
                                log=lambda m: print(m, file=sys.stderr))
    load_after = os.getloadavg()
    minutes = (time.time() - t_start) / 60
    table["threads"] = args.threads

    sin_note = [provider_info(p)["note"] for p in providers if p.name == "sin"]
    auto = resolve_precision("auto", explain=True)
    machine = ", ".join(f"{k}={v}" for k, v in machine_info().items())
    common = [
        f"- CPU: {cpu_flags()}; {os.cpu_count()} logical cores. SIN `precision='auto'` -> {auto[0]} ({auto[1]}).",
        f"- {args.threads} thread(s) for torch / OpenCV / numba / fast-slic, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY')}; {args.repeats} interleaved rounds after a warm-up round, medians; "
        f"{minutes:.0f} min in all.",
        f"- Load average (1/5/15 min) before {tuple(round(x, 2) for x in load_before)}, after "
        f"{tuple(round(x, 2) for x in load_after)}: a shared machine, compare methods only within this run.",
        *[f"- {n}" for n in sin_note],
        ("- Times are whole provider calls (`Provider.__call__`: input conversion, the method, the label-contract "
         "checks and the relabelling to 0..K-1). At 12 MP the registry's relabelling (`np.unique`, a sort) took "
         "1.36 s on SIN's map and 0.34 s on fast-slic's in a separate measurement; the methods' own calls are "
         "compared in `results/sin_speed.md`."),
        f"- Image: {image_label}" + (", resized bicubically to each size." if not args.no_scaling else "."),
        "", f"Command: `{command_line()}`", "", f"Machine: {machine}", ""]
    out.mkdir(parents=True, exist_ok=True)
    specs_order = list(dict.fromkeys(table["spec"]))
    fmt = {s: ".1f" for s in specs_order}

    ksw = table[table["table"] == "k_sweep"]
    if len(ksw):
        write_csv(ksw.drop(columns=["table", "size", "pixels"]), out / "runtime.csv", float_format="%.6g")
        plot_runtime(ksw, out / "runtime.png", title=f"CPU, {args.threads} thread(s), 481x321")
        wide = (ksw.pivot(index="n_segments", columns="spec", values="median_s")[specs_order] * 1000).reset_index()
        wide = wide.rename(columns={"n_segments": "K requested"})
        notes = ksw[ksw.note != ""]
        md = ["# Runtime vs number of superpixels (CPU, 481 x 321)", "",
              "Median time per image in **milliseconds** (rows: requested K; actual counts in `runtime.csv`):", "",
              markdown_table(wide, fmt), "",
              *[f"- {r.spec} at K={r.n_segments}: {r.note}" for r in notes.itertuples()],
              "- The SIN paper's Fig. 4 is measured on an RTX 2080Ti GPU; these are CPU numbers.", *common]
        write_text(out / "runtime.md", "\n".join(md))

    sc = table[table["table"] != "k_sweep"]
    if len(sc):
        write_csv(sc, out / "runtime_scaling.csv", float_format="%.6g")
        plot_scaling(sc, out / "runtime_scaling.png", title=f"CPU, {args.threads} thread(s)")
        exps = fit_exponents(sc)
        md = ["# Runtime vs image size (CPU)", ""]
        for mode, title in (("fixed", f"{args.scaling_count} superpixels at every size"),
                            ("proportional", f"superpixels proportional to the area ({args.scaling_count} at 481x321)")):
            sub = sc[sc["table"] == mode]
            if not len(sub):
                continue
            wide = (sub.pivot(index="size", columns="spec", values="median_s")[specs_order] * 1000)
            wide = wide.loc[list(dict.fromkeys(sub["size"]))].reset_index()
            ks = sub.groupby("size", sort=False)["n_segments"].first()
            wide.insert(1, "K", [int(ks[s]) for s in wide["size"]])
            e = exps[exps["table"] == mode].set_index("spec")["exponent"]
            exp_row = {"size": "**exponent b** (time ~ pixels^b)", "K": ""}
            exp_row.update({s: (f"{e[s]:.2f}" if s in e else "") for s in specs_order})
            rows = wide.astype(object)
            rows.loc[len(rows)] = exp_row
            md += [f"## {title}", "", "Median ms per image:", "", markdown_table(rows, fmt), ""]
            md += [f"- {r.spec} at {r.size}: {r.note}" for r in sub[sub.note != ""].itertuples()]
            md.append("")
        fixed = sc[sc["table"] == "fixed"]
        big = fixed[fixed["pixels"] == fixed["pixels"].max()].set_index("method")["median_s"]
        if "sin" in big and "fastslic" in big and not (math.isnan(big["sin"]) or math.isnan(big["fastslic"])):
            md += [f"At {fixed['size'].iloc[-1]} with {args.scaling_count} superpixels SIN takes "
                   f"**{big['sin'] / big['fastslic']:.2f}x** the time of fast-slic (same run, medians).", ""]
        md += common
        write_text(out / "runtime_scaling.md", "\n".join(md))
    return table


if __name__ == "__main__":
    sys.exit(main())
