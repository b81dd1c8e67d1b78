"""Command line: ``python -m downstream.bilateral_inception {train,eval,export-sin} ...``.

Train the trunk (new classifier for the dataset, backbone frozen or not)::

    python -m downstream.bilateral_inception train --stage trunk --dataset msrc21 \\
        --trunk deeplabv3_mobilenetv2 --trunk-weights ../shared/weights/deeplabv3_mnv2_dm05_tflite_weights.pt \\
        --out runs/bi/trunk

then the Bilateral Inception head on one provider's superpixels (trunk frozen, features cached;
``--finetune`` trains the trunk too; ``--stage e2e`` instead trains SIN together with the head,
writing the fine-tuned SIN to ``sin_best.pt`` beside ``best.pt``)::

    python -m downstream.bilateral_inception train --stage bi --dataset msrc21 \\
        --trunk-checkpoint runs/bi/trunk/best.pt --provider slic:compactness=10 --n-segments 600 --out runs/bi/slic

and evaluate (per-class IoU + mIoU as JSON; VOC palette PNGs with ``--png-dir``; without
``--bi-checkpoint``: the trunk's bilinear baseline)::

    python -m downstream.bilateral_inception eval --dataset msrc21 --split test \\
        --trunk-checkpoint runs/bi/trunk/best.pt --bi-checkpoint runs/bi/slic/best.pt --out runs/bi/slic/test.json

``export-sin RUN [RUN ...] --out FILE`` keeps the SIN of the end-to-end run with the best val mIoU as
a decoder-only weights delta (2.4 MB; :mod:`sin.providers.weights_delta`) and prints its sha256.

``--provider`` takes any superpixel provider: a registered name (``python -m sin providers``),
``NAME:key=value,...`` or your own ``package.module:function``. Superpixels (the toolkit's label-map
cache) and trunk features live under ``--cache DIR`` (``DIR/labels``, ``DIR/bi``; keys cover the
trunk weights, input size, images and versions). The BI checkpoint records the provider; ``eval`` refuses a provider whose
fingerprint differs from the trained one unless ``--allow-provider-change``.

Checkpoints are written atomically every epoch; an interrupted run resumes from ``last.pt``
(``--no-resume`` starts over). VOC: ``--dataset voc --data-root VOCdevkit`` (splits train / val /
trainval / reducedval / test or a list file; ``--train-split train_aug --sbd-root
benchmark_RELEASE`` for the augmented set).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .end_to_end import add_e2e_args, e2e_config_from_args
from sin.argtypes import (
    Parser,
    add_cache_args,
    add_provider_args,
    non_negative_int,
    positive_float,
    positive_int,
    run_cli,
)

__all__ = ["build_parser", "main"]


# ------------------------------------------------------------------ argument types (checked up front)
def short_side(text: str) -> int:
    value = non_negative_int(text)
    if 0 < value < 9:
        raise argparse.ArgumentTypeError(f"expected 0 (native size) or at least 9, got {value}")
    return value


def _open(args, split):
    from .datasets import open_dataset

    return open_dataset(args.dataset, split, data_root=args.data_root, sbd_root=args.sbd_root, limit=args.limit)


def _common(p):
    from .datasets import DATASETS

    p.add_argument("--dataset", choices=list(DATASETS), default="msrc21")
    p.add_argument("--data-root", type=Path, default=None,
                   help="dataset folder (msrc21: default $SIN_DATA_ROOT/MSRC21; camvid: $SIN_CAMVID or "
                        "$SIN_DATA_ROOT/CamVid; voc: VOC2012/VOCdevkit; folder)")
    p.add_argument("--sbd-root", type=Path, default=None, help="SBD benchmark_RELEASE, for --train-split train_aug")
    p.add_argument("--short-side", type=short_side, default=None,
                   help="trunk input shorter side (0: native size; default: the dataset's, 361 for CamVid, else 257)")
    add_cache_args(p, recompute=False)
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=positive_int, default=None, help="first N images of every split (smoke runs)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads (default: torch's choice; on a busy shared CPU 1 is often fastest)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


TRUNK_WEIGHTS_HELP = ("pretrained trunk weights: a local file, a torchvision weight name (needs internet) or 'random'; "
                      "default for deeplabv3_mobilenetv2: the VOC-trained port ($SIN_DEEPLAB_WEIGHTS, else "
                      "<weights root>/deeplabv3_mnv2_dm05_tflite_weights.pt)")


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="python -m downstream.bilateral_inception",
                description="Bilateral Inception on DeepLab trunks with any superpixels.",
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the trunk or a BI head")
    _common(t)
    t.add_argument("--stage", choices=["trunk", "bi", "e2e"], required=True,
                   help="trunk; bi: a BI head on fixed superpixels; e2e: a BI head trained together with SIN")
    t.add_argument("--train-split", default="train")
    t.add_argument("--val-split", default="val", help="'none' for no validation")
    t.add_argument("--out", type=Path, required=True, help="run folder (last.pt, best.pt, record.json)")
    t.add_argument("--epochs", type=non_negative_int, default=None, help="default: 8")
    t.add_argument("--lr", type=positive_float, default=None, help="default: 5e-4 (trunk), 1e-3 (bi)")
    t.add_argument("--batch-size", type=positive_int, default=None, help="default: 8 (trunk), 4 (bi)")
    t.add_argument("--seed", type=non_negative_int, default=0)
    t.add_argument("--no-resume", dest="resume", action="store_false")
    # trunk stage
    t.add_argument("--trunk", default="deeplabv3_mobilenetv2",
                   help="deeplabv3_mobilenetv2, deeplabv3_resnet50/101, deeplabv3_mobilenet_v3_large, "
                        "deeplab_largefov, tiny")
    t.add_argument("--trunk-weights", default=None, help=TRUNK_WEIGHTS_HELP)
    t.add_argument("--mode", choices=["head", "full"], default="head",
                   help="trunk stage: train head + classifier on cached backbone outputs, or everything")
    # bi stage
    t.add_argument("--trunk-checkpoint", type=Path, help="bi stage: best.pt of the trunk stage")
    add_provider_args(t, default=None, several=False)  # bi stage (default slic); e2e trains SIN (--sin-weights)
    t.add_argument("--n-segments", type=positive_int, default=600)
    t.add_argument("--init", choices=["trunk", "spec"], default="trunk",
                   help="bi stage: start from the trunk's classifier, or the released model's initialisation")
    t.add_argument("--dropout", type=float, default=None,
                   help="bi stage: dropout after BI6 / BI7 (default 0 with --init trunk, 0.5 with spec)")
    t.add_argument("--finetune", choices=["none", "head", "full"], default="none",
                   help="bi stage: the trunk frozen (cached features), its head trained too (cached backbone "
                        "outputs), or all of it (no cache)")
    t.add_argument("--trunk-lr", type=positive_float, default=1e-4, help="bi stage: lr of the trunk with --finetune")
    # e2e stage (SIN trained through the BI head; see downstream.bilateral_inception.end_to_end)
    t.add_argument("--sin-weights", type=Path, default=None, help="e2e stage: SIN to start from (default: shipped)")
    add_e2e_args(t, what="e2e stage: ")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="per-class IoU and mIoU of the baseline or of a BI model")
    _common(e)
    e.add_argument("--split", default="val")
    e.add_argument("--trunk-checkpoint", type=Path, default=None,
                   help="best.pt of the trunk stage (or use --trunk/--trunk-weights for a pretrained trunk)")
    e.add_argument("--trunk", default="deeplabv3_mobilenetv2")
    e.add_argument("--trunk-weights", default=None, help=TRUNK_WEIGHTS_HELP)
    e.add_argument("--bi-checkpoint", type=Path, default=None, help="best.pt of the bi stage (omit: baseline)")
    add_provider_args(e, default=None, several=False)  # default: the BI checkpoint's
    e.add_argument("--n-segments", type=positive_int, default=None, help="default: the BI checkpoint's")
    e.add_argument("--allow-provider-change", action="store_true",
                   help="evaluate with a provider other than the trained one (a warning instead of an error)")
    e.add_argument("--png-dir", type=Path, default=None, help="write VOC palette PNG predictions here")
    e.add_argument("--out", type=Path, default=None, help="JSON with per-class IoU and mIoU")
    e.set_defaults(func=_cmd_eval)

    x = sub.add_parser("export-sin", help="the SIN of the best of several --stage e2e runs (val mIoU), as a "
                                          "small weights delta for a named provider variant")
    x.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="--stage e2e run folders (best.pt inside)")
    x.add_argument("--out", type=Path, required=True, help="the delta file to write (e.g. sin/weights/NAME.pt)")
    x.add_argument("--base", type=Path, default=None,
                   help="the SIN weights the runs started from (default: the shipped weights)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    x.set_defaults(func=_cmd_export_sin, device="cpu", threads=None)
    return ap


def _validate(args) -> None:
    """Everything that can be checked before any data is loaded (one-line errors)."""
    import torch

    from sin.providers import get_provider

    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine (use --device cpu)")
    try:
        torch.device(args.device)
    except RuntimeError:
        raise ValueError(f"--device {args.device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    for flag in ("trunk_checkpoint", "bi_checkpoint"):
        path = getattr(args, flag, None)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{flag.replace('_', '-')} not found: {path}")
    # the pretrained weights matter only where a trunk starts from them (a checkpoint holds its own)
    from_pretrained = ((args.command == "train" and args.stage == "trunk")
                       or (args.command == "eval" and getattr(args, "trunk_checkpoint", None) is None))
    if hasattr(args, "trunk_weights") and from_pretrained:
        args.trunk_weights = _trunk_weights(args)
    weights = getattr(args, "trunk_weights", None)
    if weights is not None and ("/" in str(weights) or str(weights).endswith((".pt", ".pth"))) \
            and not Path(weights).is_file():
        raise FileNotFoundError(f"--trunk-weights not found: {weights}")
    if args.command == "train" and args.stage == "e2e" and args.provider is not None:
        raise ValueError("--stage e2e trains SIN itself, --provider has no effect there (start from other SIN "
                         "weights with --sin-weights)")
    if args.command == "train" and args.stage == "bi" and args.provider is None:
        args.provider = get_provider("slic")
    if args.command == "train" and args.stage in ("bi", "e2e") and args.trunk_checkpoint is None:
        raise ValueError(f"--stage {args.stage} needs --trunk-checkpoint (best.pt of --stage trunk)")
    if args.command == "train" and args.stage == "e2e":
        if args.sin_weights is not None and not Path(args.sin_weights).is_file():
            raise FileNotFoundError(f"--sin-weights not found: {args.sin_weights}")
        if args.finetune != "none":
            raise ValueError("--stage e2e keeps the trunk frozen (--finetune none)")
        _e2e_config(args)  # bad values fail here, before any work
    if args.command == "train" and args.dropout is not None and not 0 <= args.dropout < 1:
        raise ValueError(f"--dropout must be in [0, 1), got {args.dropout}")


def _trunk_weights(args):
    """The pretrained weights the trunk starts from: the VOC-trained DeepLab port by default (a
    random trunk only when asked: ``--trunk-weights random``, or the random ``tiny`` trunk)."""
    from sin.paths import deeplab_weights

    w = args.trunk_weights
    if w == "random" or getattr(args, "trunk", None) == "tiny":
        if w not in (None, "random"):
            raise ValueError("the tiny trunk is random; it takes no --trunk-weights")
        return None
    if w is None and getattr(args, "trunk", None) == "deeplabv3_mobilenetv2":
        path = deeplab_weights()
        if not path.is_file():
            raise FileNotFoundError(f"the VOC-trained DeepLab weights are not at {path}: set SIN_DEEPLAB_WEIGHTS or "
                                    "SIN_WEIGHTS_ROOT, pass --trunk-weights FILE, or --trunk-weights random")
        return str(path)
    return w


def _e2e_config(args):
    return e2e_config_from_args(args)


def _pipeline(args):
    from .datasets import TRUNK_SHORT_SIDE
    from .pipeline import BIPipeline

    short = args.short_side if args.short_side is not None else TRUNK_SHORT_SIDE.get(args.dataset, 257)
    return BIPipeline.from_cache_root(args.cache, short_side=short, device=args.device, progress=args.progress)


def _cmd_train(args) -> int:
    from .bi_training import BITrainConfig
    from .trunk_training import TrunkTrainConfig

    pipe = _pipeline(args)
    train_set = _open(args, args.train_split)
    val_set = None if args.val_split == "none" else _open(args, args.val_split)
    if args.stage == "trunk":
        handle = pipe.pretrained_trunk(args.trunk, args.trunk_weights,
                                       num_classes=train_set.num_classes if args.trunk == "tiny" else 21)
        cfg = TrunkTrainConfig(epochs=8 if args.epochs is None else args.epochs, lr=args.lr or 5e-4,
                               batch_size=args.batch_size or 8, short_side=pipe.short_side, mode=args.mode,
                               seed=args.seed)
        _, record, _ = pipe.fine_tune_trunk(handle, train_set, val_set, config=cfg, out_dir=args.out,
                                            resume=args.resume)
    else:
        handle = pipe.trunk_from_checkpoint(args.trunk_checkpoint)
        cfg = BITrainConfig(epochs=8 if args.epochs is None else args.epochs, lr=args.lr or 1e-3,
                            batch_size=args.batch_size or 4, init=args.init, dropout=args.dropout,
                            finetune=args.finetune, trunk_lr=args.trunk_lr, short_side=pipe.short_side,
                            seed=args.seed)
        if args.stage == "bi":
            _, _, record, _ = pipe.train_bi(handle, args.provider, args.n_segments, train_set, val_set, config=cfg,
                                            out_dir=args.out, resume=args.resume,
                                            meta={"trunk_checkpoint": str(args.trunk_checkpoint)})
        else:
            e2e = _e2e_config(args)
            _, provider, record, _ = pipe.train_end_to_end(handle, args.n_segments, train_set, val_set, config=cfg,
                                                           e2e=e2e, sin_weights=args.sin_weights, out_dir=args.out,
                                                           resume=args.resume,
                                                           meta={"trunk_checkpoint": str(args.trunk_checkpoint)})
            print(f"fine-tuned SIN: {provider.weights_file} (as a provider: sin:weights={provider.weights_file})")
    from sin.io import atomic_write

    atomic_write(args.out / "record.json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2) + "\n"))
    print(f"done: best val mIoU {record['best_miou']:.4f} (epoch {record['best_epoch']}) -> {args.out / 'best.pt'}")
    return 0


def _cmd_eval(args) -> int:
    pipe = _pipeline(args)
    ds = _open(args, args.split)
    if args.trunk_checkpoint is not None:
        handle = pipe.trunk_from_checkpoint(args.trunk_checkpoint)
    else:
        handle = pipe.pretrained_trunk(args.trunk, args.trunk_weights)
    if handle.trunk.num_classes != ds.num_classes:
        raise ValueError(f"the trunk predicts {handle.trunk.num_classes} classes, {ds.name} has {ds.num_classes}")
    if args.bi_checkpoint is None:
        cm = pipe.evaluate_baseline(handle, ds, png_dir=args.png_dir)
        what = f"baseline ({handle.trunk.name}, bilinear upsampling)"
    else:
        head, bi_handle, provider, n_segments, state = pipe.load_bi(
            args.bi_checkpoint, handle, args.provider, args.n_segments,
            allow_provider_change=args.allow_provider_change)
        finetune = state["config"].get("finetune", "none")
        cm = pipe.evaluate_bi(head, bi_handle, provider, n_segments, ds, finetune=finetune, inputs_from=handle,
                              png_dir=args.png_dir)
        what = f"BI({provider.spec_string()}, k={n_segments}) on {handle.trunk.name}"
    summary = {"dataset": ds.name, "split": args.split, "model": what, **cm.summary(ds.classes)}
    text = json.dumps(summary, indent=2)
    if args.out is not None:
        from sin.io import atomic_write

        atomic_write(args.out, lambda tmp: Path(tmp).write_text(text + "\n"))
    print(f"{what}: mIoU {100 * summary['mIoU']:.2f} on {ds.name} {args.split} ({len(ds)} images)")
    for name, v in summary["iou"].items():
        print(f"  {name:<14} {'' if v is None else f'{100 * v:.2f}'}")
    return 0


def _cmd_export_sin(args) -> int:
    from sin.providers.registry import file_sha256
    from sin.providers.weights_delta import save_weights_delta

    from .end_to_end import load_end_to_end

    from sin.providers import get_provider

    base = Path(args.base) if args.base is not None else get_provider("sin").weights_file
    out = Path(args.out)
    # never write over an input, --overwrite or not: a run's files (every file in a run folder: best.pt,
    # last.pt, sin_best.pt, record.json) and the base weights
    inputs = [base] + [f for run in args.runs for f in ([*Path(run).iterdir()] if Path(run).is_dir() else [run])]
    for f in inputs:
        f = Path(f)
        if out.resolve() == f.resolve() or (out.exists() and f.exists() and out.samefile(f)):  # links too
            raise ValueError(f"--out {out} is one of the inputs ({f}): export-sin never writes over its inputs, "
                             "--overwrite or not")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"--out {out} exists (--overwrite replaces it)")
    candidates = []
    for run in args.runs:
        best = run / "best.pt" if run.is_dir() else run
        if not best.is_file():
            raise FileNotFoundError(f"no best.pt in {run} (a --stage e2e run folder)")
        try:
            _, model, state = load_end_to_end(best)
            record = state["record"]
            val, epoch, seed = float(record["best_miou"]), record["best_epoch"], state["config"].get("seed")
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{best} is not a complete --stage e2e checkpoint (missing {exc})") from None
        if not np.isfinite(val):
            print(f"{run}: val mIoU is {val}: not a candidate", file=sys.stderr)
            continue
        candidates.append((val, run, model, state))
        print(f"{run}: seed {seed}, val mIoU {100 * val:.2f} (epoch {epoch})")
    if not candidates:
        raise ValueError("no run has a finite val mIoU: nothing to export")
    # selection on val only: the test split never chooses the shipped variant
    val_miou, run, model, state = max(candidates, key=lambda c: c[0])
    meta = {"trained": "end to end through a BI head", "run": run.name, "val_miou": float(val_miou),
            "seed": state["config"].get("seed"), "epoch": state["record"]["best_epoch"], "e2e": state.get("e2e"),
            "n_segments": state.get("n_segments"), "classes": state.get("classes"),
            "candidates": {c[1].name: float(c[0]) for c in candidates}}
    save_weights_delta(model, out, base=args.base, meta=meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {run} (val mIoU {100 * val_miou:.2f}), "
          f"sha256 {file_sha256(out)}")
    return 0


def main(argv=None) -> int:
    """Run the command line; expected failures end with one ``error: ...`` line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)

    def call() -> int:
        _validate(args)
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        return int(args.func(args) or 0)

    return run_cli(call, expected=(ValueError, OSError, KeyError),
                   memory_hint="try --limit, a smaller --short-side or --batch-size")


if __name__ == "__main__":
    sys.exit(main())
