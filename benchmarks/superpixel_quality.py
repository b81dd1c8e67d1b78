"""Superpixel quality vs number of superpixels (SIN paper Fig. 5 / Fig. 6 protocol).

For every method and requested size, run the provider on every image of the dataset, evaluate
every (image, ground truth) pair with :func:`sin.metrics.evaluate` (the superpixel-benchmark's
metrics) and average. Curves plot the mean *actual* number of superpixels on x.

Usage::

    python -m benchmarks.superpixel_quality --dataset bsds500 --split test \
        --providers slic snic ers sin grid --n-segments 200 300 400 500 600 700 800 900 1000 1100 1200 \
        [--limit N] [--data-root DIR] [--out results/bsds500] [--cache DIR] [--recompute] \
        [--processes 2 | --scheduler tcp://HOST:PORT] \
        [--aggregate mean|worst|best] [--gt-max-segments 50] [--skip-unavailable]

    python -m benchmarks.superpixel_quality --dataset folder --images DIR --labels DIR ...

    # re-summarize an earlier run from its raw rows and sidecar (no provider runs): tables, intervals, plots
    python -m benchmarks.superpixel_quality --from-pairs results/bsds500 [--out DIR] [--aggregate worst]

``--providers`` takes anything :func:`sin.providers.get_provider` accepts: registered names with
optional parameters (``slic:compactness=20``, ``sin:weights=PATH``, ``sin:weights=untrained``)
or your own function as ``package.module:function[:k=v,...]``.

Outputs (under ``--out``): ``quality.csv`` (one row per provider x size: mean actual K and the
aggregated metrics), ``pairs.csv.gz`` (every (image, GT) row; read it with
``pd.read_csv(..., dtype={"image": str})`` to keep ids as strings), ``quality.md`` (table,
providers with their weights file and sha256, protocol, machine), ``quality.json`` (the
provenance sidecar: command, machine, protocol, providers with fingerprint tags and weights
sha256, failures, later re-summaries), ``asa_vs_k.png``, ``co_vs_k.png``, ``br_bp.png`` and
``fig5.png`` (the three side by side), ``matched.csv`` (every provider's curve read at the same
actual counts, 300 / 600 / 1000, with paired bootstrap intervals of its difference to SIN, see
:func:`matched` and :func:`paired_vs_reference`). Interim CSVs are rewritten after every
provider. The ``method`` column holds the provider's spec string (``slic``, ``sin``,
``slic:compactness=20``). ``--from-pairs`` reads ``pairs.csv.gz`` and ``quality.json`` only.

Resumable: label maps live in the one label-map cache, :class:`sin.providers.LabelCache`
(``<cache>/labels``; ``--cache`` is the cache root, default :func:`sin.paths.cache_root`), keyed
by the provider's fingerprint and the image's pixels, so new weights, parameters, provider
versions or another copy of the dataset with different pixels never reuse a stale map
(``--recompute`` ignores the cache). Metrics are always recomputed from the maps (about 60 ms
per image). Images run through :func:`sin.parallel.label_maps`, every size of one image in one
task that also scores the maps: in ``--processes`` spawn workers, one thread each, or on a Dask
cluster (``--scheduler tcp://HOST:PORT``, whose workers must see the dataset); the per-image
seconds in the tables are therefore single-thread times taken while the other workers run (see
``benchmarks/runtime.py`` for proper timings).

A provider that cannot run at all (corrupt weights) stops the run before it starts; an image on
which a provider fails is listed (stderr, ``quality.md``, ``quality.json``) and left out at
every size of that provider, and the run goes on. Exit codes: 0 done; 1 done with failures; 2
usage error or nothing done.

Protocol (``../shared/specs/metrics.md``): SIN / SpixelFCN average over **all** (image, GT)
pairs (1063 on the BSDS500 test split), default here; ``--aggregate worst`` gives the
Stutz et al. per-image worst-GT average. Ground truths are used as stored;
``--gt-max-segments 50`` reproduces SIN's test-GT conversion (segments beyond the 50th merged
into the first; changes 85 of 1063 BSDS500 annotations).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import shutil
import sys
from pathlib import Path

import pandas as pd

from benchmarks import _report as R
from benchmarks._common import DEFAULT_SIZES, REPO, probe_providers, write_csv, write_text
from benchmarks._matched import (  # noqa: F401  (part of this script's API)
    MATCHED_AT,
    MATCHED_METRICS,
    REFERENCE,
    matched,
    paired_vs_reference,
    per_image_values,
    reference_method,
)
from benchmarks._quality_page import plot_curves, render
from benchmarks._samples import Sample, Scores, dataset_item
from sin import argtypes as A
from sin.parallel import Failure, add_executor_args

#: Summary columns: metric -> (header in the markdown table, format).
SUMMARY_METRICS = {"asa": ("ASA", ".4f"), "rec": ("BR", ".4f"), "pre": ("BP", ".4f"), "co": ("CO", ".4f"),
                   "ue": ("UE (1-ASA)", ".4f"), "ue_np": ("UE_NP", ".4f"), "ue_levin": ("UE_Levin", ".3f"),
                   "oe": ("OE", ".4f"), "ev": ("EV", ".4f"), "mde": ("MDE", ".3f"), "cd": ("CD", ".4f")}


@dataclasses.dataclass(frozen=True)
class Config:
    """The run's settings; the command line's defaults are these."""

    dataset: str = "bsds500"
    split: str = "test"
    data_root: Path | None = None
    images: Path | None = None
    labels: Path | None = None
    providers: tuple = ("slic", "snic", "ers", "sin", "grid")
    skip_unavailable: bool = False
    n_segments: tuple = DEFAULT_SIZES
    limit: int | None = None
    out: Path | None = None
    cache: Path | None = None
    recompute: bool = False
    processes: int = 2
    scheduler: str | None = None
    aggregate: str = "mean"
    tolerance: int | None = None
    gt_max_segments: int | None = None
    from_pairs: Path | None = None
    no_progress: bool = False
    no_plots: bool = False


def evaluate_all(provider, method: str, samples: list, sizes, *, executor=None, cache=None, tolerance=None,
                 progress: bool = True) -> list:
    """Every size's label map of every sample (:class:`benchmarks._samples.Sample`), through
    :func:`sin.parallel.label_maps` and ``cache``, scored in the worker
    (:class:`benchmarks._samples.Scores`).

    Returns, per sample in input order, a list with ``(rows, cached)`` per size, or a
    :class:`sin.parallel.Failure` when the provider or the scoring failed on that image.
    """
    from sin.parallel import label_maps

    return label_maps(provider, samples, [tuple(sizes)] * len(samples), cache=cache, executor=executor,
                      errors="collect", then=Scores(method, tolerance), progress=progress, desc=method)


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


def provider_records(providers, labels) -> list[dict]:
    """The sidecar's ``providers``: method label, spec, tag, fingerprint, weights file and sha256."""
    return [{"method": lab, **{k: v for k, v in R.provider_info(p).items() if k != "note"}}
            for p, lab in zip(providers, labels)]


def with_weights_columns(summary: pd.DataFrame, providers: list[dict]) -> pd.DataFrame:
    """``weights`` / ``weights_trained`` columns (which weights ran) when a provider has weights."""
    info = {p["method"]: p for p in providers}
    if any(p.get("trained") is not None for p in providers):
        summary["weights"] = [(info[m]["weights"] or "untrained") if info[m].get("trained") is not None else ""
                              for m in summary["method"]]
        summary["weights_trained"] = [info[m].get("trained") for m in summary["method"]]
    return summary


def _n_pairs(pairs: pd.DataFrame) -> int:
    return int(pairs.groupby(["method", "n_segments"]).size().iloc[0])


def write_outputs(pairs: pd.DataFrame, summary: pd.DataFrame, out: Path, record: dict, *, aggregate: str,
                  plots: bool) -> None:
    """quality.csv, matched.csv (with the paired intervals when SIN ran), quality.md, quality.json, plots."""
    summary = with_weights_columns(summary, record["providers"])
    summary["aggregate"] = aggregate
    write_csv(summary, out / "quality.csv", float_format="%.6g")
    table = matched(summary)
    if reference_method(summary["method"]) is not None:
        paired = paired_vs_reference(pairs, summary, mode=aggregate)
        table = table.merge(paired, on="method", how="left", sort=False)
    write_csv(table, out / "matched.csv", float_format="%.6g")
    n_images = int(pairs["image"].nunique())
    write_text(out / "quality.md", render(summary, table, record, summary_metrics=SUMMARY_METRICS,
                                          matched_at=MATCHED_AT, matched_metrics=MATCHED_METRICS, reference=REFERENCE,
                                          aggregate=aggregate, n_images=n_images, n_pairs=_n_pairs(pairs)))
    R.write_sidecar(out / "quality.md", record)
    if plots:
        plot_curves(summary, out, title=f"{record['protocol']['dataset_label']}, {n_images} images")


def resummarize(config: Config, argv=None) -> tuple[pd.DataFrame, int]:
    """``--from-pairs``: the tables, intervals and plots of an earlier run from its raw rows and sidecar."""
    src = config.from_pairs / "pairs.csv.gz" if config.from_pairs.is_dir() else config.from_pairs
    if not src.is_file():
        raise FileNotFoundError(f"--from-pairs: no such file: {src}")
    record = R.read_sidecar(src.parent / "quality.md", required=("providers", "protocol", "command", "machine"))
    out = A.output_dir(config.out or src.parent)
    pairs = pd.read_csv(src, dtype={"image": str, "method": str})
    missing = {"method", "n_segments", "image", "sp", "seconds", *MATCHED_METRICS} - set(pairs.columns)
    if missing:
        raise ValueError(f"--from-pairs: {src} lacks the column(s) {', '.join(sorted(missing))}")
    unknown = set(pairs["method"]) - {p["method"] for p in record["providers"]}
    if unknown:
        raise ValueError(f"--from-pairs: the sidecar does not describe the method(s) {', '.join(sorted(unknown))}")
    if out.resolve() != src.parent.resolve():
        shutil.copyfile(src, out / "pairs.csv.gz")
    record["history"] = [*record.get("history", []), {
        "command": R.command_line(argv), "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "source": src.name, "aggregate": config.aggregate}]
    summary = summarize(pairs, config.aggregate)
    write_outputs(pairs, summary, out, record, aggregate=config.aggregate, plots=not config.no_plots)
    print(f"re-summarized {len(pairs)} rows of {src}; results in {out}", file=sys.stderr)
    return summary, A.EXIT_OK


def _dataset_spec(config: Config) -> tuple[str, dict]:
    """``(name, kwargs)`` of :func:`sin.datasets.load_dataset` for the run."""
    if config.dataset == "folder":
        if config.images is None or config.labels is None:
            raise ValueError("--dataset folder needs --images DIR and --labels DIR")
        kwargs = {"images": str(config.images.resolve()), "labels": str(config.labels.resolve())}
    else:
        kwargs = {"root": str(config.data_root.resolve()) if config.data_root else None, "split": config.split}
    if config.gt_max_segments is not None:
        if config.dataset != "bsds500":
            raise ValueError("--gt-max-segments applies to --dataset bsds500 only")
        kwargs["max_segments"] = config.gt_max_segments
    return config.dataset, kwargs


def _protocol(config: Config) -> dict:
    cluster = {} if config.scheduler is None else {"scheduler": config.scheduler}
    return {"dataset": config.dataset, "split": config.split, "limit": config.limit, "processes": config.processes,
            **cluster,
            "dataset_label": f"{config.dataset} ({config.split})" if config.dataset != "folder" else str(config.images),
            "gt_protocol": ("as stored (all segments)" if config.gt_max_segments is None else
                            f"SIN conversion, segments beyond {config.gt_max_segments} merged into the first"),
            "tolerance": (f"{config.tolerance} px" if config.tolerance is not None
                          else "round(0.0025 x image diagonal) px (1 px on BSDS500), square window")}


def run(config: Config, argv=None) -> tuple[pd.DataFrame, int]:
    """The benchmark: ``(summary, exit code)``; the summary is also written to ``<out>/quality.csv``."""
    from sin.datasets import load_dataset
    from sin.parallel import open_executor
    from sin.paths import cache_root
    from sin.providers import LabelCache

    if config.from_pairs is not None:
        return resummarize(config, argv)
    providers = A.resolve_providers(config.providers, skip_unavailable=config.skip_unavailable)
    labels = [p.spec_string() for p in providers]
    if len(set(labels)) != len(labels):
        raise ValueError("two providers share the name " + ", ".join(sorted({x for x in labels if labels.count(x) > 1}))
                         + " (the 'method' column could not tell them apart)")
    name, kwargs = _dataset_spec(config)
    ds = load_dataset(name, **kwargs)  # small (paths): it travels to the workers with every sample
    indices = list(range(len(ds)))[: config.limit]
    out = A.output_dir(config.out or REPO / "results" / config.dataset)
    probe_providers(providers)  # a provider that cannot run at all (corrupt weights) stops here, in one line
    record = {"script": "benchmarks.superpixel_quality", "command": R.command_line(argv),
              "machine": R.machine_info(), "protocol": _protocol(config),
              "providers": provider_records(providers, labels), "failures": [], "history": []}
    for p in record["providers"]:
        if p["weights"] is not None or p["trained"] is False:
            print(R.provider_info(providers[labels.index(p["method"])])["note"], file=sys.stderr)

    sizes = list(dict.fromkeys(config.n_segments))
    samples = [Sample(dataset_item, (ds, i), ds.ids[i]) for i in indices]
    cache = LabelCache(cache_root(config.cache) / "labels", recompute=config.recompute)
    all_rows: list = []
    n_cached = n_computed = 0
    with open_executor(config.processes, config.scheduler) as executor:
        for label, provider in zip(labels, providers):
            results = evaluate_all(provider, label, samples, sizes, executor=executor, cache=cache,
                                   tolerance=config.tolerance, progress=not config.no_progress)
            for sample, res in zip(samples, results):
                if isinstance(res, Failure):  # left out at every size of this provider
                    record["failures"] += [[label, int(size), sample.name, res.error] for size in sizes]
                    print(f"failed: {label} K={'/'.join(map(str, sizes))} image {sample.name}: {res.error}",
                          file=sys.stderr)
            for j in range(len(sizes)):  # rows by (method, size, image), as the tables read them
                for res in results:
                    if not isinstance(res, Failure):
                        rows, cached = res[j]
                        all_rows.extend(rows)
                        n_cached += cached
                        n_computed += not cached
            if all_rows:  # interim results after every provider: an interrupted run still leaves tables
                pairs = pd.DataFrame(all_rows)
                interim = with_weights_columns(summarize(pairs, config.aggregate), record["providers"])
                write_csv(interim.assign(aggregate=config.aggregate), out / "quality.csv", float_format="%.6g")
                write_csv(pairs, out / "pairs.csv.gz", float_format="%.6g")
                R.write_sidecar(out / "quality.md", record)  # so that --from-pairs works on an interrupted run
    if not all_rows:
        raise ValueError("every image failed; first problem: " + " ".join(map(str, record["failures"][0])))
    summary = summarize(pairs, config.aggregate)
    write_outputs(pairs, summary, out, record, aggregate=config.aggregate, plots=not config.no_plots)
    failed = len(record["failures"])
    print(f"{len(indices)} images x {len(providers)} providers x {len(sizes)} sizes: "
          f"{n_computed} label maps computed, {n_cached} from cache{f', {failed} FAILED (listed above)' * bool(failed)}; "
          f"results in {out}", file=sys.stderr)
    return summary, A.EXIT_PARTIAL if failed else A.EXIT_OK


def build_parser() -> A.Parser:
    p = A.Parser(prog="python -m benchmarks.superpixel_quality", description=__doc__.split("\n\n")[0])
    A.add_dataset_args(p, choices=("bsds500", "nyuv2", "folder"))
    p.add_argument("--split", help="dataset split (bsds500, nyuv2)")
    p.add_argument("--images", type=Path, help="--dataset folder: image folder")
    p.add_argument("--labels", type=Path, help="--dataset folder: label-map folder")
    A.add_provider_args(p)
    p.add_argument("--n-segments", nargs="+", type=A.positive_int, metavar="K",
                   help="requested numbers of superpixels (the curves' points)")
    p.add_argument("--limit", type=A.positive_int, help="only the first N images (sorted ids)")
    p.add_argument("--out", type=Path, help="output folder (default results/<dataset>)")
    A.add_cache_args(p)
    add_executor_args(p)
    p.add_argument("--aggregate", choices=("mean", "worst", "best"))
    p.add_argument("--tolerance", type=A.non_negative_int, help="boundary tolerance radius (default 0.0025 x diagonal)")
    p.add_argument("--gt-max-segments", type=A.positive_int,
                   help="merge GT segments beyond this many into the first (SIN's conversion: 50); BSDS500 only")
    p.add_argument("--from-pairs", type=Path, metavar="PATH",
                   help="re-summarize an earlier run's pairs.csv.gz (file or its folder) and quality.json without "
                        "running any provider: rewrite quality.csv, matched.csv, quality.md/json and the plots in "
                        "--out (default: the folder of PATH)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plots", action="store_true", help="tables only (plots take a few seconds)")
    A.config_defaults(p, Config)
    return p


def main(argv=None) -> int:
    """Command line; returns the exit code (see the module notes)."""
    args = build_parser().parse_args(argv)
    return A.run_cli(lambda: run(A.config_from_args(Config, args), argv)[1])


if __name__ == "__main__":
    sys.exit(main())
