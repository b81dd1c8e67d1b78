"""Table 1 reports: rows, paired intervals (whole image and boundary bands), files and plots.

:mod:`benchmarks.semseg_table` computes; this module turns its per-seed results into the table.
Everything here is a function of two files the table writes, so a table can be re-derived (and
its intervals recomputed) by anyone from the committed results, without the data or the runs:

* ``table1_<name>_confusion.npz``: per row, the per-image confusion matrices
  ``(seeds, images, 1 + bands, K, K)`` (int32; index 0 of the band axis is the whole image,
  then the pixels within ``d`` px of a ground-truth boundary for each band width ``d``);
* ``table1_<name>.json``: rows (method, superpixels, notes), per-seed val / test scores and best
  epochs, the configuration and the machine.

``python -m benchmarks.semseg_table --from-results DIR`` re-derives the markdown, CSV and plots.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import markdown_table, write_csv, write_figure, write_text
from downstream.bilateral_inception.metrics import iou_per_class, mean_iou, paired_bootstrap_miou, voc_colormap
from sin.io import atomic_write

__all__ = ["PAPER_VOC_TEST", "REFERENCES", "RowSpec", "save_confusions", "load_confusions", "summarize",
           "band_summary", "write_tables", "band_plot", "write_examples", "write_report", "from_results"]

#: SIN paper, Table 1: IoU on PASCAL VOC 2012 test (DeepLab-COCO-LargeFOV; BI with 1000 gSLICr
#: superpixels for SLIC, 600 for ERS / SIN). Reference only.
PAPER_VOC_TEST = {"baseline": 68.9, "crf": 72.7, "bi:slic": 73.5, "bi:ers": 74.0, "bi:sin": 74.4}

#: the reference rows of the intervals: name -> what the column header says
REFERENCES = {"baseline": "baseline", "trained": "equally trained baseline", "crf": "+CRF", "sin": "BI(SIN)"}


@dataclass
class RowSpec:
    """One row of the table: ``key`` (unique), ``kind`` (trunk / crf / spavg / bi / e2e), ``method``
    (shown), ``provider`` (registry name, for the paper column and the BI(SIN) reference),
    ``superpixels`` (shown) and ``note``."""

    key: str
    kind: str
    method: str
    provider: str = ""
    superpixels: str = ""
    note: str = ""

    @property
    def paper_key(self) -> str:
        return f"{self.kind}:{self.provider}" if self.kind == "bi" else self.key


# ---------------------------------------------------------------------------------- the confusion file
def save_confusions(path, cms: dict, ids, widths, classes) -> Path:
    """Write every row's per-image confusion stacks (``{key: {seed: (N, 1+B, K, K)}}``; int32,
    compressed) with the image ids, band widths and class names."""
    arrays = {"ids": np.array(list(ids)), "band_widths": np.array(list(widths)), "classes": np.array(list(classes))}
    for key, per_seed in cms.items():
        seeds = sorted(per_seed)
        stack = np.stack([per_seed[s] for s in seeds])
        if stack.max(initial=0) >= 2**31:
            raise ValueError(f"row {key}: confusion counts do not fit int32")
        arrays[f"cm__{key}"] = stack.astype(np.int32)
        arrays[f"seeds__{key}"] = np.array(seeds)

    def _write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write(path, _write)
    return Path(path)


def load_confusions(path) -> tuple[dict, list, tuple, list]:
    """``({key: {seed: (N, 1 + bands, K, K)}}, ids, band widths, classes)`` of :func:`save_confusions`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"confusion file not found: {path}")
    try:
        with np.load(path) as z:
            ids = [str(i) for i in z["ids"]]
            widths = tuple(int(w) for w in z["band_widths"])
            classes = [str(c) for c in z["classes"]]
            out = {}
            for name in z.files:
                if name.startswith("cm__"):
                    key = name[4:]
                    seeds = [int(s) for s in z[f"seeds__{key}"]]
                    stack = z[name].astype(np.int64)
                    out[key] = dict(zip(seeds, stack))
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a Table 1 confusion file ({exc})") from None
    return out, ids, widths, classes


# ---------------------------------------------------------------------------------- rows and intervals
def _std(values) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def reference_keys(specs: list[RowSpec]) -> dict:
    """Row key of each reference; ``sin`` is the first plain BI row with the ``sin`` provider."""
    sin_keys = [s.key for s in specs if s.kind == "bi" and s.provider == "sin"]
    return {"baseline": "baseline", "trained": "trained_baseline", "crf": "crf",
            "sin": sin_keys[0] if sin_keys else None}


def _paired(cms: dict, key: str, ref_key: str, band: int):
    a, b = cms.get(key, {}), cms.get(ref_key, {})
    seeds = [s for s in sorted(a) if s in b]  # seeds paired
    if not seeds or key == ref_key:
        return None
    return np.stack([a[s][:, band] for s in seeds]), np.stack([b[s][:, band] for s in seeds])


def summarize(specs: list[RowSpec], scores: dict, cms: dict, *, n_boot: int = 2000, boot_seed: int = 0,
              all_seeds=None) -> list[dict]:
    """One dict per row with scores: seed mean / std of test mIoU (%), val mean, and paired
    bootstrap intervals of the whole-image mIoU difference against every reference row.

    ``scores``: ``{key: [{"seed", "val", "test", "best_epoch"}, ...]}``; ``cms``: ``{key: {seed: (N, 1+B, K, K)}}``.
    """
    refs = reference_keys(specs)
    rows = []
    for spec in specs:
        runs = scores.get(spec.key) or []
        row = {**asdict(spec), "paper_voc2012_test": PAPER_VOC_TEST.get(spec.paper_key, np.nan),
               "seeds": " ".join(str(r["seed"]) for r in runs), "n_seeds": len(runs)}
        if runs and all_seeds is not None and len(runs) < len(all_seeds):
            row["note"] = "; ".join(filter(None, [row["note"], f"seeds {row['seeds']} only: intervals pair those "
                                                  "seeds"]))
        if runs:
            test = [100 * r["test"] for r in runs]
            vals = [100 * r["val"] for r in runs if r.get("val") is not None]
            row.update(test_miou_mean=float(np.mean(test)), test_miou_std=_std(test),
                       val_miou_mean=float(np.mean(vals)) if vals else np.nan,
                       test_miou_per_seed=json.dumps([round(v, 2) for v in test]),
                       best_epochs=json.dumps([r.get("best_epoch") for r in runs]))
            for ref, ref_key in refs.items():
                pair = None if ref_key is None else _paired(cms, spec.key, ref_key, 0)
                if pair is None:
                    continue
                bs = paired_bootstrap_miou(*pair, n_boot=n_boot, seed=boot_seed)
                row[f"diff_vs_{ref}"] = 100 * bs["diff"]
                row[f"ci_low_vs_{ref}"] = 100 * bs["low"]
                row[f"ci_high_vs_{ref}"] = 100 * bs["high"]
        rows.append(row)
    return rows


def band_summary(specs: list[RowSpec], cms: dict, widths, *, refs=("trained", "crf"), n_boot: int = 2000,
                 boot_seed: int = 0) -> pd.DataFrame:
    """Long table: per row and band (``"all"`` then each width) the seed-mean mIoU (%) and the paired
    interval of the difference against ``refs``."""
    ref_keys = reference_keys(specs)
    out = []
    for spec in specs:
        if spec.key not in cms:
            continue
        for b, band in enumerate(["all", *widths]):
            stack = np.stack([cms[spec.key][s][:, b] for s in sorted(cms[spec.key])])
            entry = {"key": spec.key, "method": spec.method, "band": str(band),
                     "miou": float(100 * np.mean(mean_iou(stack.sum(1))))}
            for ref in refs:
                pair = None if ref_keys.get(ref) is None else _paired(cms, spec.key, ref_keys[ref], b)
                if pair is None:
                    continue
                bs = paired_bootstrap_miou(*pair, n_boot=n_boot, seed=boot_seed)
                entry.update({f"diff_vs_{ref}": 100 * bs["diff"], f"ci_low_vs_{ref}": 100 * bs["low"],
                              f"ci_high_vs_{ref}": 100 * bs["high"]})
            out.append(entry)
    return pd.DataFrame(out)


def scored_pixels(cms: dict, widths) -> dict:
    """Scored (non-void) pixels per band, summed over the test images (the same for every row)."""
    any_row = next(iter(cms.values()))
    stack = next(iter(any_row.values()))  # (N, 1+B, K, K)
    totals = stack.sum(axis=(0, 2, 3))
    return {str(b): int(t) for b, t in zip(["all", *widths], totals)}


# ---------------------------------------------------------------------------------- formatting
def _fmt(v, fmt="{:.1f}"):
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)


def _interval(row, ref) -> str:
    d = row.get(f"diff_vs_{ref}")
    if d is None or (isinstance(d, float) and np.isnan(d)):
        return ""
    return f"{d:+.2f} [{row[f'ci_low_vs_{ref}']:+.2f}, {row[f'ci_high_vs_{ref}']:+.2f}]"


COLUMNS = ["key", "kind", "method", "provider", "superpixels", "seeds", "n_seeds", "test_miou_mean", "test_miou_std",
           "val_miou_mean", "test_miou_per_seed", "best_epochs"] + \
          [f"{c}_vs_{r}" for r in REFERENCES for c in ("diff", "ci_low", "ci_high")] + ["note", "paper_voc2012_test"]


def main_table(rows: list[dict], name: str, test_split: str, n_seeds: int) -> pd.DataFrame:
    return pd.DataFrame({
        "method": [r["method"] for r in rows],
        "superpixels": [r["superpixels"] for r in rows],
        f"test mIoU, mean ± std over {n_seeds} seed{'s' if n_seeds > 1 else ''} ({name} {test_split})":
            [("" if np.isnan(r.get("test_miou_mean", np.nan)) else
              f"{r['test_miou_mean']:.2f} ± {r['test_miou_std']:.2f}" if not np.isnan(r["test_miou_std"]) else
              f"{r['test_miou_mean']:.2f}") for r in rows],
        "vs equally trained [95% CI]": [_interval(r, "trained") for r in rows],
        "vs +CRF [95% CI]": [_interval(r, "crf") for r in rows],
        "vs BI(SIN) [95% CI]": [_interval(r, "sin") for r in rows],
        "val mIoU": [_fmt(r.get("val_miou_mean"), "{:.2f}") for r in rows],
        "paper, VOC 2012 test": [_fmt(r["paper_voc2012_test"]) for r in rows],
        "note": [r["note"] for r in rows],
    })


def band_tables(bands: pd.DataFrame, widths, pixels: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(band mIoU per row and band, difference vs the equally trained baseline per band [CI])."""
    cols = ["all", *map(str, widths)]
    head = {c: f"{'whole image' if c == 'all' else c + ' px'}" + (f" ({pixels[c] / 1e6:.2f} MP)" if c in pixels else "")
            for c in cols}
    miou = bands.pivot_table(index="method", columns="band", values="miou", sort=False)[cols]
    miou = miou.rename(columns={c: f"mIoU {'whole image' if c == 'all' else f'band {c} px'}" for c in cols})
    diffs = {}
    for method, grp in bands.groupby("method", sort=False):
        g = grp.set_index("band")
        diffs[method] = [_interval(g.loc[c].to_dict(), "trained") if c in g.index else "" for c in cols]
    diff = pd.DataFrame.from_dict(diffs, orient="index", columns=[f"Δ vs equally trained, {head[c]}" for c in cols])
    return miou.reset_index(), diff.reset_index().rename(columns={"index": "method"})


def write_tables(out, name: str, rows: list[dict], bands: pd.DataFrame, widths, pixels: dict, *,
                 header: list[str], protocol: list[str], footer: list[str], test_split: str, n_seeds: int) -> None:
    """``table1_<name>.md`` / ``.csv`` and ``table1_<name>_bands.csv``."""
    out = Path(out)
    write_csv(pd.DataFrame(rows).reindex(columns=COLUMNS), out / f"table1_{name}.csv", float_format="%.2f")
    write_csv(bands, out / f"table1_{name}_bands.csv", float_format="%.2f")
    miou, diff = band_tables(bands, widths, pixels)
    lines = [*header, "", markdown_table(main_table(rows, name, test_split, n_seeds)), "",
             "## Boundary bands (trimap)", "",
             ("mIoU over the pixels within d px of a ground-truth label boundary (void pixels are never scored; "
              "an edge between a class and void counts as a boundary). Scored pixels per band, summed over the "
              "test images: " + ", ".join(f"{'whole image' if k == 'all' else k + ' px'} {v:,}"
                                         for k, v in pixels.items()) + ". Plot: "
              f"`table1_{name}_bands.png`."), "",
             markdown_table(miou, {c: ".2f" for c in miou.columns if c != "method"}), "",
             "Difference against the equally trained baseline per band (paired bootstrap over test images, seeds "
             f"paired, 95 %; `table1_{name}_bands.csv` has the same against +CRF):", "",
             markdown_table(diff), "", "## Protocol", "", *protocol, "", *footer]
    write_text(out / f"table1_{name}.md", "\n".join(lines) + "\n")


def band_plot(path, bands: pd.DataFrame, specs: list[RowSpec], widths, title: str) -> None:
    """Left: band mIoU vs band width; right: its difference to the equally trained baseline with the
    paired 95 % interval (shaded). Trunk rows, +CRF and every BI row; no-training rows dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, dx) = plt.subplots(1, 2, figsize=(11, 4.2))
    cols = [str(w) for w in widths]
    fixed = {"baseline": dict(color="k", marker="s"), "trained_baseline": dict(color="0.5", marker="s", linestyle=":"),
             "crf": dict(color="tab:purple", marker="D")}
    palette = iter(plt.get_cmap("tab10")([0, 1, 2, 3, 5, 6, 8, 9]))
    colours = {}
    for spec in specs:
        base = spec.key.split(":", 1)[-1]
        if spec.key not in fixed and base not in colours:
            colours[base] = next(palette, "tab:gray")
    for spec in specs:
        g = bands[bands["key"] == spec.key].set_index("band")
        if g.empty:
            continue
        st = dict(fixed.get(spec.key) or dict(color=colours[spec.key.split(":", 1)[-1]],
                                               marker="." if spec.kind == "spavg" else "o",
                                               linestyle="--" if spec.kind == "spavg" else "-"))
        label = spec.method.removeprefix("+ ")
        ax.plot(list(widths), [g.loc[c, "miou"] for c in cols], label=label, lw=1.3, ms=4, **st)
        if "diff_vs_trained" in g and spec.key != "trained_baseline":
            d = [g.loc[c, "diff_vs_trained"] for c in cols]
            dx.plot(list(widths), d, lw=1.3, ms=4, **st)
            dx.fill_between(list(widths), [g.loc[c, "ci_low_vs_trained"] for c in cols],
                            [g.loc[c, "ci_high_vs_trained"] for c in cols], color=st["color"], alpha=0.12, lw=0)
    for a in (ax, dx):
        a.set_xscale("log", base=2)
        a.set_xticks(list(widths), [str(w) for w in widths])
        a.set_xlabel("band width d (px around ground-truth boundaries)")
        a.grid(alpha=0.3)
    ax.set_ylabel("mIoU in the band (%)")
    dx.set_ylabel("Δ mIoU vs equally trained baseline (points, 95 % CI)")
    dx.axhline(0, color="0.5", lw=0.8, linestyle=":")
    fig.suptitle(title, fontsize=9)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="lower center", ncol=3, frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.035 * ((len(specs) + 2) // 3)))
    fig.tight_layout()
    write_figure(fig, path)


def _colorize(label: np.ndarray) -> np.ndarray:
    rgb = voc_colormap()[label]
    rgb[label == 255] = 255  # void: white
    return rgb


def write_examples(path, dataset, preds: dict, titles: dict) -> None:
    """Image, ground truth and each row's prediction for the images in ``preds`` (same ids in each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = [i for i in dataset.ids if preds and all(i in p for p in preds.values())]
    if not ids:
        return
    cols = ["image", "ground truth"] + [titles.get(k, k) for k in preds]
    fig, axes = plt.subplots(len(ids), len(cols), figsize=(2.2 * len(cols), 1.7 * len(ids)), squeeze=False)
    for r, sid in enumerate(ids):
        s = dataset.load(sid)
        for c, img in enumerate([s.image, _colorize(s.label)] + [_colorize(p[sid]) for p in preds.values()]):
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=7)
        axes[r, 0].set_ylabel(sid, fontsize=7)
    fig.tight_layout()
    write_figure(fig, path)


# ---------------------------------------------------------------------------------- the whole report
def write_report(out, summary: dict, cms: dict) -> list[dict]:
    """Markdown, CSV and plots of a table from its JSON summary and per-image confusion matrices."""
    cfg, specs = summary["config"], [RowSpec(**s) for s in summary["specs"]]
    name, widths, n = cfg["dataset"], tuple(cfg["band_widths"]), len(cfg["seeds"])
    for s in specs:
        c = cfg["mean_count"].get(s.key.split(":", 1)[-1])
        if c is not None and s.superpixels:
            s.superpixels = f"{s.superpixels} ({c:.0f})"
    rows = summarize(specs, summary["scores"], cms, n_boot=cfg["n_boot"], boot_seed=cfg["bootstrap_seed"],
                       all_seeds=cfg["seeds"])
    bands = band_summary(specs, cms, widths, n_boot=cfg["n_boot"], boot_seed=cfg["bootstrap_seed"])
    pixels = scored_pixels(cms, widths)
    per_class = pd.DataFrame({"class": cfg["classes"], **{
        k: 100 * np.nanmean([iou_per_class(v[:, 0].sum(0)) for v in per.values()], axis=0)
        for k, per in cms.items()}})
    write_csv(per_class, Path(out) / f"table1_{name}_per_class.csv", float_format="%.2f")
    band_plot(Path(out) / f"table1_{name}_bands.png", bands, specs, widths,
                f"{name} test: mIoU within d px of a ground-truth boundary (mean over seeds {cfg['seeds']})")
    crf = summary["notes"].get("crf_selection")
    header = [f"# Table 1 layout: DeepLab, +CRF and + Bilateral Inception with different superpixels ({name})", "",
              f"Generated by `{summary['command']}` on {summary['machine']['date']}.", ""]
    protocol = _protocol(cfg, crf)
    footer = ["## Timings (seconds, this run, summed over seeds; cached stages are ~0)", "",
              markdown_table(pd.DataFrame({"stage": list(summary["timings"]),
                                           "seconds": [round(v, 1) for v in summary["timings"].values()]})), "",
              f"Machine: {summary['machine']['cpu_count']} CPUs, torch {summary['machine']['torch']} "
              f"({summary['machine']['torch_threads']} threads); shared with other jobs, so timings are indicative.",
              "", f"Per-class IoU (seed mean): `table1_{name}_per_class.csv`; per-image confusion matrices of every "
              f"row and seed: `table1_{name}_confusion.npz` (`benchmarks.semseg_report.load_confusions`); "
              f"examples (seed {cfg['seeds'][0]}): `table1_{name}_examples.png`."]
    write_tables(out, name, rows, bands, widths, pixels, header=header, protocol=protocol, footer=footer,
                   test_split=cfg["splits"][2], n_seeds=n)
    return rows


def _protocol(cfg: dict, crf) -> list[str]:
    t, b = cfg["trunk_train"], cfg["bi"]
    lines = [
        (f"mIoU in %. Mean ± sample std over seeds {', '.join(map(str, cfg['seeds']))}; every trained part is "
         "trained once per seed and its test split evaluated once per seed. Intervals: paired bootstrap over the "
         f"{cfg['n_images'][2]} test images ({cfg['n_boot']} resamples; mIoU recomputed from the summed per-image "
         "confusion matrices of the resampled images; seeds paired, statistic = seed mean of the mIoU difference), "
         "95 % percentile intervals. A difference whose interval contains 0 is not resolved by this test set."),
        "",
        ("The paper column is the SIN paper's Table 1 (DeepLab-COCO-LargeFOV on PASCAL VOC 2012 **test**), for "
         "reference only: a different dataset, trunk and training budget. Every other number is measured here."),
        "",
        (f"* Data: {cfg['dataset']}, splits {'/'.join(cfg['splits'])} ({'/'.join(map(str, cfg['n_images']))} "
         f"images); mIoU over the {len(cfg['classes'])} classes, confusion matrix summed over the split, void "
         "excluded. Val alone selects epochs and CRF kernels; test is reported."),
        (f"* Trunk: `{cfg['trunk']}` (weights `{cfg['trunk_weights']}`), new {len(cfg['classes'])}-class classifier; "
         f"backbone frozen, ASPP head + classifier fine-tuned {t['epochs']} epochs (AdamW lr {t['lr']}, cosine, "
         f"batch {t['batch_size']}, horizontal flips), best epoch on val, once per seed. Input: shorter side "
         f"{cfg['short_side']} (align-corners resize, sides 8k+1); stride-8 features."),
        "* Baseline: the trunk's coarse logits upsampled bilinearly (align corners) to the native resolution.",
        (f"* Equally trained baseline: the fine-tuned trunk's classifier alone trained {b['epochs']} more epochs on "
         f"the same frozen features with the BI heads' optimiser and budget (Adam lr {b['lr']}, cosine, batch "
         f"{b['batch_size']}, same seed), best epoch on val."),
        (f"* +CRF: fully connected CRF (Krähenbühl & Koltun 2011, `pydensecrf2`) over the trunk's softmax at the "
         f"native resolution, {cfg['crf_iterations']} mean-field iterations; kernels selected on val over "
         + ", ".join(f"{sym} ∈ {{{', '.join(f'{v:g}' for v in cfg.get('crf_grid', {}).get(k, []))}}}"
                     for k, sym in (("bi_w", "w1"), ("bi_xy_std", "σα"), ("bi_rgb_std", "σβ")))
         + " (w2 = 3, σγ = 3 fixed)"
         + (f", with the trunk of seed {crf[0]['seed']}: {_crf_label(crf[0]['selected'])}" if crf else "") + "."),
        ("* Superpixel average (no training): the trunk's class probabilities (softmax, native resolution) "
         "averaged inside each superpixel, argmax: what the superpixels alone contribute."),
        (f"* BI: BI6(2) [rgbxy, xy] grid -> superpixels, ReLU, dropout {b['dropout']}, fc7 (1x1), BI7(6) "
         f"3 x [rgbxy, xy]{_bi7_scales_note(b)}, ReLU, dropout {b['dropout']}, classifier, smeared to pixels. "
         f"Init `{b['init']}`; trunk "
         f"{'frozen (cached features)' if b['finetune'] == 'none' else 'head trained too'}; Adam lr {b['lr']} "
         f"(x10 for theta7 / w7), cosine, batch {b['batch_size']}, {b['epochs']} epochs, best epoch on val. "
         f"Superpixels on the native image, requested count {cfg['n_segments']} for every provider."),
        (f"* Boundary bands: pixels within d ∈ {{{', '.join(map(str, cfg['band_widths']))}}} px (Euclidean) of a "
         "pixel whose 4-neighbour has another ground-truth label (void counts as a label)."),
    ]
    e = cfg.get("end_to_end")
    if e:
        lines.append(
            f"* BI(SIN, trained end to end): the same head, initialisation, optimiser, epochs and seeds, trained "
            f"together with SIN (`downstream.bilateral_inception.end_to_end`): during training the superpixels are "
            f"SIN's soft assignment (temperature {e['temperature']:g}) of the same seed grid, the pixel "
            f"cross-entropy back-propagates into SIN's {e['sin_train']} (Adam lr {e['sin_lr']:g}, cosine), plus "
            f"{e['aux_weight']:g} x SIN's own loss on the task labels. Val mIoU with *hard* SIN labels selects the "
            "epoch; test uses the `sin` provider with the selected weights (fp32). Weights per seed: the JSON's "
            "`notes.end_to_end_weights` (with sha256).")
    return lines


def _crf_label(p: dict) -> str:
    return f"w1 = {p['bi_w']:g}, σα = {p['bi_xy_std']:g}, σβ = {p['bi_rgb_std']:g}"


def _bi7_scales_note(bi_config: dict) -> str:
    """`` (feature scales 0.25 / 1 / 4 of its three filter pairs)`` where BI7's pairs start at different scales."""
    scales = tuple(bi_config.get("bi7_scales") or (1.0, 1.0, 1.0))
    if all(float(v) == 1.0 for v in scales):
        return ""
    return f" (its three filter pairs start at feature scales {' / '.join(f'{float(v):g}' for v in scales)})"


def from_results(src, out, *, dataset: str | None = None) -> dict:
    """Re-derive the report in ``src`` (its JSON summary and confusion file) into ``out``; no data needed.

    ``dataset`` picks ``table1_<dataset>.json`` when the folder holds several tables."""
    src = Path(src)
    js = src / f"table1_{dataset}.json"
    if not js.is_file():  # the one table of the folder, whatever its dataset
        found = sorted(src.glob("table1_*.json")) if src.is_dir() else []
        if len(found) != 1:
            raise FileNotFoundError(f"no table1_{dataset}.json in {src}" +
                                    (f" (it has {', '.join(p.name for p in found)}: pass --dataset)" if found else ""))
        js = found[0]
    name = js.stem.removeprefix("table1_")
    try:
        summary = json.loads(js.read_text())
        summary["specs"], summary["scores"], summary["config"]  # noqa: B018 - the format check
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{js} is not a Table 1 summary ({exc})") from None
    cms, *_ = load_confusions(src / f"table1_{name}_confusion.npz")
    summary["rows"] = write_report(Path(out), summary, cms)
    return summary
