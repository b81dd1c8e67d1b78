"""SIN fine-tuned end to end through BI, as a superpixel method: ASA on MSRC-21 against its labels.

Does task training trade generic boundary quality for task boundaries? This script answers the
task side: the achievable segmentation accuracy (ASA) of the shipped SIN weights and of each
fine-tuned weights file (one per training seed) against the MSRC-21 class maps of a split (void
pixels excluded), at several superpixel counts, with paired bootstrap intervals over images
(fine-tuned minus shipped; seeds averaged per image). It also draws the superpixels before and
after on a few images chosen by a rule (largest ASA gain, median, largest loss at the middle
count). The generic side is :mod:`benchmarks.superpixel_quality` on BSDS500 with the same
providers (command in ``results/semseg/README.md``).

Usage::

    python -m benchmarks.e2e_superpixels --tuned RUN/sin_best.pt [RUN2/sin_best.pt ...] \\
        [--dataset msrc21] [--data-root DIR] [--split test] [--n-segments 300 600 1000] \\
        [--processes 2 | --scheduler tcp://HOST:PORT] [--out results/semseg/e2e_superpixels]

Label maps come through :func:`sin.parallel.label_maps` and the label cache (``--cache``), every
count of an image in one task that also scores them, in ``--processes`` local workers or on a
Dask cluster (``--scheduler``, whose workers must see the dataset and the weights files).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import command_line, machine_info, markdown_table, paired_bootstrap, positive_int, \
    repo_relative, write_csv, write_figure, write_text
from benchmarks._samples import Sample
from downstream.bilateral_inception import datasets as D
from downstream.bilateral_inception.datasets import VOID
from sin.argtypes import Parser, add_cache_args, cli_main, non_negative_int
from sin.parallel import ItemError, add_executor_args, executor_from_args, label_maps
from sin.paths import cache_root
from sin.providers import LabelCache, get_provider
from sin.providers.registry import file_sha256

REPO = Path(__file__).resolve().parents[1]


def asa_ignoring_void(labels: np.ndarray, gt: np.ndarray, void: int = VOID) -> float:
    """ASA over the labelled pixels: ``sum_s max_c |S_s ∩ G_c| / #labelled`` (void excluded)."""
    keep = gt != void
    n = int(keep.sum())
    if n == 0:
        return float("nan")
    sp = labels[keep].astype(np.int64)
    cls = gt[keep].astype(np.int64)
    k = int(cls.max()) + 1
    counts = np.bincount(sp * k + cls, minlength=(int(sp.max()) + 1) * k).reshape(-1, k)
    return float(counts.max(axis=1).sum()) / n


def providers_for(tuned) -> dict:
    """``{method name: provider}``: the shipped weights first, then one per fine-tuned file."""
    base = get_provider("sin").with_params(precision="fp32")
    out = {"SIN (shipped)": base}
    for i, path in enumerate(tuned):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"fine-tuned SIN weights not found: {path}")
        out[f"SIN (end to end, #{i})"] = base.with_params(weights=str(path))
    return out


def class_sample(dataset, sid: str) -> tuple:
    """``(image, class labels)`` of image ``sid`` of a BI dataset (it pickles: paths)."""
    s = dataset.load(sid)
    return s.image, s.label


def count_and_asa(seg) -> tuple[int, float]:
    """``then`` of the runner: the map's superpixel count and its ASA against the class labels."""
    return int(seg.labels.max()) + 1, asa_ignoring_void(seg.labels, seg.source.truth())


def evaluate(dataset, providers: dict, sizes, cache: LabelCache, *, executor=None, progress: bool = True):
    """Per-image ASA of every provider and count: a DataFrame (image, method, n_segments, count, asa).

    The maps come through :func:`sin.parallel.label_maps` and ``cache`` and are scored where they
    are made; ``executor``: where (default: here, one image after the other).
    """
    samples = [Sample(class_sample, (dataset, sid), sid) for sid in dataset.ids]
    scored = {name: label_maps(prov, samples, [tuple(sizes)] * len(samples), cache=cache, executor=executor,
                               processes=1, then=count_and_asa, progress=progress, desc=f"ASA {name}")
              for name, prov in providers.items()}
    return pd.DataFrame([{"image": s.name, "method": name, "n_segments": k, "count": count, "asa": asa}
                         for i, s in enumerate(samples) for name in providers
                         for k, (count, asa) in zip(sizes, scored[name][i])])


def example_maps(dataset, providers: dict, picks, k: int, cache: LabelCache) -> dict:
    """``{(image, method, k): labels}`` of the picked images (from the label cache, where
    :func:`evaluate` stored them)."""
    samples = [Sample(class_sample, (dataset, sid), sid) for sid, _ in picks]
    return {(s.name, name, k): lab for name, prov in providers.items()
            for s, lab in zip(samples, label_maps(prov, samples, k, cache=cache, processes=1, progress=False))}


def summarise(per_image: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """Mean ASA per method and count; fine-tuned minus shipped with a paired 95 % interval (per
    file, and for the seed mean per image)."""
    base_name = "SIN (shipped)"
    wide = per_image.pivot_table(index=["n_segments", "image"], columns="method", values="asa")
    tuned = [c for c in wide.columns if c != base_name]
    rows = []
    for k, grp in wide.groupby(level=0):
        counts = per_image[per_image.n_segments == k].groupby("method")["count"].mean()
        rows.append({"n_segments": k, "method": base_name, "mean_count": counts[base_name],
                     "asa": grp[base_name].mean()})
        cols = [(c, grp[c]) for c in tuned] + ([("SIN (end to end, seed mean)", grp[tuned].mean(axis=1))]
                                               if len(tuned) > 1 else [])
        for name, values in cols:
            d, lo, hi = paired_bootstrap((values - grp[base_name]).to_numpy(), n_boot=n_boot, seed=seed)
            rows.append({"n_segments": k, "method": name,
                         "mean_count": counts[name] if name in counts else counts[tuned].mean(),
                         "asa": values.mean(), "diff_vs_shipped": d, "ci_low": lo, "ci_high": hi,
                         "images_better": int((values > grp[base_name]).sum()),
                         "images_worse": int((values < grp[base_name]).sum())})
    return pd.DataFrame(rows)


def pick_examples(per_image: pd.DataFrame, k: int, n: int) -> list[tuple[str, str]]:
    """The rule: at count ``k``, the images of largest ASA gain, median change and largest loss
    (seed mean of the fine-tuned files minus shipped), ``n`` of them spread in that order."""
    wide = per_image[per_image.n_segments == k].pivot_table(index="image", columns="method", values="asa")
    tuned = [c for c in wide.columns if c != "SIN (shipped)"]
    diff = (wide[tuned].mean(axis=1) - wide["SIN (shipped)"]).sort_values(ascending=False)
    idx = np.unique(np.linspace(0, len(diff) - 1, max(1, n)).round().astype(int))
    return [(diff.index[i], f"ASA {diff.iloc[i]:+.4f}") for i in idx]


def draw_examples(path, dataset, labels: dict, picks, k: int, methods) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import mark_boundaries

    cols = ["image + labels"] + list(methods)
    fig, axes = plt.subplots(len(picks), len(cols), figsize=(3.0 * len(cols), 2.2 * len(picks)), squeeze=False)
    for r, (sid, what) in enumerate(picks):
        s = dataset.load(sid)
        img = s.image.astype(float) / 255
        gt = s.label.astype(np.int64)
        panels = [mark_boundaries(img, np.where(gt == VOID, -1, gt), color=(1, 1, 0))]
        panels += [mark_boundaries(img, labels[(sid, m, k)], color=(1, 0, 0)) for m in methods]
        for c, p in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(p)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
        axes[r, 0].set_ylabel(f"{sid}\n{what}", fontsize=7)
    fig.tight_layout()
    write_figure(fig, path)


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="python -m benchmarks.e2e_superpixels", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tuned", type=Path, nargs="+", required=True, help="fine-tuned SIN weights (one per seed)")
    ap.add_argument("--dataset", choices=list(D.DATASETS), default="msrc21")
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--n-segments", type=positive_int, nargs="+", default=[300, 600, 1000])
    ap.add_argument("--limit", type=positive_int, default=None)
    ap.add_argument("--n-boot", type=positive_int, default=5000)
    ap.add_argument("--bootstrap-seed", type=non_negative_int, default=0)
    ap.add_argument("--figure-images", type=non_negative_int, default=3)
    ap.add_argument("--figure-tuned", type=non_negative_int, default=0, metavar="I",
                    help="the --tuned file drawn in the figure (0-based; e.g. the one selected on val)")
    add_cache_args(ap, recompute=False)
    add_executor_args(ap)
    ap.add_argument("--out", type=Path, default=REPO / "results" / "semseg" / "e2e_superpixels")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    return ap


def run(args) -> pd.DataFrame:
    dataset = D.open_dataset(args.dataset, args.split, data_root=args.data_root, limit=args.limit)
    if args.figure_tuned >= len(args.tuned):
        raise ValueError(f"--figure-tuned {args.figure_tuned}: there are only {len(args.tuned)} --tuned files")
    providers = providers_for(args.tuned)
    sizes = sorted(dict.fromkeys(args.n_segments))
    cache = LabelCache(cache_root(args.cache) / "labels")
    with executor_from_args(args) as executor:
        per_image = evaluate(dataset, providers, sizes, cache, executor=executor, progress=args.progress)
    table = summarise(per_image, args.n_boot, args.bootstrap_seed)
    out = Path(args.out)
    write_csv(per_image, out / "asa_per_image.csv", float_format="%.6f")
    write_csv(table, out / "asa.csv", float_format="%.6f")
    show = table.assign(
        asa=table["asa"].map("{:.4f}".format), mean_count=table["mean_count"].map("{:.0f}".format),
        **{"fine-tuned − shipped [95% CI]": [
            "" if pd.isna(r.get("diff_vs_shipped")) else
            f"{r['diff_vs_shipped']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]" for r in table.to_dict("records")],
           "images better / worse": ["" if pd.isna(r.get("images_better")) else
                                     f"{int(r['images_better'])} / {int(r['images_worse'])}"
                                     for r in table.to_dict("records")]})
    show = show[["n_segments", "method", "mean_count", "asa", "fine-tuned − shipped [95% CI]", "images better / worse"]]
    mach = machine_info()
    weights = "\n".join(f"* `{m}`: `{repo_relative(p.weights_file)}` (sha256 `{file_sha256(p.weights_file)[:16]}…`)"
                        for m, p in providers.items())
    mid = sizes[len(sizes) // 2]
    lines = [f"# SIN fine-tuned through BI: ASA on {dataset.name} {args.split} against its class labels", "",
             f"Generated by `{command_line()}` on {mach['date']}.", "", markdown_table(show), "",
             f"ASA over the labelled pixels (void excluded) of the {len(dataset)} images, fp32 SIN, hard labels "
             "(the `sin` provider). Intervals: paired bootstrap over images, 95 %. Weights:", "", weights, ""]
    if args.figure_images > 0:
        picks = pick_examples(per_image, mid, args.figure_images)
        names = list(providers)
        drawn = names[0], names[1 + args.figure_tuned]
        labels = example_maps(dataset, {m: providers[m] for m in drawn}, picks, mid, cache)
        draw_examples(out / "examples.png", dataset, labels, picks, mid, drawn)
        lines += [f"`examples.png`: at k={mid}, the images of largest ASA gain, median change and largest loss "
                  "(seed mean, fine-tuned − shipped); yellow = class boundaries, red = superpixels "
                  f"({drawn[0]}, then {drawn[1]}).", ""]
    write_text(out / "README.md", "\n".join(lines))
    return table


def execute(args) -> int:
    print(run(args).to_string(index=False))
    return 0


def main(argv=None) -> int:
    return cli_main(build_parser, execute, argv, expected=(ValueError, OSError, ItemError))


if __name__ == "__main__":
    sys.exit(main())
