"""Table 1 of the SIN paper, layout and protocol, on datasets we have: DeepLab, +CRF and + BI(superpixels).

Rows: the trunk alone (coarse logits upsampled bilinearly: "DeepLab"); the same trunk whose
classifier got the BI heads' extra training budget without BI (the "equally trained baseline":
what training a head some more gives by itself); the trunk refined by a fully connected CRF
("+CRF", the paper's reference row; kernels selected on val); per provider, the trunk's class
probabilities averaged inside each superpixel (no training: what the superpixels alone add) and
a Bilateral Inception head (BI6(2) -> fc7 -> BI7(6), :mod:`downstream.bilateral_inception`)
trained on its superpixels, all at the same requested number of superpixels (paper: 600), with
the trivial ``grid`` superpixels as a control. The SIN paper's VOC 2012 *test* numbers stand in a
separate, labelled column: a different dataset, trunk and training budget, never mixed into ours.

Protocol (every stage cached and resumable, through the one BI pipeline
:class:`downstream.bilateral_inception.pipeline.BIPipeline` that the BI command line uses too)::

    seeds   every trained part is run once per --seeds value: the trunk's fine-tuning, the
            equally trained baseline and every BI head (seed s on the trunk of seed s)
    trunk   pretrained DeepLabV3-MobileNetV2 (VOC, TF model zoo port) with a new classifier;
            backbone frozen, ASPP head + classifier fine-tuned on train (flips), best epoch on val
    CRF     dense CRF over the trunk's softmax; kernel weights / widths chosen on val over a
            small grid (downstream.bilateral_inception.crf.CRF_GRID) with the first seed's trunk
    BI      per provider: superpixels of every image (native resolution, the toolkit's label
            cache); the head starts from the trunk's classifier and trains on cached trunk
            features (trunk frozen), best epoch on val; test evaluated once per seed
    report  per row the seed mean and std of test mIoU, the same in boundary bands (pixels within
            d px of a ground-truth boundary), and paired bootstrap 95 % intervals over test
            images against the equally trained baseline, +CRF and BI(SIN) (images resampled,
            mIoU recomputed from the summed per-image confusion matrices, seeds paired)

Usage::

    python -m benchmarks.semseg_table --dataset camvid [--data-root DIR] [--providers grid slic snic ers sin]
        [--n-segments 600] [--seeds 0 1 2] [--out results/semseg]
    python -m benchmarks.semseg_table --from-results results/semseg --dataset camvid   # re-derive the report

Providers take parameters (``slic:compactness=20``) or are your own ``package.module:function``.
Re-running with more providers or seeds reuses every cache and only computes what is missing.
"""

from __future__ import annotations

import argparse
import json
from contextlib import ExitStack
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks import semseg_report as R
from benchmarks._common import (
    add_provider_args,
    command_line,
    machine_info,
    positive_int,
    provider_info,
    repo_relative,
    resolve_providers,
    write_text,
)
from downstream.bilateral_inception import datasets as D
from downstream.bilateral_inception.bi_training import BITrainConfig
from downstream.bilateral_inception.crf import CRF_GRID, crf_available, crf_grid
from downstream.bilateral_inception.end_to_end import EndToEndConfig, add_e2e_args, e2e_config_from_args
from downstream.bilateral_inception.metrics import BAND_WIDTHS, mean_iou
from downstream.bilateral_inception.pipeline import BIPipeline
from downstream.bilateral_inception.trunk_training import TrunkTrainConfig
from sin import paths
from sin.argtypes import Parser, add_cache_args, cli_main, non_negative_int, positive_float
from sin.fingerprint import state_digest
from sin.parallel import add_executor_args, executor_from_args

REPO = Path(__file__).resolve().parents[1]

PROVIDER_LABEL = {"slic": "SLIC", "snic": "SNIC", "ers": "ERS", "sin": "SIN", "ssn": "SSN", "grid": "grid",
                  "fh": "FH", "seeds": "SEEDS", "lsc": "LSC"}

#: key of the row whose SIN is trained end to end through the BI head (--end-to-end)
E2E_KEY = "sin_e2e"


def e2e_config(args) -> EndToEndConfig:
    return e2e_config_from_args(args, prefix="e2e-")


def _label(provider) -> str:
    base = PROVIDER_LABEL.get(provider.name, provider.name)
    spec = provider.spec_string()
    if spec == provider.name:
        return base
    return f"{base} ({spec[len(provider.name) + 1:]})" if spec.startswith(provider.name + ":") else spec


def _key(provider) -> str:
    return provider.name if provider.spec_string() == provider.name else provider.tag


def _bi_row(args, provider) -> bool:
    """Whether ``provider`` gets a BI head (``--no-bi`` / ``--bi-providers``)."""
    only = getattr(args, "bi_providers", None)
    return args.bi and (not only or provider.name in only or _key(provider) in only)


def row_specs(args, providers, trunk_name: str, *, crf_note: str, e2e: bool) -> list[R.RowSpec]:
    """The table's rows, in order."""
    budget = f"{args.bi_epochs} more epoch{'s' if args.bi_epochs != 1 else ''}"
    specs = [R.RowSpec("baseline", "trunk", f"DeepLab ({trunk_name}, bilinear upsampling)")]
    if args.trained_baseline:
        specs.append(R.RowSpec("trained_baseline", "trunk", f"DeepLab, classifier trained {budget} (no BI: "
                               "equally trained baseline)", note="control: the BI heads' extra training without BI"))
    specs.append(R.RowSpec("crf", "crf", "+ CRF (dense CRF on the trunk's softmax)", note=crf_note))
    k = args.n_segments
    if args.sp_average:
        for p in providers:
            specs.append(R.RowSpec(f"spavg:{_key(p)}", "spavg", f"+ superpixel average ({_label(p)}), no training",
                                   p.name, f"{_label(p)}, k={k}", "the trunk's probabilities averaged per superpixel"))
    for p in (p for p in providers if _bi_row(args, p)):
        note = provider_info(p)["note"] if p.weights_file is not None else ""
        if p.name == "grid":
            note = "control: superpixels that ignore the image" + (f"; {note}" if note else "")
        specs.append(R.RowSpec(f"bi:{_key(p)}", "bi", f"+ BI({_label(p)})", p.name, f"{_label(p)}, k={k}", note))
    if e2e:
        e = e2e_config(args)
        specs.append(R.RowSpec(E2E_KEY, "e2e", "+ BI(SIN, trained end to end)", "sin",
                               f"SIN fine-tuned through BI, k={k}",
                               f"SIN {e.sin_train} trained with the head (Adam lr {e.sin_lr:g}, aux SIN loss "
                               f"x{e.aux_weight:g}, temperature {e.temperature:g}); hard SIN labels at evaluation"))
    return specs


class _Rows:
    """Per-seed scores, per-image confusion stacks and figure predictions of every row, from cached
    evaluations (:meth:`BIPipeline.cached_evaluation`); ``seed`` / ``first`` name the current seed."""

    def __init__(self, pipe, eval_dir, widths, test_set, fig_ids):
        self.pipe, self.eval_dir, self.widths, self.test_set, self.fig_ids = pipe, eval_dir, widths, test_set, fig_ids
        self.scores, self.cms, self.preds = {}, {}, {}
        self.seed, self.first = None, False

    def evaluate(self, kind, parts, compute, dataset) -> dict:
        """``compute(per_image, predictions)`` (band-wise per-image matrices), cached."""
        keep = self.fig_ids if self.first and dataset is self.test_set else ()
        return self.pipe.cached_evaluation(self.eval_dir, kind, [*parts, self.widths], dataset, compute,
                                           keep_predictions=keep)

    def record(self, key, val, test, best_epoch=None, *, val_eval=None, **extra) -> None:
        """``val``: the selection score; ``val_eval``: the banded evaluation on val (band mIoUs kept)."""
        bands = None if val_eval is None else [float(v) for v in mean_iou(val_eval["per_image"].sum(0))]
        self.scores.setdefault(key, []).append({"seed": self.seed, "val": val, "test": test["miou"],
                                                "best_epoch": best_epoch, "val_bands": bands, **extra})
        self.cms.setdefault(key, {})[self.seed] = test["per_image"]
        if self.first and test["predictions"]:
            self.preds[key] = test["predictions"]

    def trunk_row(self, key, handle, feats, val_set, best_epoch=None) -> None:
        """The trunk alone (bilinear upsampling) on val and test."""
        val, test = (self.evaluate("baseline", [handle.fingerprint], lambda pi, pr, ds=ds: self.pipe.evaluate_baseline(
            handle, ds, features=feats, per_image=pi, predictions=pr, band_widths=self.widths), ds)
                     for ds in (val_set, self.test_set))
        self.record(key, val["miou"], test, best_epoch, val_eval=val)


class _Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, t0: float) -> None:  # seconds since t0, summed per stage
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0


def run(args) -> dict:
    """The whole table; returns the summary dict (also written as JSON next to the table)."""
    with ExitStack() as stack:
        return _run(args, stack)


def _run(args, stack: ExitStack) -> dict:
    t_start, timer = time.perf_counter(), _Timer()
    splits = args.splits or D.DATASETS[args.dataset]
    sets = [D.open_dataset(args.dataset, s, data_root=args.data_root, sbd_root=args.sbd_root, limit=args.limit)
            for s in splits]
    train_set, val_set, test_set = sets
    name = args.dataset if args.dataset != "folder" else train_set.name
    runs_root = Path(args.runs_dir) / name
    providers = [] if args.trunk_only else resolve_providers(args.providers, skip_unavailable=args.skip_unavailable)
    executor = stack.enter_context(executor_from_args(args))  # superpixels: local workers or a Dask cluster
    pipe = BIPipeline.from_cache_root(args.cache, short_side=args.short_side, progress=args.progress,
                                      executor=executor)
    widths = tuple(args.band_widths)
    fig_ids = [test_set.ids[int(j)] for j in np.linspace(0, len(test_set) - 1, min(args.figure_images, len(test_set)))
               ] if args.figure_images else []

    if args.trunk == "tiny":  # a random trunk: seeded, so that every run builds the same one
        import torch

        torch.manual_seed(0)
    base = pipe.pretrained_trunk(args.trunk, None if args.trunk == "tiny" else args.trunk_weights,
                                 num_classes=21 if args.trunk != "tiny" else train_set.num_classes)
    t0 = time.perf_counter()
    bb = pipe.backbone(base, [train_set], flips=True)
    bb.caches += pipe.backbone(base, [val_set, test_set]).caches
    timer.add("backbone cache (all splits, train with flips)", t0)

    crf_ok = args.crf and crf_available()
    crf_note = ("not run (--no-crf)" if not args.crf else
                "not available: pip install cython numpy && pip install --no-build-isolation pydensecrf2"
                if not crf_ok else "")
    rows = _Rows(pipe, runs_root / "eval", widths, test_set, fig_ids)
    counts, notes, trunk_records = {}, {}, []
    crf_params = None
    tcfg = bcfg = None
    for si, seed in enumerate(args.seeds):
        rows.seed, rows.first = seed, si == 0
        first = rows.first
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
        rows.trunk_row("baseline", trunk, feats, val_set, trunk_records[-1]["best_epoch"] if trunk_records else None)
        timer.add("baseline evaluation", t0)
        if args.trunk_only:
            continue
        bcfg = BITrainConfig(epochs=args.bi_epochs, lr=args.bi_lr, batch_size=args.bi_batch_size,
                             init=args.bi_init, dropout=args.bi_dropout, finetune=args.bi_finetune,
                             bi7_scales=tuple(args.bi7_scales),
                             trunk_lr=args.bi_trunk_lr, short_side=pipe.short_side, seed=seed)
        if args.trained_baseline:
            t0 = time.perf_counter()
            trained, rec, _ = pipe.train_classifier(trunk, train_set, val_set, config=bcfg, runs_dir=runs_root,
                                                    features=feats)
            tfeats = feats if bcfg.finetune == "none" else pipe.features(trained, sets, backbone=bb)  # head trained?
            rows.trunk_row("trained_baseline", trained, tfeats, val_set, rec["best_epoch"])
            timer.add("equally trained baseline", t0)

        if crf_ok:
            t0 = time.perf_counter()
            if crf_params is None or args.crf_select == "per-seed":
                crf_params, crf_scores = pipe.select_crf(trunk, val_set, crf_grid(iterations=args.crf_iterations),
                                                         runs_dir=runs_root, features=feats)
                notes.setdefault("crf_selection", []).append({"seed": seed, "selected": crf_params.as_dict(),
                                                              "grid_val_miou": crf_scores})
            timer.add("CRF selection on val", t0)
            t0 = time.perf_counter()
            parts = ["crf", trunk.fingerprint, crf_params.as_dict()]
            val, test = (rows.evaluate("crf", parts, lambda pi, pr, ds=ds, t=trunk, c=crf_params, f=feats:
                                       pipe.evaluate_crf(t, ds, c, features=f, per_image=pi, predictions=pr,
                                                         band_widths=widths), ds)
                         for ds in (val_set, test_set))
            rows.record("crf", val["miou"], test, val_eval=val, params=crf_params.as_dict())
            timer.add("CRF evaluation", t0)

        for prov in providers:
            key = _key(prov)
            t0 = time.perf_counter()
            if first:
                sps = pipe.superpixels(prov, sets, args.n_segments)
                counts[key] = float(np.mean([int(sps[i].max()) + 1 for i in test_set.ids]))
                timer.add(f"superpixels {key}", t0)
            if args.sp_average:
                t0 = time.perf_counter()
                parts = ["spavg", trunk.fingerprint, prov.fingerprint, args.n_segments]
                val, test = (rows.evaluate("spavg", parts, lambda pi, pr, ds=ds, t=trunk, p=prov, f=feats:
                                           pipe.evaluate_superpixel_average(t, p, args.n_segments, ds, features=f,
                                                                            per_image=pi, predictions=pr,
                                                                            band_widths=widths), ds)
                             for ds in (val_set, test_set))
                rows.record(f"spavg:{key}", val["miou"], test, val_eval=val)
                timer.add(f"superpixel average {key}", t0)
            if not _bi_row(args, prov):
                continue
            t0 = time.perf_counter()
            head, state, rec, _ = pipe.train_bi(trunk, prov, args.n_segments, train_set, val_set, config=bcfg,
                                                runs_dir=runs_root, meta={"seed": seed})
            timer.add(f"BI training {key}", t0)
            bi_trunk = trunk.copy()
            if state.get("trunk_state") is not None:
                bi_trunk.trunk.load_state_dict(state["trunk_state"])
            t0 = time.perf_counter()
            parts = ["bi", state_digest(head), bi_trunk.fingerprint, prov.fingerprint, args.n_segments, bcfg.finetune]
            val, test = (rows.evaluate("bi", parts, lambda pi, pr, ds=ds, p=prov, h=head, t=bi_trunk, tr=trunk, c=bcfg:
                                       pipe.evaluate_bi(h, t, p, args.n_segments, ds, finetune=c.finetune,
                                                        inputs_from=tr, predictions=pr, per_image=pi,
                                                        band_widths=widths), ds)
                         for ds in (val_set, test_set))
            rows.record(f"bi:{key}", rec["best_miou"], test, rec["best_epoch"], val_eval=val,
                   theta6=[round(float(t), 3) for t in head.bi6.theta.detach()],
                   theta7=[round(float(t), 3) for t in head.bi7.theta.detach()])
            timer.add(f"BI test evaluation {key}", t0)
        if args.end_to_end and (args.e2e_seeds is None or seed in args.e2e_seeds):
            t0 = time.perf_counter()
            head, prov, rec, out_dir = pipe.train_end_to_end(trunk, args.n_segments, train_set, val_set, config=bcfg,
                                                             e2e=e2e_config(args), runs_dir=runs_root,
                                                             meta={"seed": seed})
            timer.add("BI + SIN end-to-end training", t0)
            t0 = time.perf_counter()
            parts = ["e2e", state_digest(head), trunk.fingerprint, prov.fingerprint, args.n_segments]
            val, test = (rows.evaluate("bi", parts, lambda pi, pr, ds=ds, h=head, t=trunk, p=prov: pipe.evaluate_bi(
                h, t, p, args.n_segments, ds, predictions=pr, per_image=pi, band_widths=widths), ds)
                         for ds in (val_set, test_set))
            rows.record(E2E_KEY, rec["best_miou"], test, rec["best_epoch"], val_eval=val)
            timer.add("BI + SIN end-to-end test evaluation", t0)
            if E2E_KEY not in counts:  # the first seed it runs with
                sps = pipe.superpixels(prov, [test_set], args.n_segments)
                counts[E2E_KEY] = float(np.mean([int(sps[i].max()) + 1 for i in test_set.ids]))
            notes.setdefault("end_to_end_weights", []).append(
                {"seed": seed, "file": repo_relative(prov.weights_file), "sha256": prov.weights_sha256(),
                 "run": repo_relative(out_dir)})
    timer.seconds["total"] = time.perf_counter() - t_start

    scores, cms, preds = rows.scores, rows.cms, rows.preds
    specs = row_specs(args, providers, base.trunk.name, crf_note=crf_note, e2e=E2E_KEY in scores)
    if args.trunk_only:
        b = scores["baseline"]
        print(f"trunk stage done: baseline test mIoU {100 * np.mean([r['test'] for r in b]):.2f} over seeds "
              f"{args.seeds}; timings {json.dumps(timer.seconds)}")
        return {"rows": [], "timings": timer.seconds}
    config = {"dataset": name, "splits": list(splits), "n_images": [len(s) for s in sets],
              "classes": list(test_set.classes), "seeds": list(args.seeds), "band_widths": list(widths),
              "n_boot": args.n_boot, "bootstrap_seed": args.bootstrap_seed, "n_segments": args.n_segments,
              "short_side": pipe.short_side, "trunk": args.trunk, "trunk_weights": "random" if args.trunk == "tiny" else Path(str(args.trunk_weights)).name,
              "trunk_train": asdict(tcfg), "bi": asdict(bcfg), "crf_iterations": args.crf_iterations,
              "crf_grid": {k: list(v) for k, v in CRF_GRID.items()},
              "crf_select": args.crf_select, "mean_count": counts, "trunk_best_epochs":
              [r.get("best_epoch") for r in trunk_records],
              "end_to_end": asdict(e2e_config(args)) if args.end_to_end else None}
    summary = {"command": command_line(), "specs": [asdict(s) for s in specs], "scores": scores, "config": config,
               "notes": notes, "timings": timer.seconds, "machine": machine_info()}
    out = Path(args.out)
    R.save_confusions(out / f"table1_{name}_confusion.npz", cms, test_set.ids, widths, test_set.classes)
    write_text(out / f"table1_{name}.json", json.dumps(summary, indent=1, default=float) + "\n")
    summary["rows"] = R.write_report(out, summary, cms)
    if preds:
        titles = {s.key: s.method.removeprefix("+ ") for s in specs}
        R.write_examples(out / f"table1_{name}_examples.png", test_set, preds, titles)
    return summary


def from_results(args) -> dict:
    """Re-derive the report of ``--from-results DIR`` (no data or training needed)."""
    return R.from_results(args.from_results, args.out, dataset=args.dataset)


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="python -m benchmarks.semseg_table", description=__doc__.split("\n\n")[0],
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
    ap.add_argument("--no-trained-baseline", dest="trained_baseline", action="store_false", help="skip that row")
    ap.add_argument("--no-crf", dest="crf", action="store_false", help="skip the +CRF row")
    ap.add_argument("--crf-iterations", type=positive_int, default=5, help="mean-field iterations of the CRF")
    ap.add_argument("--crf-select", choices=["first-seed", "per-seed"], default="first-seed",
                    help="select the CRF kernels on val with the first seed's trunk (default) or with every seed's")
    ap.add_argument("--no-sp-average", dest="sp_average", action="store_false", help="skip those rows")
    ap.add_argument("--no-bi", dest="bi", action="store_false", help="no BI heads (the rows that need no training)")
    ap.add_argument("--bi-providers", nargs="+", default=None, metavar="NAME",
                    help="BI heads for these providers only (names or tags; default: every provider)")
    ap.add_argument("--band-widths", type=positive_int, nargs="+", default=list(BAND_WIDTHS),
                    help="boundary band widths in pixels (trimap score)")
    ap.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap resamples of the test images")
    ap.add_argument("--bootstrap-seed", type=non_negative_int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "results" / "semseg")
    ap.add_argument("--from-results", type=Path, default=None, metavar="DIR",
                    help="re-derive the report of an earlier run from DIR/table1_<dataset>.json and "
                         "DIR/table1_<dataset>_confusion.npz into --out (no data or training needed)")
    add_cache_args(ap, recompute=False)
    add_executor_args(ap, processes=1)
    ap.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "semseg")
    ap.add_argument("--trunk", default="deeplabv3_mobilenetv2")
    ap.add_argument("--trunk-weights", type=Path, default=None,
                    help="pretrained trunk weights (default $SIN_DEEPLAB_WEIGHTS, else the weights root "
                         "($SIN_WEIGHTS_ROOT or ../shared/weights)/deeplabv3_mnv2_dm05_tflite_weights.pt)")
    ap.add_argument("--short-side", type=non_negative_int, default=None,
                    help="trunk input shorter side (default: the dataset's, D.TRUNK_SHORT_SIDE: 361 for CamVid "
                         "= native, 257 otherwise)")
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
    ap.add_argument("--bi7-scales", type=positive_float, nargs=3, default=[1.0, 1.0, 1.0], metavar="S",
                    help="factors on theta_init of BI7's three filter pairs (all 1: the released init)")
    ap.add_argument("--bi-dropout", type=float, default=None,
                    help="dropout after BI6 / BI7 (default: 0 with --bi-init trunk, 0.5 with spec)")
    ap.add_argument("--end-to-end", action="store_true",
                    help="add the row 'BI(SIN, trained end to end)': SIN trained with the BI head "
                         "(downstream.bilateral_inception.end_to_end), same trunk, count, epochs and seeds")
    ap.add_argument("--e2e-seeds", type=non_negative_int, nargs="+", default=None,
                    help="seeds of the end-to-end row (default: all --seeds); its intervals pair these seeds")
    add_e2e_args(ap, prefix="e2e-", what="end to end: ")
    ap.add_argument("--figure-images", type=non_negative_int, default=4)
    ap.add_argument("--limit", type=positive_int, default=None, help="first N images of every split (smoke runs)")
    ap.add_argument("--trunk-only", action="store_true",
                    help="stop after the trunk stage (fine-tuning, feature cache, baseline); no table")
    ap.add_argument("--threads", type=positive_int, default=None,
                    help="torch threads (default: torch's choice; on a busy shared machine 1 is much faster)")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    return ap


def execute(args) -> int:
    """Run (or re-derive) the table and print its rows."""
    args.seeds = list(dict.fromkeys(args.seeds))
    if args.short_side is None:
        args.short_side = D.TRUNK_SHORT_SIDE.get(args.dataset, 257)
    args.trunk_weights = paths.deeplab_weights(args.trunk_weights)
    if args.from_results is not None:
        summary = from_results(args)
    else:
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        if args.trunk != "tiny" and not Path(args.trunk_weights).is_file():
            raise FileNotFoundError(f"trunk weights not found: {args.trunk_weights} (pass --trunk-weights)")
        summary = run(args)
    for r in summary["rows"]:
        m = r.get("test_miou_mean")
        if m is not None and not np.isnan(m):
            std = r.get("test_miou_std")
            spread = "" if std is None or np.isnan(std) else f" ± {std:.2f}"
            print(f"{r['method']:<70} test mIoU {m:.2f}{spread}  {r.get('note') or ''}")
    return 0


def main(argv=None) -> int:
    """One-line errors with exit 2 for usage and expected failures (missing data, bad files)."""
    return cli_main(build_parser, execute, argv, memory_hint="try --limit or fewer providers")


if __name__ == "__main__":
    sys.exit(main())
