"""Table 2 of the SIN paper: Saliency Optimization MAE with different superpixels.

For every image of a salient-object dataset, every provider and every row of the table (200 /
400), request superpixels by the SIN paper's SO protocol (the preset
:data:`downstream.saliency_optimization.SIN_PAPER`: row S asks for ``round(h * w * S / 120000)``
superpixels, ``slic`` runs with the SO demo's compactness 20 unless the spec sets one, SO with the
released code's constants), run :func:`downstream.saliency_optimization.saliency_optimization`,
keep the 8-bit map (as the original code does) and score it: MAE (the table metric, ``CalMAE``
semantics), plus S-measure, max F-measure and E-measure (pysodmetrics).

Usage::

    python -m benchmarks.sod_table --dataset ECSSD [--data-root PATH] \\
        [--providers slic snic ers sin ssn grid] [--n-segments 200 400] [--so-params code|paper] \\
        [--processes 2 | --scheduler tcp://HOST:PORT] [--out results/saliency] [--cache DIR] [--limit N] \\
        [--recompute]

    # the tables again from an earlier run's per-image scores and its sidecar (nothing recomputed)
    python -m benchmarks.sod_table --dataset ECSSD --from-per-image results/saliency [--out DIR]

Writes ``<out>/table2_<dataset>.md``, ``.csv`` (one row per row size x provider, all metrics),
``_per_image.csv.gz`` (every image's scores, for paired comparisons), ``_examples.png`` and
``.json``, the provenance sidecar (command, machine, providers with fingerprint tags and weights
sha256, protocol, run, images left out). ``--from-per-image`` re-derives everything but max F and
max E (maxima of the dataset's mean curves, carried over from the run's CSV) and the figure.
Resumable: label maps go through :class:`sin.providers.LabelCache` (``<cache>/labels``), SO maps
through :class:`downstream.saliency_optimization.cache.SOMapCache` (``<cache>/saliency``), both
keyed by the image's pixels; ``--cache`` is the cache root (:func:`sin.paths.cache_root`).
Images run through :func:`sin.parallel.label_maps`, both rows of an image in one task that also
makes and scores the SO maps: in ``--processes`` workers, one torch / OpenCV / numba thread each
(``--threads``), or on a Dask cluster (``--scheduler tcp://HOST:PORT``, whose workers must see
the dataset).

Images whose mask is missing, unreadable or of another size are reported up front and left out;
an image on which any provider or SO fails is listed and left out of every row, so that all rows
are scored on the same images (paired). Exit codes: 0 done; 1 done with images left out (listed);
2 usage error or nothing done (unknown provider, unusable weights or ``--out``, no image left).
"""

from __future__ import annotations

import os

# Before torch starts OpenMP (see sin.threads): idle OpenMP threads sleep instead of spinning.
# Measured here on ECSSD under load (load average ~14 on 2 cores, 1 torch thread): SIN took a
# median 2.6 s per image without this and 0.10 s with it. Spawned workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")

import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks import _report as R  # noqa: E402
from benchmarks._common import REPO, paired_bootstrap, probe_providers, write_csv, write_text  # noqa: E402
from benchmarks._samples import Sample  # noqa: E402
from benchmarks._sod_maps import SOMapScores, read_pair, row_counts  # noqa: E402
from benchmarks._sod_page import example_figure, render  # noqa: E402
from downstream.saliency_optimization import SIN_PAPER  # noqa: E402
from downstream.saliency_optimization.datasets import SaliencyDataset  # noqa: E402
from downstream.saliency_optimization.evaluate import aggregate_scores  # noqa: E402
from sin import argtypes as A  # noqa: E402
from sin.parallel import (  # noqa: E402
    Failure,
    SerialExecutor,
    add_executor_args,
    label_maps,
    limit_threads,
    open_executor,
)
from sin.providers import LabelCache  # noqa: E402

#: SIN paper, Table 2 (MAE on ECSSD, SO with each method's superpixels).
PAPER_ECSSD = {200: {"slic": 0.1719, "snic": 0.1714, "ers": 0.1686, "sin": 0.1657},
               400: {"slic": 0.1675, "snic": 0.1654, "ers": 0.1630, "sin": 0.1616}}

#: The paper's rows, then SSN (the deep reference) and the grid (trivial baseline) as extras.
DEFAULT_PROVIDERS = ("slic", "snic", "ers", "sin", "ssn", "grid")

METRICS = ("mae", "s_measure", "max_f", "mean_e", "max_e")
#: Per-image scores written to the per-image csv (max_f / mean_e of the image's own curves).
PER_IMAGE = ("mae", "s_measure", "max_f", "mean_e")
#: Metrics that are means of per-image values, so a paired bootstrap over images applies.
PAIRED = {"mae": "MAE", "s_measure": "S-measure", "mean_e": "mean E-measure"}
#: Lower is better for these.
LOWER_BETTER = {"mae"}
N_BOOT = 10000


@dataclasses.dataclass(frozen=True)
class Config:
    """The run's settings; the command line's defaults are these."""

    dataset: str = "ECSSD"
    data_root: Path | None = None
    providers: tuple = DEFAULT_PROVIDERS
    skip_unavailable: bool = False
    n_segments: tuple = SIN_PAPER.rows
    so_params: str = SIN_PAPER.so_params
    processes: int = 2
    scheduler: str | None = None
    threads: int = 1
    out: Path | None = None
    cache: Path | None = None
    recompute: bool = False
    limit: int | None = None
    examples: int = 3
    quiet: bool = False
    from_per_image: Path | None = None


def so_count(height: int, width: int, size: int) -> int:
    """Superpixels for the row ``size`` (the preset's count rule; kept under its old name)."""
    return SIN_PAPER.n_segments(height, width, size)


def table_providers(specs, *, skip_unavailable: bool = False, protocol=SIN_PAPER):
    """``(providers, skipped)``: each spec as the protocol runs it (``slic`` gets compactness 20)."""
    providers, skipped = [], []
    for spec in specs:
        try:
            prov = protocol.provider(spec)
        except ValueError as exc:
            if not skip_unavailable:
                raise ValueError(f"{exc} (or pass --skip-unavailable to run the others)") from None
            print(f"skipping: {exc}", file=sys.stderr)
            skipped.append(str(spec))
            continue
        if prov not in providers:
            providers.append(prov)
    if not providers:
        raise ValueError("no provider left to run")
    return providers, skipped


def provider_labels(providers) -> list[str]:
    """Column names: the method name, or the full spec where two runs share a name."""
    names = [p.name for p in providers]
    return [p.name if names.count(p.name) == 1 else p.spec_string() for p in providers]


@contextlib.contextmanager
def _threads_here(threads: int):
    """``threads`` torch / OpenCV / numba threads in this process, as in a worker; torch's restored after."""
    import torch

    before = torch.get_num_threads()
    limit_threads(threads)
    try:
        yield
    finally:
        limit_threads(before)


def compute(dataset: SaliencyDataset, providers, sizes, so_params="code", *, cache_root: Path, executor=None,
            processes: int = 2, scheduler: str | None = None, threads: int = 1, recompute: bool = False,
            progress: bool = True) -> list[dict]:
    """Every (provider, row) SO map of every image and its scores, through :func:`sin.parallel.label_maps`
    (label maps in ``<cache_root>/labels``, SO maps in ``<cache_root>/saliency``); in dataset order,
    per image ``{"name", "records": {(provider index, row): scores}, "errors", "computed", "reused",
    "cpu_s"}``.

    Runs on ``executor``, or on what ``processes`` / ``scheduler`` ask for (see
    :func:`sin.parallel.open_executor`), with ``threads`` threads per worker (also here when
    ``processes`` is 1).
    """
    key = SIN_PAPER.map_key(so_params)
    samples = [Sample(read_pair, (it.image_path, it.mask_path), it.name) for it in dataset.items]
    counts = functools.partial(row_counts, tuple(sizes))
    labels = LabelCache(Path(cache_root) / "labels", recompute=recompute)
    results = [{"index": i, "name": s.name, "records": {}, "errors": [], "computed": 0, "reused": 0, "cpu_s": 0.0}
               for i, s in enumerate(samples)]
    with contextlib.ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(open_executor(processes, scheduler, threads=threads))
        if isinstance(executor, SerialExecutor):
            stack.enter_context(_threads_here(threads))
        for pi, prov in enumerate(providers):
            then = SOMapScores(prov, so_params, key, str(Path(cache_root) / "saliency"), recompute)
            got = label_maps(prov, samples, counts, cache=labels, executor=executor, threads=threads, then=then,
                             errors="collect", progress=progress, desc=f"SO maps {prov.spec_string()}")
            for res, recs in zip(results, got):
                if isinstance(recs, Failure):  # the image is left out of every row (paired)
                    res["errors"].append((f"{prov.spec_string()} n={'/'.join(map(str, sizes))}", recs.error))
                    continue
                for size, rec in zip(sizes, recs):
                    computed = rec.pop("computed")
                    res["computed" if computed else "reused"] += 1
                    res["cpu_s"] += rec.pop("cpu_s")
                    res["records"][(pi, size)] = rec
    return results


def per_image_frame(results: list[dict], labels, sizes, dataset_name: str):
    """``(per_image, aggregates, failed)`` of the images without errors (rows stay paired)."""
    failed = {r["name"]: r["errors"] for r in results if r["errors"]}
    good = [r for r in results if not r["errors"]]
    if not good:
        first = "; ".join(f"{w}: {e}" for w, e in results[0]["errors"][:1])
        raise ValueError(f"every image failed; first problem: {first}")
    rows, agg = [], {}
    for size in sizes:
        for pi, label in enumerate(labels):
            recs = [r["records"][(pi, size)] for r in good]
            agg[(size, label)] = aggregate_scores(recs)
            rows += [{"dataset": dataset_name, "image": r["name"], "size": size, "provider": label,
                      **{c: x[c] for c in ("n_requested", "n_superpixels", *PER_IMAGE, "provider_s", "so_s",
                                           "provider_cpu_s", "so_cpu_s")}} for r, x in zip(good, recs)]
    return pd.DataFrame(rows), agg, failed


def table_rows(per_image: pd.DataFrame, agg: dict, record: dict) -> list[dict]:
    """One row per (size, provider): counts, the dataset scores ``agg``, median times, the paper's MAE."""
    specs = {p["method"]: p for p in record["providers"]}
    rows = []
    for (size, label), a in agg.items():
        d = per_image[(per_image["size"] == size) & (per_image["provider"] == label)]
        col = {c: d[c].to_numpy(float) for c in ("n_requested", "n_superpixels", "provider_s", "so_s",
                                                   "provider_cpu_s", "so_cpu_s")}
        name = specs[label]["spec"].split(":")[0]
        rows.append({"size": size, "provider": label, "n_images": int(a.get("n_images", len(d))),
                     "mean_requested": float(np.mean(col["n_requested"])),
                     "mean_superpixels": float(np.mean(col["n_superpixels"])), **{m: a[m] for m in METRICS},
                     "median_provider_s": float(np.median(col["provider_s"])),
                     "median_so_s": float(np.median(col["so_s"])),
                     "median_provider_cpu_s": float(np.nanmedian(col["provider_cpu_s"])),
                     "median_so_cpu_s": float(np.nanmedian(col["so_cpu_s"])),
                     "paper_ecssd_mae": PAPER_ECSSD.get(size, {}).get(name, ""),
                     "provider_spec": specs[label]["spec"], "provider_tag": specs[label]["tag"]})
    return rows


def comparisons(per_image: pd.DataFrame, labels, sizes, ref: str | None = None) -> list[dict]:
    """Paired bootstrap of ``ref`` minus every other provider, per size and paired metric; ``ref``
    defaults to the first run of the ``sin`` provider (``sin``, or its spec where two runs of SIN
    share the name, e.g. ``sin:precision=fp32`` next to ``sin:weights=small,precision=fp32``)."""
    out = []
    ref = ref or next((x for x in labels if x.split(":")[0] == "sin"), None)
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
                            "significant": R.excludes_zero(lo, hi), "n": int(len(wide[m]))})
    return out


def example_picks(per_image: pd.DataFrame, labels, size: int, n: int) -> tuple[list, str]:
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


def _stem(config: Config) -> str:
    return f"table2_{config.dataset}" + ("" if config.so_params == "code" else f"_{config.so_params}")


def write_tables(out: Path, stem: str, per_image: pd.DataFrame, agg: dict, record: dict) -> list[dict]:
    """The table CSV, the markdown page and the sidecar from the per-image scores and ``record``."""
    labels = [p["method"] for p in record["providers"]]
    sizes = record["protocol"]["rows"]
    rows = table_rows(per_image, agg, record)
    write_csv(pd.DataFrame([{"dataset": record["dataset"]["name"], **r} for r in rows]), out / f"{stem}.csv",
              float_format="%.6f")
    comps = comparisons(per_image, labels, sizes)
    write_text(out / f"{stem}.md", render(record, rows, comps, stem, paired=PAIRED, paper=PAPER_ECSSD,
                                          n_boot=N_BOOT, lower_better=LOWER_BETTER))
    R.write_sidecar(out / f"{stem}.md", record)
    return rows


def run(config: Config, argv=None) -> tuple[list[dict], int]:
    """The benchmark: ``(rows, exit code)`` (1 when images were left out, each listed)."""
    import datetime as _dt

    from sin.paths import cache_root

    if config.from_per_image is not None:
        return from_per_image(config, argv)
    t_start, load_before = time.perf_counter(), os.getloadavg()[0]
    out = A.output_dir(config.out or REPO / "results" / "saliency")
    providers, skipped = table_providers(config.providers, skip_unavailable=config.skip_unavailable)
    probe_providers(providers)  # a provider that cannot run at all (corrupt weights) stops here, in one line
    labels = provider_labels(providers)
    sizes = list(dict.fromkeys(config.n_segments))
    dataset = SaliencyDataset.open(config.dataset, config.data_root, missing_masks="skip")
    dataset.check()
    dataset.items = dataset.items[: config.limit]
    for name, why in dataset.skipped:
        print(f"skipping image {name}: {why}", file=sys.stderr)
    if not dataset.items:
        raise ValueError(f"no usable image in {dataset.root}")
    root = cache_root(config.cache)
    results = compute(dataset, providers, sizes, config.so_params, cache_root=root, processes=config.processes,
                      scheduler=config.scheduler, threads=config.threads, recompute=config.recompute,
                      progress=not config.quiet)
    per_image, agg, failed = per_image_frame(results, labels, sizes, dataset.name)
    for name, errs in failed.items():
        print(f"left out image {name}: " + "; ".join(f"{w}: {e}" for w, e in errs), file=sys.stderr)
    picks, rule = example_picks(per_image, labels, sizes[0], config.examples)
    stem = _stem(config)
    example_figure(dataset, picks, results, labels, sizes[0], out / f"{stem}_examples.png")
    write_csv(per_image, out / f"{stem}_per_image.csv.gz", float_format="%.6f")
    machine = R.machine_info()
    run_info = {"wall_s": time.perf_counter() - t_start, "processes": config.processes,
                **({} if config.scheduler is None else {"scheduler": config.scheduler}),
                "computed": sum(r["computed"] for r in results), "reused": sum(r["reused"] for r in results),
                "cpu_count": machine["cpu_count"], "load_before": load_before, "load_after": os.getloadavg()[0],
                "cpu_s": sum(r.get("cpu_s", 0.0) for r in results)}
    run_info["cpu_per_image"] = run_info["cpu_s"] / max(1, len(results))
    record = {"script": "benchmarks.sod_table", "command": R.command_line(argv), "machine": machine,
              "date": _dt.date.today().isoformat(), "run": run_info, "skipped_providers": skipped,
              "protocol": {"preset": SIN_PAPER.name, "rows": sizes, "count_rule": SIN_PAPER.count_rule,
                           "slic_compactness": SIN_PAPER.slic_compactness, "so_params": config.so_params},
              "providers": [{"method": lab, **{k: v for k, v in R.provider_info(p).items() if k != "note"}}
                            for p, lab in zip(providers, labels)],
              "dataset": {"name": dataset.name, "n_images": len(results),
                          "skipped": [list(s) for s in dataset.skipped],
                          "failed": [[n, "; ".join(f"{w}: {e}" for w, e in errs)] for n, errs in failed.items()]},
              "examples": {"rule": rule, "picks": [list(p) for p in picks]}, "history": []}
    rows = write_tables(out, stem, per_image, agg, record)
    for r in rows:
        print(f"{r['size']:>5} {r['provider']:>6}  K={r['mean_superpixels']:.1f}  MAE={r['mae']:.4f}  "
              f"S={r['s_measure']:.4f}  maxF={r['max_f']:.4f}  meanE={r['mean_e']:.4f}  "
              f"provider {r['median_provider_s']:.3f} s ({r['median_provider_cpu_s']:.3f} CPU)  "
              f"SO {r['median_so_s']:.3f} s ({r['median_so_cpu_s']:.3f} CPU)")
    print(f"wall time {run_info['wall_s']:.1f} s ({run_info['computed']} maps computed, {run_info['reused']} reused); "
          f"worker CPU {run_info['cpu_s']:.1f} s ({run_info['cpu_per_image']:.2f} s per image); "
          f"wrote {out / stem}.{{md,csv,json}}, _per_image.csv.gz, _examples.png")
    left_out = bool(failed or dataset.skipped)
    return rows, A.EXIT_PARTIAL if left_out else A.EXIT_OK


def from_per_image(config: Config, argv=None) -> tuple[list[dict], int]:
    """``--from-per-image``: the tables of an earlier run from its per-image scores and sidecar."""
    import datetime as _dt

    src, stem = Path(config.from_per_image), _stem(config)
    out = A.output_dir(config.out or src)
    per_src = src / f"{stem}_per_image.csv.gz"
    if not per_src.is_file():
        raise FileNotFoundError(f"--from-per-image: no {per_src.name} in {src}")
    record = R.read_sidecar(src / f"{stem}.md", required=("providers", "protocol", "dataset", "run"))
    per_image = pd.read_csv(per_src, dtype={"image": str, "provider": str})
    old = pd.read_csv(src / f"{stem}.csv", dtype={"provider": str})  # max F / max E: maxima of mean curves
    agg = {}
    for r in old.to_dict("records"):
        d = per_image[(per_image["size"] == r["size"]) & (per_image["provider"] == r["provider"])]
        agg[(int(r["size"]), r["provider"])] = {
            "n_images": int(d["image"].nunique()), "max_f": float(r["max_f"]), "max_e": float(r["max_e"]),
            **{m: float(np.mean(d[m].to_numpy(float))) for m in ("mae", "s_measure", "mean_e")}}
    if out.resolve() != src.resolve():
        for suffix in ("_per_image.csv.gz", "_examples.png"):
            if (src / f"{stem}{suffix}").is_file():
                shutil.copyfile(src / f"{stem}{suffix}", out / f"{stem}{suffix}")
    record["history"] = [*record.get("history", []), {
        "command": R.command_line(argv), "date": _dt.date.today().isoformat(),
        "what": f"tables re-derived from {per_src.name} (no map recomputed; max F and max E from {stem}.csv)"}]
    rows = write_tables(out, stem, per_image, agg, record)
    print(f"re-derived {len(rows)} rows from {per_src}; results in {out}", file=sys.stderr)
    return rows, A.EXIT_OK


def build_parser() -> A.Parser:
    ap = A.Parser(prog="python -m benchmarks.sod_table", description=__doc__.split("\n\n")[0])
    A.add_dataset_args(ap, what="salient-object dataset (a folder with images/ and ground_truth_mask/ or masks/)")
    A.add_provider_args(ap, default=DEFAULT_PROVIDERS)
    ap.add_argument("--n-segments", nargs="+", type=A.positive_int, metavar="S",
                    help="table rows: row S requests round(h*w*S/120000) superpixels per image")
    ap.add_argument("--so-params", choices=["code", "paper"], help="SO constants (default: the preset's, code)")
    add_executor_args(ap)
    ap.add_argument("--threads", type=A.positive_int, help="torch/OpenCV/numba threads per worker")
    ap.add_argument("--out", type=Path, help="output folder (default results/saliency)")
    A.add_cache_args(ap)
    ap.add_argument("--limit", type=A.positive_int, help="only the first N images (smoke runs)")
    ap.add_argument("--examples", type=A.positive_int, help="example rows in the figure")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--from-per-image", type=Path, metavar="DIR",
                    help="re-derive the tables from DIR/table2_<dataset>_per_image.csv.gz and its sidecar")
    A.config_defaults(ap, Config)
    return ap


def main(argv=None) -> int:
    """Command line; returns the exit code (see the module notes)."""
    args = build_parser().parse_args(argv)
    return A.run_cli(lambda: run(A.config_from_args(Config, args), argv)[1])


if __name__ == "__main__":
    sys.exit(main())
