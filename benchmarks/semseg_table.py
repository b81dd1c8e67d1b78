"""Table 1 of the SIN paper, layout and protocol, on a dataset we have: DeepLab vs. DeepLab + BI(superpixels).

Rows: the trunk alone (coarse logits upsampled bilinearly: "DeepLab"); the same trunk whose
classifier got the BI heads' extra training budget without BI (the "equally trained baseline":
what training a head some more gives by itself); then the trunk with a Bilateral Inception head
(BI6(2) -> fc7 -> BI7(6), :mod:`downstream.bilateral_inception`) trained on the superpixels of
each provider, all at the same requested number of superpixels (paper: 600), with the trivial
``grid`` superpixels as a control row. The SIN paper's VOC 2012 *test* numbers stand in a
separate, labelled column: a different dataset, trunk and training budget, never mixed into ours.

Protocol (MSRC-21 by default; every stage cached and resumable, through the one BI pipeline
:class:`downstream.bilateral_inception.pipeline.BIPipeline` that the BI command line uses too)::

    seeds   every trained part is run once per --seeds value: the trunk's fine-tuning, the
            equally trained baseline and every BI head (seed s on the trunk of seed s)
    trunk   pretrained DeepLabV3-MobileNetV2 (VOC, TF model zoo port) with a new classifier;
            backbone frozen, ASPP head + classifier fine-tuned on train (flips), best epoch on val
    BI      per provider: superpixels of every image (native resolution, the toolkit's label
            cache); the head starts from the trunk's classifier and trains on cached trunk
            features (trunk frozen), best epoch on val; test evaluated once per seed
    report  per row the seed mean and std of test mIoU (per-class IoU: seed mean), and paired
            bootstrap 95 % intervals over test images of the mIoU difference against the
            baseline, the equally trained baseline and BI(SIN) (images resampled, mIoU recomputed
            from the summed per-image confusion matrices, seeds paired)

Usage::

    python -m benchmarks.semseg_table --dataset msrc21 [--data-root DIR] \\
        [--providers grid slic snic ers sin] [--n-segments 600] [--seeds 0 1 2] [--out results/semseg] \\
        [--cache-dir DIR] [--runs-dir runs/semseg] [--trunk-weights PT]

Providers take parameters (``slic:compactness=20``, ``sin:weights=PATH``) or are your own
``package.module:function``. Re-running with more providers or seeds reuses every cache (trunk,
features, superpixels, trained heads; keys cover weights, provider fingerprints, configuration,
images and code) and only computes what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import (
    add_provider_args,
    command_line,
    machine_info,
    markdown_table,
    positive_int,
    provider_info,
    repo_relative,
    resolve_providers,
    write_csv,
    write_figure,
    write_text,
)
from downstream.bilateral_inception import datasets as D
from downstream.bilateral_inception.bi_training import BITrainConfig
from downstream.bilateral_inception.end_to_end import EndToEndConfig
from downstream.bilateral_inception.metrics import paired_bootstrap_miou, voc_colormap
from downstream.bilateral_inception.pipeline import BIPipeline, per_image_stack
from downstream.bilateral_inception.trunk_training import TrunkTrainConfig
from sin.argtypes import non_negative_int, positive_float

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"

#: SIN paper, Table 1: IoU on PASCAL VOC 2012 test (DeepLab-COCO-LargeFOV; BI with 1000 gSLICr
#: superpixels for SLIC, 600 for ERS / SIN). Reference only.
PAPER_VOC_TEST = {"baseline": 68.9, "crf": 72.7, "slic": 73.5, "ers": 74.0, "sin": 74.4}

PROVIDER_LABEL = {"slic": "SLIC", "snic": "SNIC", "ers": "ERS", "sin": "SIN", "ssn": "SSN", "grid": "grid",
                  "fh": "FH", "seeds": "SEEDS", "lsc": "LSC"}

DEFAULT_SPLITS = D.DATASETS

#: names of the rows the intervals are computed against (when present; the row keys are resolved in
#: ``_rows``: "sin" is the table's first plain SIN provider, whatever its parameters)
REFERENCES = ("baseline", "trained", "sin")

#: key of the row whose SIN is trained end to end through the BI head (--end-to-end)
E2E_KEY = "sin_e2e"


def e2e_config(args) -> EndToEndConfig:
    return EndToEndConfig(sin_lr=args.e2e_sin_lr, sin_train=args.e2e_sin_train, aux_weight=args.e2e_aux_weight,
                          temperature=args.e2e_temperature)


def default_trunk_weights() -> Path:
    return Path(os.environ.get("SIN_DEEPLAB_WEIGHTS", SHARED / "weights" / "deeplabv3_mnv2_dm05_tflite_weights.pt"))


def open_split(dataset: str, split: str, data_root=None, sbd_root=None, limit: int | None = None):
    """See :func:`downstream.bilateral_inception.datasets.open_dataset`."""
    return D.open_dataset(dataset, split, data_root=data_root, sbd_root=sbd_root, limit=limit)


def _label(provider) -> str:
    base = PROVIDER_LABEL.get(provider.name, provider.name)
    spec = provider.spec_string()
    return base if spec == provider.name else f"{base} ({spec[len(provider.name) + 1:]})" \
        if spec.startswith(provider.name + ":") else spec


def _key(provider) -> str:
    return provider.name if provider.spec_string() == provider.name else provider.tag


class _Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, t0: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0


def run(args) -> dict:
    """The whole table; returns the summary dict (also written as JSON next to the table)."""
    t_start = time.perf_counter()
    timer = _Timer()
    tr_split, va_split, te_split = args.splits or DEFAULT_SPLITS[args.dataset]
    train_set = open_split(args.dataset, tr_split, args.data_root, args.sbd_root, args.limit)
    val_set = open_split(args.dataset, va_split, args.data_root, args.sbd_root, args.limit)
    test_set = open_split(args.dataset, te_split, args.data_root, args.sbd_root, args.limit)
    sets = [train_set, val_set, test_set]
    name = args.dataset if args.dataset != "folder" else train_set.name
    runs_root = Path(args.runs_dir) / name
    providers = [] if args.trunk_only else resolve_providers(args.providers, skip_unavailable=args.skip_unavailable)
    pipe = BIPipeline(args.cache_dir, short_side=args.short_side, progress=args.progress)

    # ---------------------------------------------------------------- trunk (pretrained) and its backbone cache
    weights = None if args.trunk == "tiny" else args.trunk_weights
    if args.trunk == "tiny":  # a random trunk: seeded, so that every run builds the same one
        import torch

        torch.manual_seed(0)
    base = pipe.pretrained_trunk(args.trunk, weights,
                                 num_classes=21 if args.trunk != "tiny" else train_set.num_classes)
    t0 = time.perf_counter()
    bb = pipe.backbone(base, [train_set], flips=True)
    bb.caches += pipe.backbone(base, [val_set, test_set]).caches
    timer.add("backbone cache (all splits, train with flips)", t0)

    per_seed = {}  # key -> list over seeds of {"val", "test", "per_image", "best_epoch", ...}
    preds: dict[str, dict] = {}
    trunk_records, counts, notes = [], {}, {}
    tcfg = bcfg = None
    for si, seed in enumerate(args.seeds):
        first = si == 0
        tcfg = TrunkTrainConfig(epochs=args.trunk_epochs, lr=args.trunk_lr, batch_size=args.trunk_batch_size,
                                short_side=pipe.short_side, mode="head", flips=True, seed=seed)
        t0 = time.perf_counter()
        if args.trunk_epochs > 0 or base.trunk.num_classes != train_set.num_classes:
            trunk, rec, _ = pipe.fine_tune_trunk(base.copy(), train_set, val_set, config=tcfg, runs_dir=runs_root,
                                                 meta={"seed": seed})
            trunk_records.append(rec)
        else:
            trunk = base
        timer.add("trunk fine-tuning (head + classifier)", t0)
        t0 = time.perf_counter()
        feats = pipe.features(trunk, sets, backbone=bb)
        timer.add("feature cache", t0)

        t0 = time.perf_counter()
        _evaluate_trunk(pipe, "baseline", trunk, feats, val_set, test_set, per_seed, preds if first else None,
                        seed=seed)
        timer.add("baseline evaluation", t0)
        if args.trunk_only:
            continue
        bcfg = BITrainConfig(epochs=args.bi_epochs, lr=args.bi_lr, batch_size=args.bi_batch_size,
                             init=args.bi_init, dropout=args.bi_dropout, finetune=args.bi_finetune,
                             trunk_lr=args.bi_trunk_lr, short_side=pipe.short_side, seed=seed)
        if args.trained_baseline:
            t0 = time.perf_counter()
            trained, rec, _ = pipe.train_classifier(trunk, train_set, val_set, config=bcfg, runs_dir=runs_root,
                                                    features=feats)
            # only the classifier changed: the trunk's cached features still hold
            _evaluate_trunk(pipe, "trained_baseline", trained, feats, val_set, test_set, per_seed,
                            preds if first else None, best_epoch=rec["best_epoch"], seed=seed)
            timer.add("equally trained baseline", t0)

        for prov in providers:
            key = _key(prov)
            t0 = time.perf_counter()
            if first:
                sps = pipe.superpixels(prov, sets, args.n_segments)
                counts[key] = float(np.mean([int(sps[i].max()) + 1 for i in test_set.ids]))
                timer.add(f"superpixels {key}", t0)
                t0 = time.perf_counter()
            head, state, rec, _ = pipe.train_bi(trunk, prov, args.n_segments, train_set, val_set, config=bcfg,
                                                runs_dir=runs_root, meta={"seed": seed})
            timer.add(f"BI training {key}", t0)
            bi_trunk = trunk.copy()
            if state.get("trunk_state") is not None:
                bi_trunk.trunk.load_state_dict(state["trunk_state"])
            t0 = time.perf_counter()
            per_image, pr = {}, ({} if first else None)
            cm = pipe.evaluate_bi(head, bi_trunk, prov, args.n_segments, test_set, finetune=bcfg.finetune,
                                  inputs_from=trunk, predictions=pr, per_image=per_image)
            timer.add(f"BI test evaluation {key}", t0)
            if pr is not None:
                preds[key] = pr
            per_seed.setdefault(key, []).append({
                "seed": seed, "val": rec["best_miou"], "test": cm.mean_iou(), "iou": cm.iou(),
                "per_image": per_image_stack(per_image, test_set.ids), "best_epoch": rec["best_epoch"],
                "theta6": [round(float(t), 3) for t in head.bi6.theta.detach()],
                "theta7": [round(float(t), 3) for t in head.bi7.theta.detach()]})
        if args.end_to_end and (args.e2e_seeds is None or seed in args.e2e_seeds):
            t0 = time.perf_counter()
            head, prov, rec, out_dir = pipe.train_end_to_end(trunk, args.n_segments, train_set, val_set, config=bcfg,
                                                             e2e=e2e_config(args), runs_dir=runs_root,
                                                             meta={"seed": seed})
            timer.add("BI + SIN end-to-end training", t0)
            t0 = time.perf_counter()
            per_image, pr = {}, ({} if first else None)
            cm = pipe.evaluate_bi(head, trunk, prov, args.n_segments, test_set, predictions=pr, per_image=per_image)
            timer.add("BI + SIN end-to-end test evaluation", t0)
            if pr is not None:
                preds[E2E_KEY] = pr
            if E2E_KEY not in counts:  # the first seed it runs with
                sps = pipe.superpixels(prov, [test_set], args.n_segments)
                counts[E2E_KEY] = float(np.mean([int(sps[i].max()) + 1 for i in test_set.ids]))
            weights = prov.weights_file
            notes.setdefault("end_to_end_weights", []).append(
                {"seed": seed, "file": repo_relative(weights), "sha256": prov.weights_sha256(),
                 "run": repo_relative(out_dir)})
            per_seed.setdefault(E2E_KEY, []).append({
                "seed": seed, "val": rec["best_miou"], "test": cm.mean_iou(), "iou": cm.iou(),
                "per_image": per_image_stack(per_image, test_set.ids), "best_epoch": rec["best_epoch"]})
    timer.seconds["total"] = time.perf_counter() - t_start

    rows = _rows(args, providers, per_seed, counts, base.trunk.name)
    if args.trunk_only:
        b = rows[0]
        print(f"trunk stage done: baseline test mIoU {b['test_miou_mean']:.2f} over seeds {args.seeds}; "
              f"timings {json.dumps(timer.seconds)}")
        return {"rows": rows, "timings": timer.seconds}
    per_class = {k: np.mean([r["iou"] for r in v], axis=0) for k, v in per_seed.items()}
    return write_outputs(args, name, rows, per_class, test_set, preds, timer.seconds, trunk_records, tcfg, bcfg,
                         notes)


def _evaluate_trunk(pipe, key, handle, feats, val_set, test_set, per_seed, preds, best_epoch=None,
                    seed=None) -> None:
    val = pipe.evaluate_baseline(handle, val_set, features=feats)
    per_image, pr = {}, ({} if preds is not None else None)
    test = pipe.evaluate_baseline(handle, test_set, features=feats, predictions=pr, per_image=per_image)
    if pr is not None:
        preds[key] = pr
    per_seed.setdefault(key, []).append({"seed": seed, "val": val.mean_iou(), "test": test.mean_iou(),
                                         "iou": test.iou(),
                                         "per_image": per_image_stack(per_image, test_set.ids),
                                         "best_epoch": best_epoch})


def _std(values) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _rows(args, providers, per_seed, counts, trunk_name) -> list[dict]:
    """One row per method: seed mean / std of test mIoU (in %), and paired bootstrap intervals."""
    budget = f"{args.bi_epochs} more epoch{'s' if args.bi_epochs != 1 else ''}"
    spec = [("baseline", f"DeepLab ({trunk_name}, bilinear upsampling)", "", ""),
            ("trained_baseline", f"DeepLab, classifier trained {budget} (no BI: equally trained baseline)", "",
             "control: the BI heads' extra training without BI"),
            ("crf", "+ CRF", "", "not run (the paper's reference row)")]
    for p in providers:
        label = _label(p)
        note = provider_info(p)["note"] if p.weights_file is not None else ""
        if p.name == "grid":
            note = "control: superpixels that ignore the image" + (f"; {note}" if note else "")
        spec.append((_key(p), f"+ BI({label})", f"{label}, k={args.n_segments}", note))
    if E2E_KEY in per_seed:
        e = e2e_config(args)
        spec.append((E2E_KEY, "+ BI(SIN, trained end to end)", f"SIN fine-tuned through BI, k={args.n_segments}",
                     f"SIN {e.sin_train} trained with the head (Adam lr {e.sin_lr:g}, aux SIN loss x{e.aux_weight:g}, "
                     f"temperature {e.temperature:g}); hard SIN labels at evaluation; selected on val"
                     + ("" if len(per_seed[E2E_KEY]) == len(args.seeds) else
                        f"; seeds {' '.join(str(r['seed']) for r in per_seed[E2E_KEY])} only: intervals pair "
                        "those seeds")))
    # the rows the intervals are computed against; "sin" is the first plain SIN provider of the table
    sin_keys = [_key(p) for p in providers if p.name == "sin"]
    ref_keys = {"baseline": "baseline", "trained": "trained_baseline", "sin": sin_keys[0] if sin_keys else "sin"}
    rows = []
    for key, method, sp, note in spec:
        runs = per_seed.get(key)
        row = {"key": key, "method": method, "superpixels": sp, "mean_count": counts.get(key, np.nan),
               "seeds": " ".join(str(r["seed"]) for r in runs) if runs else "", "n_seeds": len(runs) if runs else 0}
        if runs:
            test = [100 * r["test"] for r in runs]
            row.update(test_miou_mean=float(np.mean(test)), test_miou_std=_std(test),
                       val_miou_mean=float(np.mean([100 * r["val"] for r in runs])),
                       test_miou_per_seed=json.dumps([round(v, 2) for v in test]),
                       best_epochs=json.dumps([r["best_epoch"] for r in runs]))
            for ref_name in REFERENCES:
                ref_key = ref_keys[ref_name]
                ref = {r["seed"]: r for r in per_seed.get(ref_key, [])}
                pairs = [(r, ref[r["seed"]]) for r in runs if r["seed"] in ref]  # seeds paired
                if not pairs or ref_key == key:
                    continue
                bs = paired_bootstrap_miou(np.stack([a["per_image"] for a, _ in pairs]),
                                           np.stack([b["per_image"] for _, b in pairs]),
                                           n_boot=args.n_boot, seed=args.bootstrap_seed)
                row[f"diff_vs_{ref_name}"] = 100 * bs["diff"]
                row[f"ci_low_vs_{ref_name}"] = 100 * bs["low"]
                row[f"ci_high_vs_{ref_name}"] = 100 * bs["high"]
        elif key == "trained_baseline" and not args.trained_baseline:
            continue
        row["note"] = note
        rows.append(row)
    return rows


def _fmt(v, fmt="{:.1f}"):
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)


def _interval(row, ref) -> str:
    d = row.get(f"diff_vs_{ref}")
    if d is None or np.isnan(d):
        return ""
    return f"{d:+.2f} [{row[f'ci_low_vs_{ref}']:+.2f}, {row[f'ci_high_vs_{ref}']:+.2f}]"


COLUMNS = ["key", "method", "superpixels", "mean_count", "seeds", "n_seeds", "test_miou_mean", "test_miou_std",
           "val_miou_mean", "test_miou_per_seed", "best_epochs"] + \
          [f"{c}_vs_{r}" for r in REFERENCES for c in ("diff", "ci_low", "ci_high")] + ["note", "paper_voc2012_test"]


def write_outputs(args, name, rows, per_class, test_set, preds, timings, trunk_records, tcfg, bcfg, notes) -> dict:
    out = Path(args.out)
    df = pd.DataFrame(rows)
    # a provider row's key is its name or its tag (name-fingerprint): the paper's value goes by the name
    df["paper_voc2012_test"] = [PAPER_VOC_TEST.get(k.split("-")[0], np.nan) for k in df["key"]]
    df = df.reindex(columns=COLUMNS)
    write_csv(df, out / f"table1_{name}.csv", float_format="%.2f")
    classes = list(test_set.classes)
    pc = pd.DataFrame({"class": classes, **{k: 100 * np.asarray(v) for k, v in per_class.items()}})
    write_csv(pc, out / f"table1_{name}_per_class.csv", float_format="%.2f")

    n = len(args.seeds)
    show = pd.DataFrame({
        "method": df["method"],
        "superpixels (mean count on test)": [s if not isinstance(s, str) or not s or np.isnan(c) else f"{s} ({c:.0f})"
                                             for s, c in zip(df["superpixels"].fillna(""), df["mean_count"])],
        f"test mIoU, mean ± std over {n} seed{'s' if n > 1 else ''} ({name} {te_name(args)})":
            [("" if np.isnan(m) else f"{m:.2f} ± {s:.2f}" if not np.isnan(s) else f"{m:.2f}")
             for m, s in zip(df["test_miou_mean"], df["test_miou_std"])],
        "vs baseline [95% CI]": [_interval(r, "baseline") for r in df.to_dict("records")],
        "vs equally trained baseline [95% CI]": [_interval(r, "trained") for r in df.to_dict("records")],
        "vs BI(SIN) [95% CI]": [_interval(r, "sin") for r in df.to_dict("records")],
        "val mIoU (selection)": [_fmt(v, "{:.2f}") for v in df["val_miou_mean"]],
        "paper, VOC 2012 test": [_fmt(v) for v in df["paper_voc2012_test"]],
        "note": df["note"].fillna(""),
    })
    mach = machine_info()
    tr = trunk_records[0] if trunk_records else {}
    lines = [
        f"# Table 1 layout: DeepLab vs. DeepLab + Bilateral Inception with different superpixels ({name})",
        "",
        f"Generated by `{command_line()}` on {mach['date']}.",
        "",
        markdown_table(show),
        "",
        (f"mIoU in %. Mean ± sample std over seeds {', '.join(map(str, args.seeds))}; every trained part (trunk "
         "fine-tuning, equally trained baseline, BI heads) is trained once per seed and its test split evaluated "
         f"once per seed. Intervals: paired bootstrap over the {len(test_set)} test images ({args.n_boot} "
         "resamples; mIoU recomputed from the summed per-image confusion matrices of the resampled images; seeds "
         "paired, statistic = seed mean of the mIoU difference), 95 % percentile intervals. A difference whose "
         "interval contains 0 is not resolved by this test set."),
        "",
        ("The paper column is the SIN paper's Table 1 (DeepLab-COCO-LargeFOV on PASCAL VOC 2012 **test**, "
         "evaluation server), for reference only: a different dataset, trunk and training budget. "
         "Every other number is measured here."),
        "",
        "## Protocol",
        "",
        (f"* Data: {name}, splits {'/'.join(args.splits or DEFAULT_SPLITS[args.dataset])} (train / val / test); "
         f"mIoU over the {len(classes)} classes, confusion matrix summed over the split, void (255) excluded. "
         "Val alone selects the epochs; test is reported."),
        (f"* Trunk: `{args.trunk}` (weights `{trunk_weights_name(args)}`), new {len(classes)}-class classifier; "
         f"backbone frozen, ASPP head + classifier fine-tuned {tcfg.epochs} epochs (AdamW lr {tcfg.lr}, cosine, "
         f"batch {tcfg.batch_size}, horizontal flips), best epoch on val, once per seed"
         + (f" (seed {args.seeds[0]}: epoch {tr.get('best_epoch')})" if tr else "")
         + f". Input: shorter side {args.short_side} (align-corners resize, sides 8k+1); stride-8 features."),
        "* Baseline: the trunk's coarse logits upsampled bilinearly (align corners) to the native resolution.",
        (f"* Equally trained baseline: the fine-tuned trunk's classifier alone trained {bcfg.epochs} more epochs on "
         f"the same frozen features with the BI heads' optimiser and budget (Adam lr {bcfg.lr}, cosine, batch "
         f"{bcfg.batch_size}, same seed), best epoch on val: the gain of BI over it is what BI adds beyond "
         "training a head some more."),
        (f"* BI: BI6(2) [rgbxy, xy] grid -> superpixels, ReLU, dropout {bcfg.dropout}, fc7 (1x1), BI7(6) "
         f"3 x [rgbxy, xy], ReLU, dropout {bcfg.dropout}, classifier, smeared to pixels; superpixel features "
         "[0.1 y, 0.1 x, 0.1 RGB, "
         f"0.01 y, 0.01 x] (pixels, 0..255). Init `{bcfg.init}` (start from the trunk's classifier: w = 1/H, "
         f"fc7 = [W; -W], classifier = [I, -I]); trunk frozen (cached features); Adam lr {bcfg.lr} "
         f"(x10 for theta7 / w7 as in the released model), cosine, batch {bcfg.batch_size}, {bcfg.epochs} epochs, "
         f"best epoch on val. Superpixels on the native image, requested count {args.n_segments} for every "
         "provider; `grid` (a regular grid) is the control that uses no image content."),
    ]
    if any(r["key"] == E2E_KEY for r in rows):
        e = e2e_config(args)
        lines.append(
            f"* BI(SIN, trained end to end): the same head, initialisation, optimiser, epochs and seeds, trained "
            f"together with SIN (`downstream.bilateral_inception.end_to_end`): during training the superpixels are "
            f"SIN's soft assignment (temperature {e.temperature:g}) of the same seed grid, the pixel cross-entropy "
            f"of the smeared scores back-propagates into SIN's {e.sin_train} (Adam lr {e.sin_lr:g}, cosine; "
            + ("encoder frozen, BatchNorm statistics kept" if e.sin_train == "decoder" else "BatchNorm statistics kept")
            + f"), plus {e.aux_weight:g} x SIN's own loss on the task labels per network pixel. SIN starts from the "
            "shipped weights; val mIoU with *hard* SIN labels selects the epoch (head and SIN together); test "
            "uses the `sin` provider with the selected weights (fp32), i.e. hard 4-connected superpixels. "
            f"Weights per seed: `table1_{name}.json` (`notes.end_to_end_weights`, with sha256).")
    lines += [
        "",
        "## Timings (seconds, this run, summed over seeds; cached stages are ~0)",
        "",
        markdown_table(pd.DataFrame({"stage": list(timings), "seconds": [round(v, 1) for v in timings.values()]})),
        "",
        (f"Machine: {mach['cpu_count']} CPUs, load average {mach['load_avg_1_5_15']} at the end, torch "
         f"{mach['torch']} ({mach['torch_threads']} threads); shared with other jobs, so timings are indicative."),
        "",
        f"Per-class IoU (seed mean): `table1_{name}_per_class.csv`; examples (seed {args.seeds[0]}): "
        f"`table1_{name}_examples.png`.",
    ]
    write_text(out / f"table1_{name}.md", "\n".join(lines) + "\n")
    summary = {"rows": json.loads(df.to_json(orient="records")), "timings": timings, "machine": mach,
               "config": {"trunk": asdict(tcfg), "bi": asdict(bcfg), "seeds": list(args.seeds),
                          "n_boot": args.n_boot, "n_segments": args.n_segments,
                          "end_to_end": asdict(e2e_config(args)) if args.end_to_end else None},
               "notes": notes}
    write_text(out / f"table1_{name}.json", json.dumps(summary, indent=2) + "\n")
    if args.figure_images > 0 and preds:
        titles = {r["key"]: r["method"].removeprefix("+ ") for r in rows}
        write_examples(out / f"table1_{name}_examples.png", test_set, preds, args.figure_images, titles)
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


def write_examples(path, test_set, preds: dict, n: int, titles: dict | None = None) -> None:
    """Image, ground truth, baseline and BI per provider for ``n`` evenly spaced test images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = [i for i in test_set.ids if all(i in p for p in preds.values())]
    if not ids:
        return
    pick = [ids[int(j)] for j in np.linspace(0, len(ids) - 1, min(n, len(ids)))]
    titles = titles or {}
    cols = ["image", "ground truth"] + [_column_title(k, titles.get(k)) for k in preds]
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




def _column_title(key: str, method: str | None = None) -> str:
    if key == "baseline":
        return "DeepLab"
    if key == "trained_baseline":
        return "DeepLab, trained more"
    if key == E2E_KEY:
        return "BI(SIN, end to end)"
    return method or f"BI({PROVIDER_LABEL.get(key, key)})"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.semseg_table", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=list(D.DATASETS), default="msrc21")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="dataset folder (msrc21: default $SIN_DATA_ROOT/MSRC21; camvid: $SIN_CAMVID or "
                         "$SIN_DATA_ROOT/CamVid; voc: VOC2012; folder: required)")
    ap.add_argument("--sbd-root", type=Path, default=None, help="SBD benchmark_RELEASE (voc train_aug)")
    ap.add_argument("--splits", nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=None)
    add_provider_args(ap, default=("grid", "slic", "snic", "ers", "sin"))
    ap.add_argument("--n-segments", type=positive_int, default=600)
    ap.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2],
                    help="one run of every trained part per seed (mean ± std and seed-paired intervals)")
    ap.add_argument("--no-trained-baseline", dest="trained_baseline", action="store_false",
                    help="skip the equally trained baseline row")
    ap.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap resamples of the test images")
    ap.add_argument("--bootstrap-seed", type=non_negative_int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "results" / "semseg")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="feature caches (default $SIN_CACHE_DIR/bi, shared with the BI command line)")
    ap.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "semseg")
    ap.add_argument("--trunk", default="deeplabv3_mobilenetv2")
    ap.add_argument("--trunk-weights", type=Path, default=default_trunk_weights(),
                    help="pretrained trunk weights (default $SIN_DEEPLAB_WEIGHTS or ../shared/weights/...)")
    ap.add_argument("--short-side", type=non_negative_int, default=257)
    ap.add_argument("--trunk-epochs", type=non_negative_int, default=8)
    ap.add_argument("--trunk-lr", type=positive_float, default=5e-4)
    ap.add_argument("--trunk-batch-size", type=positive_int, default=8)
    ap.add_argument("--bi-epochs", "--epochs", dest="bi_epochs", type=non_negative_int, default=8)
    ap.add_argument("--bi-lr", type=positive_float, default=1e-3)
    ap.add_argument("--bi-batch-size", type=positive_int, default=4)
    ap.add_argument("--bi-init", choices=["trunk", "spec"], default="trunk")
    ap.add_argument("--bi-finetune", choices=["none", "head"], default="none",
                    help="trunk during BI training: frozen (cached features) or its head trained too "
                         "(cached backbone outputs)")
    ap.add_argument("--bi-trunk-lr", type=positive_float, default=1e-4,
                    help="lr of the trunk head with --bi-finetune head")
    ap.add_argument("--bi-dropout", type=float, default=None,
                    help="dropout after BI6 / BI7 (default: 0 with --bi-init trunk, 0.5 with spec)")
    ap.add_argument("--end-to-end", action="store_true",
                    help="add the row 'BI(SIN, trained end to end)': SIN trained with the BI head "
                         "(downstream.bilateral_inception.end_to_end), same trunk, count, epochs and seeds")
    ap.add_argument("--e2e-seeds", type=non_negative_int, nargs="+", default=None,
                    help="seeds of the end-to-end row (default: all --seeds); its intervals pair these seeds")
    ap.add_argument("--e2e-sin-lr", type=positive_float, default=1e-4, help="Adam lr of SIN (end to end)")
    ap.add_argument("--e2e-sin-train", choices=["decoder", "all"], default="decoder",
                    help="SIN parameters trained end to end (decoder: encoder frozen and cached)")
    ap.add_argument("--e2e-aux-weight", type=float, default=0.1,
                    help="weight of SIN's own loss on the task labels (0: none; 0.1 selected on MSRC-21 val)")
    ap.add_argument("--e2e-temperature", type=positive_float, default=1.0,
                    help="softmax temperature of SIN's soft assignment during training")
    ap.add_argument("--figure-images", type=non_negative_int, default=4)
    ap.add_argument("--limit", type=positive_int, default=None, help="first N images of every split (smoke runs)")
    ap.add_argument("--trunk-only", action="store_true",
                    help="stop after the trunk stage (fine-tuning, feature cache, baseline); no table")
    ap.add_argument("--threads", type=positive_int, default=None,
                    help="torch threads (default: torch's choice; on a busy shared machine 1 is much faster)")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.seeds = list(dict.fromkeys(args.seeds))
    try:
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        if args.trunk != "tiny" and not Path(args.trunk_weights).is_file():
            raise FileNotFoundError(f"trunk weights not found: {args.trunk_weights} (pass --trunk-weights)")
        summary = run(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:  # missing / corrupted files, bad data, unwritable --out, ...
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    for r in summary["rows"]:
        m = r.get("test_miou_mean")
        if m is not None and not np.isnan(m):
            std = r.get("test_miou_std")
            spread = "" if std is None or np.isnan(std) else f" ± {std:.2f}"
            print(f"{r['method']:<70} test mIoU {m:.2f}{spread}  {r.get('note') or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
