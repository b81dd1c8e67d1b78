"""Table 1 of the SIN paper, layout and protocol, on a dataset we have: DeepLab vs. DeepLab + BI(superpixels).

Rows: the trunk alone (coarse logits upsampled bilinearly: "DeepLab"), then the trunk with a
Bilateral Inception head (BI6(2) -> fc7 -> BI7(6), :mod:`downstream.bilateral_inception`) trained
on the superpixels of each provider, all at the same requested number of superpixels (paper:
600). Each row: test mIoU and the gain over the baseline (plus val mIoU, which selected the
epochs). The SIN paper's VOC 2012 *test* numbers stand in a separate, labelled column: they are a
different dataset, trunk and training budget and are never mixed into our rows.

Protocol (MSRC-21 by default; everything cached and resumable)::

    trunk   pretrained DeepLabV3-MobileNetV2 (VOC, TF model zoo port) with a new classifier for
            the dataset's classes; backbone frozen, ASPP head + classifier fine-tuned on the
            train split (flips), best epoch on val; input: shorter side --short-side (257)
    BI      per provider: superpixels of every image (native resolution), cached; the head
            starts from the trunk's classifier and trains on cached trunk features (trunk
            frozen), best epoch on val; evaluated on test

Usage::

    python -m benchmarks.semseg_table --dataset msrc21 [--data-root DIR] \\
        [--providers slic snic ers sin] [--n-segments 600] [--out results/semseg] \\
        [--cache-dir cache/semseg] [--runs-dir runs/semseg] [--trunk-weights PT]

A provider that is not registered is skipped with a note; re-running with more providers reuses
every cache (trunk, features, superpixels, trained heads) and only computes what is missing.
Cache keys carry the weights' hashes (SIN's too), so new SIN weights give a fresh SIN column.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import (
    command_line,
    machine_info,
    markdown_table,
    sin_weights_info,
    write_csv,
    write_figure,
    write_text,
)
from downstream.bilateral_inception import datasets as D
from downstream.bilateral_inception import train as T
from downstream.bilateral_inception.metrics import voc_colormap
from downstream.bilateral_inception.trunks import build_trunk

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"

#: SIN paper, Table 1: IoU on PASCAL VOC 2012 test (DeepLab-COCO-LargeFOV; BI with 1000 gSLICr
#: superpixels for SLIC, 600 for ERS / SIN). Reference only.
PAPER_VOC_TEST = {"baseline": 68.9, "crf": 72.7, "slic": 73.5, "ers": 74.0, "sin": 74.4}

PROVIDER_LABEL = {"slic": "SLIC", "snic": "SNIC", "ers": "ERS", "sin": "SIN", "ssn": "SSN", "grid": "grid",
                  "fh": "FH", "seeds": "SEEDS", "lsc": "LSC"}

DEFAULT_SPLITS = {"msrc21": ("train", "val", "test"), "folder": ("train", "val", "test"),
                  "voc": ("train_aug", "reducedval", "val")}


def default_trunk_weights() -> Path:
    return Path(os.environ.get("SIN_DEEPLAB_WEIGHTS", SHARED / "weights" / "deeplabv3_mnv2_dm05_tflite_weights.pt"))


def open_split(dataset: str, split: str, data_root=None, sbd_root=None, limit: int | None = None):
    """See :func:`downstream.bilateral_inception.datasets.open_dataset`."""
    return D.open_dataset(dataset, split, data_root=data_root, sbd_root=sbd_root, limit=limit)


def _fmt_pct(v):
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}"


def run(args) -> dict:
    """The whole table; returns the summary dict (also written as JSON next to the table)."""
    from sin.providers import available_providers

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    tr_split, va_split, te_split = args.splits or DEFAULT_SPLITS[args.dataset]
    train_set = open_split(args.dataset, tr_split, args.data_root, args.sbd_root, args.limit)
    val_set = open_split(args.dataset, va_split, args.data_root, args.sbd_root, args.limit)
    test_set = open_split(args.dataset, te_split, args.data_root, args.sbd_root, args.limit)
    name = args.dataset if args.dataset != "folder" else train_set.name
    cache_root = Path(args.cache_dir) / name
    runs_root = Path(args.runs_dir) / name
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- trunk
    weights = None if args.trunk == "tiny" else args.trunk_weights
    wtag = "random" if weights is None else T.file_fingerprint(weights)
    trunk = build_trunk(args.trunk, weights, num_classes=21 if args.trunk != "tiny" else train_set.num_classes)
    tcfg = T.TrunkTrainConfig(epochs=args.trunk_epochs, lr=args.trunk_lr, batch_size=args.trunk_batch_size,
                              short_side=args.short_side, mode="head", flips=True, seed=args.seed)
    ttag = f"{args.trunk}_{wtag}_s{args.short_side}"
    bb_dir = cache_root / f"backbone_{ttag}"
    trunk_dir = runs_root / f"trunk_{ttag}_{T.config_fingerprint(asdict(tcfg))}"
    t0 = time.perf_counter()
    T.cache_backbone(trunk, train_set, bb_dir, short_side=args.short_side, flips=True, progress=args.progress)
    for ds in (val_set, test_set):
        T.cache_backbone(trunk, ds, bb_dir, short_side=args.short_side, flips=False, progress=args.progress)
    timings["backbone cache (all splits, train with flips)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if args.trunk_epochs > 0 or trunk.num_classes != train_set.num_classes:
        rec = T.train_trunk(trunk, train_set, val_set, trunk_dir, config=tcfg, backbone_cache_dir=bb_dir,
                            progress=args.progress, meta={"weights": str(weights)})
        trunk, _ = T.load_trunk_checkpoint(trunk_dir / "best.pt")
        trunk_fp = T.file_fingerprint(trunk_dir / "best.pt")
        trunk_record = rec
    else:
        trunk_fp, trunk_record = wtag, {}
    timings["trunk fine-tuning (head + classifier)"] = time.perf_counter() - t0
    bb = T.TensorCache(bb_dir)
    feat_dir = cache_root / f"features_{args.trunk}_{trunk_fp}"
    t0 = time.perf_counter()
    for ds in (train_set, val_set, test_set):
        fc = T.cache_features(trunk, ds, feat_dir, short_side=args.short_side, backbone_cache=bb,
                              progress=args.progress)
    timings["feature cache"] = time.perf_counter() - t0

    rows, per_class, preds = [], {}, {}
    t0 = time.perf_counter()
    base_val = T.evaluate_baseline(trunk, val_set, feature_cache=fc, progress=False)
    preds["baseline"] = {}
    base_test = T.evaluate_baseline(trunk, test_set, feature_cache=fc, progress=args.progress,
                                    predictions=preds["baseline"])
    timings["baseline evaluation"] = time.perf_counter() - t0
    rows.append({"key": "baseline", "method": f"DeepLab ({trunk.name}, bilinear upsampling)", "superpixels": "",
                 "mean_count": np.nan, "val_miou": base_val.mean_iou(), "test_miou": base_test.mean_iou(),
                 "gain": 0.0, "note": ""})
    per_class["baseline"] = base_test.iou()
    rows.append({"key": "crf", "method": "+ CRF", "superpixels": "", "mean_count": np.nan, "val_miou": np.nan,
                 "test_miou": np.nan, "gain": np.nan, "note": "not run (the paper's reference row)"})

    if args.trunk_only:
        print(f"trunk stage done: baseline val mIoU {100 * base_val.mean_iou():.2f}, "
              f"test mIoU {100 * base_test.mean_iou():.2f}; timings {json.dumps(timings)}")
        return {"rows": rows, "timings": timings}

    # ------------------------------------------------------------------ BI per provider
    bcfg = T.BITrainConfig(epochs=args.bi_epochs, lr=args.bi_lr, batch_size=args.bi_batch_size, init=args.bi_init,
                           dropout=args.bi_dropout, finetune=args.bi_finetune, trunk_lr=args.bi_trunk_lr,
                           short_side=args.short_side, seed=args.seed)
    # frozen trunk: BI reads cached features; head fine-tuned: cached backbone outputs
    bi_cache = fc if bcfg.finetune == "none" else bb
    registered = set(available_providers())
    notes = {}
    for prov in args.providers:
        label = PROVIDER_LABEL.get(prov, prov)
        row = {"key": prov, "method": f"+ BI({label})", "superpixels": f"{label}, k={args.n_segments}",
               "mean_count": np.nan, "val_miou": np.nan, "test_miou": np.nan, "gain": np.nan, "note": ""}
        if prov not in registered:
            row["note"] = "skipped: provider not registered"
            notes[prov] = row["note"]
            rows.append(row)
            continue
        params = {}
        if prov == "sin":
            info = sin_weights_info(args.sin_weights)
            params = {"weights": args.sin_weights}
            row["note"] = info["note"]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SIN's untrained-weights warning is in the table note instead
            sps = {}
            for ds in (train_set, val_set, test_set):
                res = T.cache_superpixels(ds, prov, args.n_segments, cache_root / "superpixels", params=params,
                                          progress=args.progress)
                sps.update(res["labels"])
        timings[f"superpixels {prov}"] = time.perf_counter() - t0
        counts = [int(sps[i].max()) + 1 for i in test_set.ids]
        row["mean_count"] = float(np.mean(counts))
        ptag = f"{prov}_k{args.n_segments}_{T.provider_fingerprint(prov, params)}"
        bi_dir = runs_root / f"bi_{ptag}_{trunk_fp}_{T.config_fingerprint(asdict(bcfg))}"
        head = T.build_head(trunk, train_set.num_classes, bcfg)
        t0 = time.perf_counter()
        rec = T.train_bi(head, train_set, val_set, sps, bi_dir, config=bcfg, feature_cache=bi_cache,
                         trunk=copy.deepcopy(trunk), progress=args.progress,
                         meta={"provider": prov, "n_segments": args.n_segments})
        timings[f"BI training {prov}"] = time.perf_counter() - t0
        head, state = T.load_bi_checkpoint(bi_dir / "best.pt")
        bi_trunk = copy.deepcopy(trunk)
        if state.get("trunk_state") is not None:
            bi_trunk.load_state_dict(state["trunk_state"])
        t0 = time.perf_counter()
        preds[prov] = {}
        cm = T.evaluate_bi(head, test_set, sps, feature_cache=bi_cache, trunk=bi_trunk, finetune=bcfg.finetune,
                           progress=args.progress, predictions=preds[prov])
        timings[f"BI test evaluation {prov}"] = time.perf_counter() - t0
        row.update(val_miou=rec["best_miou"], test_miou=cm.mean_iou(), gain=cm.mean_iou() - base_test.mean_iou(),
                   best_epoch=rec["best_epoch"],
                   theta6=json.dumps([round(float(t), 3) for t in head.bi6.theta.detach()]),
                   theta7=json.dumps([round(float(t), 3) for t in head.bi7.theta.detach()]))
        per_class[prov] = cm.iou()
        rows.append(row)
    timings["total"] = time.perf_counter() - t_start

    summary = write_outputs(args, name, rows, per_class, test_set, preds, timings, trunk_record, tcfg, bcfg)
    return summary


def write_outputs(args, name, rows, per_class, test_set, preds, timings, trunk_record, tcfg, bcfg) -> dict:
    out = Path(args.out)
    df = pd.DataFrame(rows)
    df["paper_voc2012_test"] = [PAPER_VOC_TEST.get(k, np.nan) for k in df["key"]]
    csv_df = df.copy()
    for c in ("val_miou", "test_miou", "gain"):
        csv_df[c] = 100 * csv_df[c]
    write_csv(csv_df, out / f"table1_{name}.csv", float_format="%.2f")
    classes = list(test_set.classes)
    pc = pd.DataFrame({"class": classes, **{k: 100 * np.asarray(v) for k, v in per_class.items()}})
    write_csv(pc, out / f"table1_{name}_per_class.csv", float_format="%.2f")

    show = pd.DataFrame({
        "method": df["method"],
        "superpixels (mean count on test)": [s if not s or np.isnan(c) else f"{s} ({c:.0f})" for s, c in
                                             zip(df["superpixels"], df["mean_count"])],
        f"mIoU, ours ({name} {te_name(args)})": [_fmt_pct(v) for v in df["test_miou"]],
        "gain over baseline": [("" if np.isnan(g) else f"{100 * g:+.1f}") if k != "baseline" else "" for k, g in
                               zip(df["key"], df["gain"])],
        "val mIoU (selection)": [_fmt_pct(v) for v in df["val_miou"]],
        "paper, VOC 2012 test": [("" if np.isnan(v) else f"{v:.1f}") for v in df["paper_voc2012_test"]],
        "note": df["note"],
    })
    mach = machine_info()
    lines = [
        f"# Table 1 layout: DeepLab vs. DeepLab + Bilateral Inception with different superpixels ({name})",
        "",
        f"Generated by `{command_line()}` on {mach['date']}.",
        "",
        markdown_table(show),
        "",
        ("The last column is the SIN paper's Table 1 (DeepLab-COCO-LargeFOV on PASCAL VOC 2012 **test**, "
         "evaluation server), given for reference only: a different dataset, trunk and training budget. "
         "Every other number is measured here."),
        "",
        "## Protocol",
        "",
        (f"* Data: {name}, splits {'/'.join(args.splits or DEFAULT_SPLITS[args.dataset])} (train / val / test); "
         f"mIoU over the {len(classes)} classes, confusion matrix summed over the split, void (255) excluded. "
         "Val selects the epochs; test is reported."),
        (f"* Trunk: `{args.trunk}` (weights `{trunk_weights_name(args)}`), new {len(classes)}-class classifier; "
         f"backbone frozen, ASPP head + classifier fine-tuned {tcfg.epochs} epochs (AdamW lr {tcfg.lr}, cosine, "
         f"batch {tcfg.batch_size}, horizontal flips), best epoch on val"
         + (f" (epoch {trunk_record.get('best_epoch')})" if trunk_record else "")
         + f". Input: shorter side {args.short_side} (align-corners resize, sides 8k+1); stride-8 features."),
        "* Baseline: the trunk's coarse logits upsampled bilinearly (align corners) to the native resolution.",
        (f"* BI: BI6(2) [rgbxy, xy] grid -> superpixels, ReLU, dropout {bcfg.dropout}, fc7 (1x1), BI7(6) "
         f"3 x [rgbxy, xy], ReLU, dropout {bcfg.dropout}, classifier, smeared to pixels; superpixel features "
         "[0.1 y, 0.1 x, 0.1 RGB, "
         f"0.01 y, 0.01 x] (pixels, 0..255). Init `{bcfg.init}` (start from the trunk's classifier: w = 1/H, "
         f"fc7 = [W; -W], classifier = [I, -I]); trunk frozen (cached features); Adam lr {bcfg.lr} "
         f"(x10 for theta7 / w7 as in the released model), cosine, batch {bcfg.batch_size}, {bcfg.epochs} epochs, "
         f"best epoch on val. Superpixels on the native image, requested count {args.n_segments} for every "
         "provider (each provider's default parameters)."),
        "",
        "## Timings (seconds, this run; cached stages are ~0)",
        "",
        markdown_table(pd.DataFrame({"stage": list(timings), "seconds": [round(v, 1) for v in timings.values()]})),
        "",
        (f"Machine: {mach['cpu_count']} CPUs, load average {mach['load_avg_1_5_15']} at the end, torch "
         f"{mach['torch']} ({mach['torch_threads']} threads); shared with other jobs, so timings are indicative."),
        "",
        f"Per-class IoU: `table1_{name}_per_class.csv`; examples: `table1_{name}_examples.png`.",
    ]
    write_text(out / f"table1_{name}.md", "\n".join(lines) + "\n")
    summary = {"rows": json.loads(df.to_json(orient="records")), "timings": timings, "machine": mach}
    write_text(out / f"table1_{name}.json", json.dumps(summary, indent=2) + "\n")
    if args.figure_images > 0 and preds:
        write_examples(out / f"table1_{name}_examples.png", test_set, preds, args.figure_images)
    return summary


def trunk_weights_name(args) -> str:
    return "random" if args.trunk == "tiny" else Path(str(args.trunk_weights)).name


def te_name(args) -> str:
    return (args.splits or DEFAULT_SPLITS[args.dataset])[2]


def _colorize(label: np.ndarray) -> np.ndarray:
    cmap = voc_colormap()
    rgb = cmap[label]
    rgb[label == 255] = 255  # void: white
    return rgb


def write_examples(path, test_set, preds: dict, n: int) -> None:
    """Image, ground truth, baseline and BI per provider for ``n`` evenly spaced test images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = [i for i in test_set.ids if all(i in p for p in preds.values())]
    if not ids:
        return
    pick = [ids[int(j)] for j in np.linspace(0, len(ids) - 1, min(n, len(ids)))]
    cols = ["image", "ground truth"] + [("DeepLab" if k == "baseline" else f"BI({PROVIDER_LABEL.get(k, k)})")
                                        for k in preds]
    fig, axes = plt.subplots(len(pick), len(cols), figsize=(2.2 * len(cols), 1.7 * len(pick)), squeeze=False)
    for r, sid in enumerate(pick):
        s = test_set.load(sid)
        panels = [s.image, _colorize(s.label)] + [_colorize(p[sid]) for p in preds.values()]
        for c, img in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
        axes[r, 0].set_ylabel(sid, fontsize=7)
    fig.tight_layout()
    write_figure(fig, path)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.semseg_table", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["msrc21", "voc", "folder"], default="msrc21")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="dataset folder (msrc21: default $SIN_DATA_ROOT/MSRC21; voc: VOC2012; folder: required)")
    ap.add_argument("--sbd-root", type=Path, default=None, help="SBD benchmark_RELEASE (voc train_aug)")
    ap.add_argument("--splits", nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=None)
    ap.add_argument("--providers", nargs="+", default=["slic", "snic", "ers", "sin"])
    ap.add_argument("--n-segments", type=int, default=600)
    ap.add_argument("--out", type=Path, default=REPO / "results" / "semseg")
    ap.add_argument("--cache-dir", type=Path, default=REPO / "cache" / "semseg")
    ap.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "semseg")
    ap.add_argument("--trunk", default="deeplabv3_mobilenetv2")
    ap.add_argument("--trunk-weights", type=Path, default=default_trunk_weights(),
                    help="pretrained trunk weights (default $SIN_DEEPLAB_WEIGHTS or ../shared/weights/...)")
    ap.add_argument("--sin-weights", default=None, help="SIN weights (default: the shipped ones)")
    ap.add_argument("--short-side", type=int, default=257)
    ap.add_argument("--trunk-epochs", type=int, default=8)
    ap.add_argument("--trunk-lr", type=float, default=5e-4)
    ap.add_argument("--trunk-batch-size", type=int, default=8)
    ap.add_argument("--bi-epochs", type=int, default=8)
    ap.add_argument("--bi-lr", type=float, default=1e-3)
    ap.add_argument("--bi-batch-size", type=int, default=4)
    ap.add_argument("--bi-init", choices=["trunk", "spec"], default="trunk")
    ap.add_argument("--bi-finetune", choices=["none", "head"], default="none",
                    help="trunk during BI training: frozen (cached features) or its head trained too "
                         "(cached backbone outputs)")
    ap.add_argument("--bi-trunk-lr", type=float, default=1e-4, help="lr of the trunk head with --bi-finetune head")
    ap.add_argument("--bi-dropout", type=float, default=None,
                    help="dropout after BI6 / BI7 (default: 0 with --bi-init trunk, 0.5 with spec)")
    ap.add_argument("--figure-images", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None, help="first N images of every split (smoke runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trunk-only", action="store_true",
                    help="stop after the trunk stage (fine-tuning, feature cache, baseline); no table")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's choice; on a busy shared machine 1 is much faster)")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    if args.trunk != "tiny" and not Path(args.trunk_weights).is_file():
        raise SystemExit(f"error: trunk weights not found: {args.trunk_weights} (pass --trunk-weights)")
    summary = run(args)
    for r in summary["rows"]:
        if r.get("test_miou") is not None and not np.isnan(r["test_miou"]):
            print(f"{r['method']:<55} test mIoU {100 * r['test_miou']:.2f}  {r.get('note') or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
