"""Table 2 of the SIN paper: Saliency Optimization MAE with different superpixels.

For every image of a salient-object dataset, every provider and every "size" row (200 / 400
superpixels), run the provider with the SO demo's superpixel count, then
:func:`downstream.saliency_optimization.saliency_optimization`, store the 8-bit map (PNG, as the
original code does) and score it: MAE (the table metric, ``CalMAE`` semantics), plus S-measure,
max F-measure and E-measure (pysodmetrics).

Superpixel count per image (``../shared/specs/saliency_optimization.md`` section 4): row S uses
``K = round(h * w * S / 120000)``, i.e. ``round(h w / 600)`` for 200 and ``round(h w / 300)`` for
400 (the SO demo's ``pixNumInSP``). SLIC, SNIC and ERS get K; SIN gets K through its grid rule
:func:`sin.geometry.grid_shape` (``n x m`` seeds).

Usage::

    python -m benchmarks.sod_table --dataset ../shared/data/saliency-mini \
        [--providers slic snic ers sin] [--sizes 200 400] [--out results/saliency] \
        [--cache cache/saliency] [--params code|paper] [--sin-weights PT] [--limit N]

Writes ``<out>/table2_<dataset>.md``, ``.csv`` (one row per size x provider, all metrics) and
``table2_<dataset>_examples.png``. Maps are cached under ``--cache`` (resumable: existing maps are
reused; the folder name carries a hash of every setting, including which SIN weights file;
``--fresh`` recomputes everything, e.g. after a provider's code changed). Providers that are not registered
are skipped with a note.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin
from tqdm import tqdm

from downstream.saliency_optimization import saliency_optimization
from downstream.saliency_optimization.core import resolve_params
from downstream.saliency_optimization.datasets import SaliencyDataset, read_mask
from downstream.saliency_optimization.evaluate import SaliencyScores, quantize_map
from sin.geometry import grid_shape
from sin.io import atomic_write

REPO = Path(__file__).resolve().parents[1]

#: SIN paper, Table 2 (MAE on ECSSD, SO with each method's superpixels).
PAPER_ECSSD = {200: {"slic": 0.1719, "snic": 0.1714, "ers": 0.1686, "sin": 0.1657},
               400: {"slic": 0.1675, "snic": 0.1654, "ers": 0.1630, "sin": 0.1616}}

#: Provider parameters used for the table (SLIC: the SO demo's SLIC_mex compactness).
PROVIDER_PARAMS = {"slic": {"compactness": 20.0}}

METRICS = ("mae", "s_measure", "max_f", "mean_e", "max_e")


def so_count(height: int, width: int, size: int) -> int:
    """Superpixels for the row ``size``: ``round(h w / (120000 / size))`` (MATLAB round)."""
    return max(1, int(np.floor(height * width * size / 120000.0 + 0.5)))


def _sin_note(sin_weights) -> str:
    from sin.checkpoint import DEFAULT_WEIGHTS

    if sin_weights:
        return f"SIN weights: `{sin_weights}`."
    if DEFAULT_WEIGHTS.exists():
        return "SIN weights: the shipped `sin/weights/sin_bsds500.pt`."
    return ("**SIN weights: none shipped yet, so SIN ran an UNTRAINED network** (valid but not "
            "image-adaptive superpixels); rerun once `sin/weights/sin_bsds500.pt` exists.")


def _weights_fingerprint(provider: str, provider_params: dict) -> str:
    """Which SIN weights a run uses (so cached maps of an untrained SIN are not reused later)."""
    if provider != "sin":
        return ""
    from sin.checkpoint import DEFAULT_WEIGHTS

    w = provider_params.get("weights")
    path = Path(w) if w not in (None, "untrained") else (DEFAULT_WEIGHTS if w is None else None)
    if path is None or not path.is_file():
        return "untrained"
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _config_key(provider: str, size: int, provider_params: dict, so_params) -> str:
    blob = json.dumps({"provider": provider, "size": size, "provider_params": provider_params,
                       "weights": _weights_fingerprint(provider, provider_params),
                       "so_params": repr(so_params), "count_rule": "round(h*w*size/120000)", "v": 1},
                      sort_keys=True, default=str)
    return f"{provider}_{size}_{hashlib.sha1(blob.encode()).hexdigest()[:8]}"


def _write_png(path: Path, q: np.ndarray, info: dict) -> None:
    meta = PngImagePlugin.PngInfo()
    for k, v in info.items():
        meta.add_text(k, str(v))
    atomic_write(path, lambda tmp: Image.fromarray(q).save(tmp, format="PNG", pnginfo=meta))


def _read_png(path: Path) -> tuple[np.ndarray, dict]:
    with Image.open(path) as im:
        im.load()
        return np.asarray(im), dict(im.text)


def compute_maps(dataset: SaliencyDataset, providers: list[str], sizes: list[int], cache: Path,
                 so_params, provider_params: dict, progress: bool = True, fresh: bool = False) -> dict:
    """Make (or reuse, unless ``fresh``) every map; returns ``{(provider, size): folder}``."""
    from sin.providers import get_provider

    folders = {}
    todo = []
    for size in sizes:
        for prov in providers:
            folder = cache / dataset.name / _config_key(prov, size, provider_params.get(prov, {}), so_params)
            folders[(prov, size)] = folder
            for i, item in enumerate(dataset.items):
                if fresh or not (folder / f"{item.name}.png").is_file():
                    todo.append((i, prov, size))
    todo.sort()  # image-major: each image is read once
    last = None
    for i, prov, size in tqdm(todo, desc="SO maps", disable=not progress or not todo):
        if last is None or last[0] != i:
            name, image, _ = dataset.load(i)
            last = (i, name, image)
        _, name, image = last
        h, w = image.shape[:2]
        k = so_count(h, w, size)
        t0 = time.perf_counter()
        labels = get_provider(prov)(image, k, **provider_params.get(prov, {}))
        t1 = time.perf_counter()
        smap = saliency_optimization(image, labels, params=so_params)
        t2 = time.perf_counter()
        info = {"n_requested": k, "n_superpixels": int(labels.max()) + 1,
                "provider_seconds": f"{t1 - t0:.4f}", "so_seconds": f"{t2 - t1:.4f}"}
        if prov == "sin":
            info["sin_grid"] = "x".join(map(str, grid_shape(k, h, w)))
        _write_png(folders[(prov, size)] / f"{name}.png", quantize_map(smap), info)
    return folders


def score_maps(dataset: SaliencyDataset, folders: dict, progress: bool = True) -> list[dict]:
    """One row per (size, provider) with every metric and the mean superpixel counts."""
    scores = {key: SaliencyScores() for key in folders}
    extra = {key: {"n_requested": [], "n_superpixels": [], "provider_seconds": [], "so_seconds": []}
             for key in folders}
    for item in tqdm(dataset.items, desc="scoring", disable=not progress):
        gt = read_mask(item.mask_path)
        for key, folder in folders.items():
            q, info = _read_png(folder / f"{item.name}.png")
            if q.shape != gt.shape:
                raise ValueError(f"cached map {folder / item.name}.png is {q.shape}, mask is {gt.shape}")
            scores[key].step(q, gt)
            for field in extra[key]:
                if field in info:
                    extra[key][field].append(float(info[field]))
    rows = []
    for (prov, size), sc in scores.items():
        r = sc.results()
        ex = extra[(prov, size)]
        rows.append({"size": size, "provider": prov, "n_images": r["n_images"],
                     "mean_requested": float(np.mean(ex["n_requested"])),
                     "mean_superpixels": float(np.mean(ex["n_superpixels"])),
                     **{m: r[m] for m in METRICS},
                     "median_provider_s": float(np.median(ex["provider_seconds"])),
                     "median_so_s": float(np.median(ex["so_seconds"]))})
    order = {key: i for i, key in enumerate(folders)}  # sizes, then providers as requested
    rows.sort(key=lambda r: (r["size"], order[(r["provider"], r["size"])]))
    return rows


def example_figure(dataset: SaliencyDataset, folders: dict, providers: list[str], size: int, path: Path,
                   n_examples: int = 3) -> None:
    """Rows: example images; columns: image, GT, the SO map of every provider at ``size``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n_examples, len(dataset))
    picks = np.unique(np.linspace(0, len(dataset) - 1, n).round().astype(int))
    cols = 2 + len(providers)
    fig, axes = plt.subplots(len(picks), cols, figsize=(2.2 * cols, 1.9 * len(picks)), squeeze=False)
    for r, i in enumerate(picks):
        name, image, gt = dataset.load(int(i))
        panels = [(image, "image"), (gt, "ground truth")]
        for prov in providers:
            q, info = _read_png(folders[(prov, size)] / f"{name}.png")
            panels.append((q, f"{prov} (K={info.get('n_superpixels', '?')})"))
        for c, (arr, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(arr, cmap=None if arr.ndim == 3 else "gray", vmin=0, vmax=255 if arr.dtype == np.uint8 else 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 or c >= 2:
                ax.set_title(title if r == 0 or c < 2 else title.split(" ", 1)[1], fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(f"SO maps, {dataset.name}, '{size}' row", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))


def _dataset_label(dataset: SaliencyDataset) -> str:
    n = len(dataset)
    if dataset.name.lower() == "ecssd" and n == 1000:
        return "ECSSD (1000 images)"
    if dataset.name == "saliency-mini":
        return f"{n}-image saliency-mini set, not ECSSD"
    return f"{n}-image `{dataset.name}` set, not ECSSD"


def write_markdown(path: Path, dataset: SaliencyDataset, rows: list[dict], providers: list[str], sizes: list[int],
                   skipped: list[str], so_params_name: str, sin_weights, command: str) -> None:
    label = _dataset_label(dataset)
    by = {(r["provider"], r["size"]): r for r in rows}
    cols = list(dict.fromkeys(providers + skipped))
    lines = [f"# Saliency Optimization with different superpixels: MAE ({label})", "",
             f"**{label}.** The `paper (ECSSD)` rows are the SIN paper's Table 2 on the 1000-image ECSSD set, "
             "given for reference only" + ("" if label.startswith("ECSSD") else
                                           ": numbers from this small set are not comparable to them") + ".",
             "",
             f"Generated {_dt.date.today().isoformat()} by `{command}`; SO parameters: `{so_params_name}` "
             "(`downstream.saliency_optimization`, a port of W. Zhu's released MATLAB code).",
             "", "## Table 2 layout: MAE (lower is better)", "",
             "| superpixels | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for size in sizes:
        cells = []
        for p in cols:
            if p in skipped:
                cells.append("skipped")
            else:
                cells.append(f"{by[(p, size)]['mae']:.4f}")
        lines.append(f"| {size} (ours, {dataset.name}) | " + " | ".join(cells) + " |")
        if size in PAPER_ECSSD:
            ref = [f"{PAPER_ECSSD[size][p]:.4f}" if p in PAPER_ECSSD[size] else "n/a" for p in cols]
            lines.append(f"| {size} paper (ECSSD) | " + " | ".join(ref) + " |")
    lines += ["", "## All metrics", "",
              "MAE as in the SO code (8-bit map, GT > 128, mean of per-image values); S-measure, max F-measure "
              "(beta^2 = 0.3) and mean / max E-measure from pysodmetrics. `K req.` / `K` are the mean requested "
              "and obtained superpixel counts per image; times are per-image medians on this machine "
              "(SO excludes the superpixels).", "",
              "| row | provider | images | K req. | K | MAE | S | max F | mean E | max E | provider s | SO s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['provider']} | {r['n_images']} | {r['mean_requested']:.1f} | "
                     f"{r['mean_superpixels']:.1f} | {r['mae']:.4f} | {r['s_measure']:.4f} | {r['max_f']:.4f} | "
                     f"{r['mean_e']:.4f} | {r['max_e']:.4f} | {r['median_provider_s']:.3f} | {r['median_so_s']:.3f} |")
    lines += ["", "## How every method gets its superpixel count", "",
              "* Row S requests `K = round(h * w * S / 120000)` superpixels per image: `round(h w / 600)` for the "
              "200 row and `round(h w / 300)` for 400, the SO demo's `pixNumInSP` rule (about 200 / 400 on a "
              "300 x 400 image).",
              "* `slic`: scikit-image SLIC with compactness 20 (the SO demo's `SLIC_mex` value; a different "
              "implementation from the compiled one the paper used), count calibrated towards K.",
              "* `snic`, `ers`: K passed directly.",
              "* `sin`: K goes through SIN's grid rule `sin.geometry.grid_shape(K, h, w)`: `n = round(sqrt(K h / w))` "
              "seed rows and `m = round(K / n)` columns, so SIN yields exactly `n * m` superpixels (e.g. 12 x 17 = "
              "204 for K = 200 on 300 x 400). The released SIN script instead resized each image by a fixed 0.7 "
              "factor (`16 ceil(0.7 H / 16) - 15` rows, likewise columns), about 252 superpixels on 300 x 400, so "
              "its 200 row used more superpixels than the others.",
              f"* {_sin_note(sin_weights) if 'sin' in providers else 'SIN not run.'}",
              "* `grid` and other extras, if present, are baselines outside the paper's table.", ""]
    if skipped:
        lines += ["## Skipped", "",
                  f"Not registered in `sin.providers` when this ran: {', '.join(skipped)}. Rerun the command once "
                  "they exist (cached maps of the others are reused).", ""]
    lines += ["Example maps: `" + path.with_name(path.stem + "_examples.png").name + "`.", ""]
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines)))


def write_csv(path: Path, rows: list[dict], dataset: SaliencyDataset) -> None:
    fields = ["dataset", "size", "provider", "n_images", "mean_requested", "mean_superpixels", *METRICS,
              "median_provider_s", "median_so_s", "paper_ecssd_mae"]

    def _write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in rows:
                ref = PAPER_ECSSD.get(r["size"], {}).get(r["provider"], "")
                w.writerow({"dataset": dataset.name, **{k: (f"{v:.6f}" if isinstance(v, float) else v)
                                                        for k, v in r.items()}, "paper_ecssd_mae": ref})

    atomic_write(path, _write)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, type=Path, help="dataset folder (ECSSD or images/ + masks/ layout)")
    ap.add_argument("--providers", nargs="+", default=["slic", "snic", "ers", "sin"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[200, 400])
    ap.add_argument("--out", type=Path, default=REPO / "results" / "saliency")
    ap.add_argument("--cache", type=Path, default=REPO / "cache" / "saliency")
    ap.add_argument("--params", default="code", choices=["code", "paper"], help="SO constants")
    ap.add_argument("--sin-weights", default=None, help="SIN weights file (default: the shipped ones)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (smoke runs)")
    ap.add_argument("--examples", type=int, default=3, help="example rows in the figure")
    ap.add_argument("--fresh", action="store_true", help="recompute every map even if cached")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    from sin.providers import available_providers

    if any(s < 1 for s in args.sizes):
        ap.error("--sizes must be positive")
    dataset = SaliencyDataset(args.dataset)
    if args.limit is not None:
        if args.limit < 1:
            ap.error("--limit must be >= 1")
        dataset.items = dataset.items[: args.limit]
    registered = set(available_providers())
    providers = [p for p in dict.fromkeys(args.providers) if p in registered]
    skipped = [p for p in dict.fromkeys(args.providers) if p not in registered]
    for p in skipped:
        print(f"note: provider {p!r} is not registered (available: {', '.join(sorted(registered))}); skipped",
              file=sys.stderr)
    if not providers:
        raise SystemExit("none of the requested providers is registered")
    so_params = resolve_params(args.params)
    provider_params = {p: dict(PROVIDER_PARAMS.get(p, {})) for p in providers}
    if "sin" in provider_params and args.sin_weights:
        provider_params["sin"]["weights"] = args.sin_weights

    folders = compute_maps(dataset, providers, args.sizes, args.cache, so_params, provider_params,
                           progress=not args.quiet, fresh=args.fresh)
    rows = score_maps(dataset, folders, progress=not args.quiet)
    suffix = "" if args.params == "code" else f"_{args.params}"
    stem = f"table2_{dataset.name}{suffix}"
    args.out.mkdir(parents=True, exist_ok=True)
    shown = [str(a) for a in (argv if argv is not None else sys.argv[1:])]
    command = "python -m benchmarks.sod_table " + " ".join(shown)
    write_csv(args.out / f"{stem}.csv", rows, dataset)
    write_markdown(args.out / f"{stem}.md", dataset, rows, providers, args.sizes, skipped, args.params,
                   args.sin_weights, command)
    example_figure(dataset, folders, providers, args.sizes[0], args.out / f"{stem}_examples.png", args.examples)
    for r in rows:
        print(f"{r['size']:>5} {r['provider']:>6}  K={r['mean_superpixels']:.1f}  MAE={r['mae']:.4f}  "
              f"S={r['s_measure']:.4f}  maxF={r['max_f']:.4f}  meanE={r['mean_e']:.4f}")
    return rows


if __name__ == "__main__":
    main()
