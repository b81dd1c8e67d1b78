"""Table 2 of the SIN paper: Saliency Optimization MAE with different superpixels.

For every image of a salient-object dataset, every provider and every superpixel row (200 / 400),
run the provider with the SO demo's superpixel count, then
:func:`downstream.saliency_optimization.saliency_optimization`, store the 8-bit map (PNG, as the
original code does) and score it: MAE (the table metric, ``CalMAE`` semantics), plus S-measure,
max F-measure and E-measure (pysodmetrics).

SO demo count rule (``../shared/specs/saliency_optimization.md`` section 4): row S requests
``K = round(h * w * S / 120000)`` superpixels of an h x w image, i.e. ``round(h w / 600)`` for 200
and ``round(h w / 300)`` for 400 (the demo's ``pixNumInSP``). SLIC, SNIC, ERS, SSN and the grid
get K; SIN gets K through its grid rule :func:`sin.geometry.grid_shape` (``n x m`` seeds).
``slic`` without an explicit ``compactness`` runs with 20, the SO demo's ``SLIC_mex`` value
(``slic:compactness=10`` overrides it).

Usage::

    python -m benchmarks.sod_table --dataset ../shared/data/ECSSD \\
        [--providers slic snic ers sin ssn grid] [--n-segments 200 400] [--so-params code|paper] \\
        [--processes 2] [--out results/saliency] [--cache DIR] [--limit N] [--recompute]

Writes ``<out>/table2_<dataset>.md``, ``.csv`` (one row per row size x provider, all metrics),
``table2_<dataset>_per_image.csv.gz`` (every image's scores, for paired comparisons) and
``table2_<dataset>_examples.png``. Resumable: label maps go through the one
:class:`sin.providers.LabelCache` (``<cache>/labels``, keyed by provider fingerprint, count and
image digest) and SO maps to ``<cache>/saliency/<dataset>/<provider tag>/n<S>-so<key>/`` where
the key covers the SO constants, the count rule and SO's code, and every PNG records the digest of
the image it was made from (a different image with the same name is recomputed). ``--cache``
defaults to :func:`sin.paths.cache_root`. Images run in parallel worker processes
(``--processes``), one torch / OpenCV / numba thread each: on a shared machine a worker with
several threads loses far more to waiting than it gains.

Images whose mask is missing, unreadable or of another size are reported up front and left out;
an image on which any provider or SO fails is reported and left out of every row, so that all
rows are scored on the same images (paired).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

# Before torch starts OpenMP (see sin.threads): idle OpenMP threads sleep instead of spinning.
# Measured here on ECSSD under load (load average ~14 on 2 cores, 1 torch thread): SIN took a
# median 2.6 s per image without this and 0.10 s with it. Spawned workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image, PngImagePlugin  # noqa: E402

from benchmarks._common import (  # noqa: E402
    add_provider_args, machine_info, markdown_table, paired_bootstrap, positive_int, provider_info,
    resolve_providers, write_csv, write_figure, write_text)
from downstream.saliency_optimization import colour as so_colour  # noqa: E402
from downstream.saliency_optimization import core as so_core  # noqa: E402
from downstream.saliency_optimization import graph as so_graph  # noqa: E402
from downstream.saliency_optimization.core import resolve_so_params, saliency_optimization  # noqa: E402
from downstream.saliency_optimization.datasets import SaliencyDataset, read_mask  # noqa: E402
from downstream.saliency_optimization.evaluate import aggregate_scores, image_scores, quantize_map  # noqa: E402
from sin.io import atomic_write, read_image  # noqa: E402
from sin.providers import LabelCache, get_provider, image_digest, parse_provider_spec  # noqa: E402
from sin.providers.batch import limit_threads, parallel_map  # noqa: E402
from sin.providers.registry import file_sha256  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: SIN paper, Table 2 (MAE on ECSSD, SO with each method's superpixels).
PAPER_ECSSD = {200: {"slic": 0.1719, "snic": 0.1714, "ers": 0.1686, "sin": 0.1657},
               400: {"slic": 0.1675, "snic": 0.1654, "ers": 0.1630, "sin": 0.1616}}

#: The paper's rows, then SSN (the deep reference) and the grid (trivial baseline) as extras.
DEFAULT_PROVIDERS = ("slic", "snic", "ers", "sin", "ssn", "grid")

#: SLIC compactness of the SO demo (``SLIC_mex(img, spnumber, 20)``), used unless given.
SO_DEMO_SLIC_COMPACTNESS = 20.0

#: The count rule (part of the SO-map cache key).
COUNT_RULE = "round(h*w*size/120000)"

METRICS = ("mae", "s_measure", "max_f", "mean_e", "max_e")
#: Per-image scores written to the per-image csv (max_f / mean_e of the image's own curves).
PER_IMAGE = ("mae", "s_measure", "max_f", "mean_e")
#: Metrics that are means of per-image values, so a paired bootstrap over images applies.
PAIRED = {"mae": "MAE", "s_measure": "S-measure", "mean_e": "mean E-measure"}
#: Lower is better for these.
LOWER_BETTER = {"mae"}

N_BOOT = 10000


def so_count(height: int, width: int, size: int) -> int:
    """Superpixels for the row ``size``: ``round(h w size / 120000)`` (MATLAB round), at least 2."""
    return max(2, int(np.floor(height * width * size / 120000.0 + 0.5)))


def table_providers(specs, *, skip_unavailable: bool = False):
    """Providers for the table: ``(providers, skipped)``; ``slic`` gets the SO demo's compactness
    20 unless the spec sets ``compactness``."""
    providers, skipped = [], []
    for spec in specs:
        try:
            resolved = resolve_providers([spec])
        except SystemExit as exc:  # resolve_providers ends unresolvable specs with one line
            if not skip_unavailable:
                raise
            print(f"skipping: {str(exc).removeprefix('error: ')}", file=sys.stderr)
            skipped.append(str(spec))
            continue
        prov = resolved[0]
        if prov.name == "slic" and isinstance(spec, str) and "compactness" not in parse_provider_spec(spec)[1]:
            prov = prov.with_params(compactness=SO_DEMO_SLIC_COMPACTNESS)
        if prov not in providers:
            providers.append(prov)
    if not providers:
        raise SystemExit("error: no provider left to run")
    return providers, skipped


def provider_labels(providers) -> list[str]:
    """Column names: the method name, or the full spec where two runs share a name."""
    names = [p.name for p in providers]
    return [p.name if names.count(p.name) == 1 else p.spec_string() for p in providers]


def so_key(so_params) -> str:
    """Digest of everything besides the labels that changes an SO map: constants, count rule, SO code."""
    code = {m.__name__: file_sha256(m.__file__) for m in (so_core, so_graph, so_colour)}
    blob = json.dumps({"so_params": dataclasses.asdict(resolve_so_params(so_params)), "count_rule": COUNT_RULE,
                       "code": code}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def map_path(map_root: Path, dataset: str, provider, size: int, key: str, name: str) -> Path:
    return Path(map_root) / dataset / provider.tag / f"n{size}-so{key}" / f"{name}.png"


def _write_png(path: Path, q: np.ndarray, info: dict) -> None:
    meta = PngImagePlugin.PngInfo()
    for k, v in info.items():
        meta.add_text(k, str(v))
    atomic_write(path, lambda tmp: Image.fromarray(q).save(tmp, format="PNG", pnginfo=meta))


def _read_png(path: Path) -> tuple[np.ndarray, dict] | None:
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im), dict(im.text)
    except Exception:  # absent, or half-written by a killed run: recompute
        return None


def _portable(provider):
    """What a worker needs to rebuild ``provider``: ``(name, params)`` for a registered method
    (its registry entry may hold unpicklable callables, e.g. a lambda for the default weights
    file), else the Provider itself (a user function must then be importable)."""
    try:
        if get_provider(provider.name).spec == provider.spec:
            return (provider.name, dict(provider.params))
    except ValueError:  # not a registered name
        pass
    return provider


def _restore(portable):
    return get_provider(portable[0], **portable[1]) if isinstance(portable, tuple) else portable


@dataclasses.dataclass(frozen=True)
class _Job:
    index: int
    name: str
    image_path: Path
    mask_path: Path
    providers: tuple
    sizes: tuple
    so_params: object
    key: str
    dataset: str
    label_root: str
    map_root: str
    recompute: bool


def _image_job(job: _Job) -> dict:
    """Every (provider, size) map of one image, made or reused, and its scores (runs in a worker)."""
    out = {"index": job.index, "name": job.name, "records": {}, "errors": [], "computed": 0, "reused": 0}
    cpu0 = time.process_time()
    try:
        image = read_image(job.image_path)
        gt = read_mask(job.mask_path)
        if gt.shape != image.shape[:2]:
            raise ValueError(f"mask is {gt.shape[0]}x{gt.shape[1]} but the image is "
                             f"{image.shape[0]}x{image.shape[1]}")
    except Exception as exc:
        out["errors"].append(("image", f"{type(exc).__name__}: {exc}"))
        return out
    digest = image_digest(image)
    labels_cache = LabelCache(job.label_root, recompute=job.recompute)
    h, w = image.shape[:2]
    for pi, prov in enumerate(map(_restore, job.providers)):
        for size in job.sizes:
            try:
                path = map_path(Path(job.map_root), job.dataset, prov, size, job.key, job.name)
                hit = None if job.recompute else _read_png(path)
                if hit is not None and hit[1].get("image_digest") == digest and hit[0].shape == (h, w):
                    q, info = hit
                    out["reused"] += 1
                else:
                    k = so_count(h, w, size)
                    # CPU seconds (process_time, single-threaded worker) next to wall seconds: on a
                    # shared machine wall time measures the neighbours, CPU time the work
                    c0 = time.process_time()
                    labels, t_prov = labels_cache.labels(prov, image, k, image_id=job.name, group=job.dataset)
                    c1, t0 = time.process_time(), time.perf_counter()
                    smap = saliency_optimization(image, labels, so_params=job.so_params)
                    t_so, c2 = time.perf_counter() - t0, time.process_time()
                    q = quantize_map(smap)
                    info = {"n_requested": k, "n_superpixels": int(labels.max()) + 1, "provider": prov.spec_string(),
                            "provider_seconds": f"{t_prov:.4f}", "so_seconds": f"{t_so:.4f}",
                            "provider_cpu_seconds": f"{c1 - c0:.4f}", "so_cpu_seconds": f"{c2 - c1:.4f}",
                            "image_digest": digest}
                    _write_png(path, q, info)
                    out["computed"] += 1
                rec = image_scores(q, gt)
                rec.update(n_requested=int(info["n_requested"]), n_superpixels=int(info["n_superpixels"]),
                           provider_s=float(info["provider_seconds"]), so_s=float(info["so_seconds"]),
                           provider_cpu_s=float(info.get("provider_cpu_seconds", "nan")),
                           so_cpu_s=float(info.get("so_cpu_seconds", "nan")), path=str(path))
                out["records"][(pi, size)] = rec
            except Exception as exc:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                out["errors"].append((f"{prov.spec_string()} n={size}",
                                      f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})"))
    out["cpu_s"] = time.process_time() - cpu0  # the whole image: reading, every map, scoring
    return out


def compute(dataset: SaliencyDataset, providers, sizes, so_params, *, cache_root: Path, processes: int = 2,
            threads: int = 1, recompute: bool = False, progress: bool = True) -> list[dict]:
    """Run :func:`_image_job` over the dataset (in ``processes`` workers); results in dataset order."""

    key = so_key(so_params)
    portable = tuple(_portable(p) for p in providers)
    jobs = [_Job(i, it.name, it.image_path, it.mask_path, portable, tuple(sizes), so_params, key,
                 dataset.name, str(Path(cache_root) / "labels"), str(Path(cache_root) / "saliency"), recompute)
            for i, it in enumerate(dataset.items)]
    if processes == 1:  # in this process: same thread cap as a worker, restored afterwards
        import torch

        before = torch.get_num_threads()
        limit_threads(threads)
        try:
            return parallel_map(_image_job, jobs, processes=1, desc="SO maps", progress=progress)
        finally:
            limit_threads(before)
    return parallel_map(_image_job, jobs, processes=processes, threads=threads, desc="SO maps", progress=progress)


def summarise(results: list[dict], providers, labels, sizes, dataset_name: str):
    """``(rows, per_image, failed)``: table rows, the per-image frame and ``{name: [errors]}``.

    Images with any error are left out of every row (rows stay paired)."""
    failed = {r["name"]: r["errors"] for r in results if r["errors"]}
    good = [r for r in results if not r["errors"]]
    if not good:
        raise SystemExit("error: every image failed; first problem: " + "; ".join(map(str, results[0]["errors"][:1])))
    rows, per_image = [], []
    for size in sizes:
        for pi, (prov, label) in enumerate(zip(providers, labels, strict=True)):
            recs = [r["records"][(pi, size)] for r in good]
            agg = aggregate_scores(recs)
            rows.append({"size": size, "provider": label, "n_images": agg["n_images"],
                         "mean_requested": float(np.mean([x["n_requested"] for x in recs])),
                         "mean_superpixels": float(np.mean([x["n_superpixels"] for x in recs])),
                         **{m: agg[m] for m in METRICS},
                         "median_provider_s": float(np.median([x["provider_s"] for x in recs])),
                         "median_so_s": float(np.median([x["so_s"] for x in recs])),
                         "median_provider_cpu_s": float(np.nanmedian([x["provider_cpu_s"] for x in recs])),
                         "median_so_cpu_s": float(np.nanmedian([x["so_cpu_s"] for x in recs])),
                         "paper_ecssd_mae": PAPER_ECSSD.get(size, {}).get(prov.name, ""),
                         "provider_spec": prov.spec_string(), "provider_tag": prov.tag})
            for r, x in zip(good, recs, strict=True):
                per_image.append({"dataset": dataset_name, "image": r["name"], "size": size, "provider": label,
                                  "n_requested": x["n_requested"], "n_superpixels": x["n_superpixels"],
                                  **{m: x[m] for m in PER_IMAGE}, "provider_s": x["provider_s"], "so_s": x["so_s"],
                                  "provider_cpu_s": x["provider_cpu_s"], "so_cpu_s": x["so_cpu_s"]})
    return rows, pd.DataFrame(per_image), failed


def comparisons(per_image: pd.DataFrame, labels, sizes, ref: str = "sin") -> list[dict]:
    """Paired bootstrap of ``ref`` minus every other provider, per size and paired metric."""
    out = []
    if ref not in labels:
        return out
    for size in sizes:
        d = per_image[per_image["size"] == size]
        wide = {m: d.pivot(index="image", columns="provider", values=m) for m in PAIRED}
        for other in labels:
            if other == ref:
                continue
            for m in PAIRED:
                mean, lo, hi = paired_bootstrap((wide[m][ref] - wide[m][other]).to_numpy(), n_boot=N_BOOT, seed=0)
                out.append({"size": size, "other": other, "metric": m, "diff": mean, "lo": lo, "hi": hi,
                            "significant": bool(lo > 0 or hi < 0), "n": int(len(wide[m]))})
    return out


def _sentence(c: dict, ref: str = "SIN") -> str:
    name, other = PAIRED[c["metric"]], c["other"].upper() if c["other"].isalnum() else c["other"]
    better = (c["diff"] < 0) == (c["metric"] in LOWER_BETTER)
    how = "better" if better else "worse"
    ci = f"{c['diff']:+.4f} (95 % CI [{c['lo']:+.4f}, {c['hi']:+.4f}], {c['n']} images)"
    if c["significant"]:
        return (f"{ref} is {how} than {other} on {name}: {ref} - {other} = {ci}; larger than the noise (the "
                "interval excludes 0).")
    return (f"{ref} vs {other} on {name}: {ref} - {other} = {ci}; not larger than the noise (the interval "
            f"contains 0).")


def example_picks(per_image: pd.DataFrame, labels, size: int, n: int) -> tuple[list[str], str]:
    """The example images and the rule that chose them.

    Rule: at the first row size, sort images by the per-image MAE of SIN minus SLIC and take
    ``n`` evenly spaced ranks from the largest SIN advantage to the largest SLIC advantage
    (with n = 3: the most negative, the median and the most positive difference). Without
    both providers: ``n`` evenly spaced images in name order.
    """
    d = per_image[per_image["size"] == size]
    names = sorted(d["image"].unique())
    n = max(1, min(n, len(names)))
    ranks = np.unique(np.linspace(0, len(names) - 1, n).round().astype(int))
    if "sin" in labels and "slic" in labels:
        wide = d.pivot(index="image", columns="provider", values="mae")
        diff = (wide["sin"] - wide["slic"]).sort_values(kind="stable")
        return [(diff.index[i], f"SIN-SLIC {diff.iloc[i]:+.3f}") for i in ranks], (
            f"images at evenly spaced ranks of the per-image MAE difference SIN - SLIC at {size} superpixels, "
            "from the largest SIN advantage to the largest SLIC advantage")
    return [(names[i], "") for i in ranks], "evenly spaced images in name order"


def example_figure(dataset: SaliencyDataset, picks, results, providers, labels, size: int, path: Path) -> None:
    """Rows: the picked images; columns: image, ground truth, every provider's SO map at ``size``
    (read from where the workers stored them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = {it.name: i for i, it in enumerate(dataset.items)}
    by_name = {r["name"]: r for r in results}
    cols = 2 + len(providers)
    fig, axes = plt.subplots(len(picks), cols, figsize=(2.0 * cols, 1.8 * len(picks)), squeeze=False)
    for r, (name, note) in enumerate(picks):
        _, image, gt = dataset.load(index[name])
        panels = [(image, "image"), (gt, "ground truth")]
        for pi, label in enumerate(labels):
            q, info = _read_png(Path(by_name[name]["records"][(pi, size)]["path"]))
            panels.append((q, f"{label} K={info.get('n_superpixels', '?')}"))
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


def _dataset_label(dataset: SaliencyDataset) -> str:
    n = len(dataset)
    if dataset.name.lower() == "ecssd" and n == 1000:
        return "ECSSD (1000 images)"
    if dataset.name == "saliency-mini":
        return f"{n}-image saliency-mini set, not ECSSD"
    return f"{n}-image `{dataset.name}` set" + ("" if dataset.name.lower() == "ecssd" else ", not ECSSD")


def write_markdown(path: Path, dataset: SaliencyDataset, rows, providers, labels, sizes, comps, *, skipped,
                   failed, so_params_name: str, command: str, run: dict, pick_rule: str, picks) -> None:
    label = _dataset_label(dataset)
    by = {(r["provider"], r["size"]): r for r in rows}
    cols = labels + [s for s in skipped]
    lines = [f"# Saliency Optimization with different superpixels: MAE ({label})", "",
             f"**{label}.** The `paper (ECSSD)` rows are the SIN paper's Table 2 on the 1000-image ECSSD set, "
             "given for reference" + ("" if label.startswith("ECSSD") else
                                      " only: numbers from this set are not comparable to them") + ".", "",
             f"Generated {run['date']} by `{command}`; SO parameters: `{so_params_name}` "
             "(`downstream.saliency_optimization`, a port of W. Zhu's released MATLAB code).", "",
             f"Wall time: {run['wall_s']:.0f} s for {len(rows) // max(1, len(sizes))} providers x {len(sizes)} sizes x "
             f"{rows[0]['n_images']} images with {run['processes']} worker process(es), 1 thread each "
             f"({run['computed']} maps computed, {run['reused']} reused from the cache; {run['cpu_count']} CPUs, "
             f"load average {run['load_before']:.2f} before / {run['load_after']:.2f} after). Worker CPU time "
             f"(reading, maps made in this run, scoring): {run['cpu_s']:.0f} s, i.e. {run['cpu_per_image']:.2f} s per "
             f"image; for a run that computes every map, CPU time / processes is the wall time on idle cores.", "",
             "## Table 2 layout: MAE (lower is better)", "",
             "| superpixels | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for size in sizes:
        cells = [f"{by[(p, size)]['mae']:.4f}" if (p, size) in by else "skipped" for p in cols]
        lines.append(f"| {size} (ours, {dataset.name}) | " + " | ".join(cells) + " |")
        if size in PAPER_ECSSD:
            names = {lab: prov.name for lab, prov in zip(labels, providers, strict=True)}
            ref = [f"{PAPER_ECSSD[size][names.get(p, p)]:.4f}" if names.get(p, p) in PAPER_ECSSD[size] else "n/a"
                   for p in cols]
            lines.append(f"| {size} paper (ECSSD) | " + " | ".join(ref) + " |")
    lines += ["", "## All metrics", "",
              "MAE as in the SO code (8-bit map, GT > 128, mean of per-image values); S-measure, max F-measure "
              "(beta^2 = 0.3) and mean / max E-measure from pysodmetrics. `K req.` / `K` are the mean requested "
              "and obtained superpixel counts per image; times are per-image medians (provider: when the label "
              "map was computed, possibly by an earlier run; SO excludes the superpixels), wall and CPU seconds "
              "(CPU: `time.process_time` of the single-threaded worker, what the work costs without waiting for "
              "other jobs on the machine).", "",
              "| row | provider | images | K req. | K | MAE | S | max F | mean E | max E | provider s | SO s "
              "| provider CPU s | SO CPU s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['provider']} | {r['n_images']} | {r['mean_requested']:.1f} | "
                     f"{r['mean_superpixels']:.1f} | {r['mae']:.4f} | {r['s_measure']:.4f} | {r['max_f']:.4f} | "
                     f"{r['mean_e']:.4f} | {r['max_e']:.4f} | {r['median_provider_s']:.3f} | {r['median_so_s']:.3f} | "
                     f"{r['median_provider_cpu_s']:.3f} | {r['median_so_cpu_s']:.3f} |")
    if comps:
        n_img = comps[0]["n"]
        lines += ["", "## Is SIN's difference larger than the noise?", "",
                  f"Paired bootstrap over images ({N_BOOT} resamples, seed 0): the mean per-image difference "
                  "SIN minus the other provider and its 95 % percentile interval, for the metrics that are means "
                  "of per-image values (max F is a maximum over thresholds of the mean curve and has no per-image "
                  f"decomposition). Per-image values: `{path.stem}_per_image.csv.gz`."
                  + (" With this few images the intervals are wide and say little." if n_img < 30 else ""), ""]
        df = pd.DataFrame([{"row": c["size"], "SIN minus": c["other"], "metric": PAIRED[c["metric"]],
                            "mean diff": c["diff"], "95 % CI low": c["lo"], "95 % CI high": c["hi"],
                            "beyond noise": "yes" if c["significant"] else "no"} for c in comps])
        lines += [markdown_table(df, {"mean diff": "+.4f", "95 % CI low": "+.4f", "95 % CI high": "+.4f"}), ""]
        for size in sizes:
            lines.append(f"**{size} superpixels.**")
            lines += [f"* {_sentence(c)}" for c in comps if c["size"] == size and c["metric"] == "mae"]
            lines.append("")
        # MAE and S / E can disagree: MAE rewards maps that are dark on the background, S and E
        # reward structure and contrast; say where the sign flips instead of hiding it.
        flips = []
        for c in comps:
            if c["metric"] == "mae":
                continue
            m = next(x for x in comps if x["size"] == c["size"] and x["other"] == c["other"] and x["metric"] == "mae")
            sin_better_mae, sin_better_here = m["diff"] < 0, c["diff"] > 0
            if sin_better_mae != sin_better_here:
                flips.append(f"{c['other']} at {c['size']} on {PAIRED[c['metric']]} "
                             f"({'significant' if c['significant'] else 'within the noise'})")
        if flips:
            lines += ["Where the order reverses relative to MAE: " + "; ".join(flips) + ". MAE scores the raw map "
                      "against the binary mask (a map that is uniformly dark on the background wins), while S- and "
                      "E-measure min-max normalise each map and score region/object structure and alignment, so "
                      "a provider can lead on one and trail on the other.", ""]
    lines += ["## How every method gets its superpixel count", "",
              "* Row S requests `K = round(h * w * S / 120000)` superpixels per image: `round(h w / 600)` for the "
              "200 row and `round(h w / 300)` for 400, the SO demo's `pixNumInSP` rule (about 200 / 400 on a "
              "300 x 400 image).",
              f"* `slic`: scikit-image SLIC with compactness {SO_DEMO_SLIC_COMPACTNESS:g} (the SO demo's `SLIC_mex` "
              "value; a different implementation from the compiled one the paper used), count calibrated towards K.",
              "* `snic`, `ers`, `ssn`, `grid`: K passed to the provider.",
              "* `sin`: K goes through SIN's seed-grid rule `sin.geometry.grid_shape(K, h, w)` (about square "
              "cells), so SIN yields `n * m` superpixels (e.g. 12 x 17 = 204 for K = 200 on 300 x 400). The released "
              "SIN script instead resized each image by a fixed 0.7 factor, about 252 superpixels on 300 x 400, so "
              "its 200 row used more superpixels than the others.",
              "* `ssn` and `grid` are extras outside the paper's table (SSN: the deep reference; grid: trivial "
              "baseline).", "",
              "## Providers", "", "| provider | spec | fingerprint tag | weights (sha256) |", "|---|---|---|---|"]
    for prov, lab in zip(providers, labels, strict=True):
        info = provider_info(prov)
        w = f"`{info['weights']}` ({info['sha256'][:12]})" if info["sha256"] else (
            "UNTRAINED" if info["trained"] is False else "")
        lines.append(f"| {lab} | `{info['spec']}` | `{info['tag']}` | {w} |")
    lines.append("")
    if skipped:
        lines += ["## Skipped providers", "", f"Could not be resolved when this ran: {', '.join(skipped)}.", ""]
    if dataset.skipped or failed:
        lines += ["## Images left out", ""]
        lines += [f"* `{n}`: {why}" for n, why in dataset.skipped]
        lines += [f"* `{n}`: " + "; ".join(f"{w}: {e}" for w, e in errs) for n, errs in failed.items()]
        lines.append("")
    shown = ", ".join(n for n, _ in picks)
    lines += [f"Example maps: `{path.stem}_examples.png` ({shown}; chosen as {pick_rule}).", ""]
    write_text(path, "\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, type=Path,
                    help="dataset folder: images/ with ground_truth_mask/ (ECSSD) or masks/")
    add_provider_args(ap, default=DEFAULT_PROVIDERS)
    ap.add_argument("--n-segments", nargs="+", type=positive_int, default=[200, 400], metavar="S",
                    help="table rows: row S requests round(h*w*S/120000) superpixels per image")
    ap.add_argument("--so-params", default="code", choices=["code", "paper"], help="SO constants")
    ap.add_argument("--processes", type=positive_int, default=2, help="worker processes (1: run here)")
    ap.add_argument("--threads", type=positive_int, default=1, help="torch/OpenCV/numba threads per worker")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "saliency")
    ap.add_argument("--cache", type=Path, default=None,
                    help="cache root (labels/ and saliency/ under it); default: sin.paths.cache_root()")
    ap.add_argument("--limit", type=positive_int, default=None, help="only the first N images (smoke runs)")
    ap.add_argument("--examples", type=positive_int, default=3, help="example rows in the figure")
    ap.add_argument("--recompute", action="store_true", help="recompute every label and SO map even if cached")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    return ap


def main(argv=None) -> list[dict]:
    args = build_parser().parse_args(argv)
    try:
        return run(args, argv)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None


def run(args, argv=None) -> list[dict]:
    import datetime as _dt

    from sin.paths import cache_root

    t_start = time.perf_counter()
    load_before = os.getloadavg()[0]
    providers, skipped = table_providers(args.providers, skip_unavailable=args.skip_unavailable)
    labels = provider_labels(providers)
    sizes = list(dict.fromkeys(args.n_segments))
    so_params = resolve_so_params(args.so_params)
    dataset = SaliencyDataset(args.dataset, missing_masks="skip")
    dataset.check()
    if args.limit is not None:
        dataset.items = dataset.items[: args.limit]
    for name, why in dataset.skipped:
        print(f"skipping image {name}: {why}", file=sys.stderr)
    if not dataset.items:
        raise SystemExit(f"error: no usable image in {args.dataset}")
    root = Path(args.cache) if args.cache is not None else cache_root()

    results = compute(dataset, providers, sizes, so_params, cache_root=root, processes=args.processes,
                      threads=args.threads, recompute=args.recompute, progress=not args.quiet)
    rows, per_image, failed = summarise(results, providers, labels, sizes, dataset.name)
    for name, errs in failed.items():
        print(f"left out image {name}: " + "; ".join(f"{w}: {e}" for w, e in errs), file=sys.stderr)
    comps = comparisons(per_image, labels, sizes)
    picks, rule = example_picks(per_image, labels, sizes[0], args.examples)

    stem = f"table2_{dataset.name}" + ("" if args.so_params == "code" else f"_{args.so_params}")
    args.out.mkdir(parents=True, exist_ok=True)
    shown = [str(a) for a in (argv if argv is not None else sys.argv[1:])]
    command = "python -m benchmarks.sod_table " + " ".join(shown)
    example_figure(dataset, picks, results, providers, labels, sizes[0], args.out / f"{stem}_examples.png")
    write_csv(pd.DataFrame([{"dataset": dataset.name, **r} for r in rows]), args.out / f"{stem}.csv",
              float_format="%.6f")
    write_csv(per_image, args.out / f"{stem}_per_image.csv.gz", float_format="%.6f")
    info = machine_info()
    run_info = {"date": _dt.date.today().isoformat(), "wall_s": time.perf_counter() - t_start,
                "processes": args.processes, "computed": sum(r["computed"] for r in results),
                "reused": sum(r["reused"] for r in results), "cpu_count": info["cpu_count"],
                "load_before": load_before, "load_after": os.getloadavg()[0],
                "cpu_s": sum(r.get("cpu_s", 0.0) for r in results)}
    run_info["cpu_per_image"] = run_info["cpu_s"] / max(1, len(results))
    write_markdown(args.out / f"{stem}.md", dataset, rows, providers, labels, sizes, comps, skipped=skipped,
                   failed=failed, so_params_name=args.so_params, command=command, run=run_info, pick_rule=rule,
                   picks=picks)
    for r in rows:
        print(f"{r['size']:>5} {r['provider']:>6}  K={r['mean_superpixels']:.1f}  MAE={r['mae']:.4f}  "
              f"S={r['s_measure']:.4f}  maxF={r['max_f']:.4f}  meanE={r['mean_e']:.4f}  "
              f"provider {r['median_provider_s']:.3f} s ({r['median_provider_cpu_s']:.3f} CPU)  "
              f"SO {r['median_so_s']:.3f} s ({r['median_so_cpu_s']:.3f} CPU)")
    print(f"wall time {run_info['wall_s']:.1f} s ({run_info['computed']} maps computed, {run_info['reused']} reused); "
          f"worker CPU {run_info['cpu_s']:.1f} s ({run_info['cpu_per_image']:.2f} s per image); "
          f"wrote {args.out / stem}.{{md,csv}}, _per_image.csv.gz, _examples.png")
    return rows


if __name__ == "__main__":
    main()
