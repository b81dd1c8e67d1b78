"""Command line: ``python -m downstream.bilateral_inception {train,eval} ...``.

Train the trunk (new classifier for the dataset, backbone frozen or not)::

    python -m downstream.bilateral_inception train --stage trunk --dataset msrc21 \\
        --trunk deeplabv3_mobilenetv2 --trunk-weights ../shared/weights/deeplabv3_mnv2_dm05_tflite_weights.pt \\
        --out runs/bi/trunk

then the Bilateral Inception head on one provider's superpixels (trunk frozen, features cached;
``--finetune-trunk`` trains both end to end)::

    python -m downstream.bilateral_inception train --stage bi --dataset msrc21 \\
        --trunk-checkpoint runs/bi/trunk/best.pt --provider slic --n-segments 600 --out runs/bi/slic

and evaluate (per-class IoU + mIoU as JSON; VOC palette PNGs with ``--png-dir``; without
``--bi-checkpoint``: the trunk's bilinear baseline)::

    python -m downstream.bilateral_inception eval --dataset msrc21 --split test \\
        --trunk-checkpoint runs/bi/trunk/best.pt --bi-checkpoint runs/bi/slic/best.pt --out runs/bi/slic/test.json

Checkpoints are written atomically every epoch; an interrupted run resumes from ``last.pt``
(``--no-resume`` starts over). VOC: ``--dataset voc --data-root VOCdevkit`` (splits train / val /
trainval / reducedval / test or a list file; ``--train-split train_aug --sbd-root
benchmark_RELEASE`` for the augmented set).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

__all__ = ["main", "build_parser"]

REPO = Path(__file__).resolve().parents[2]


def _open(args, split):
    from .datasets import open_dataset

    return open_dataset(args.dataset, split, data_root=args.data_root, sbd_root=args.sbd_root, limit=args.limit)


def _common(p):
    p.add_argument("--dataset", choices=["msrc21", "voc", "folder"], default="msrc21")
    p.add_argument("--data-root", type=Path, default=None,
                   help="dataset folder (msrc21: default $SIN_DATA_ROOT/MSRC21; voc: VOC2012/VOCdevkit; folder)")
    p.add_argument("--sbd-root", type=Path, default=None, help="SBD benchmark_RELEASE, for --train-split train_aug")
    p.add_argument("--short-side", type=int, default=257, help="trunk input shorter side (0: native size)")
    p.add_argument("--cache-dir", type=Path, default=REPO / "cache" / "bi", help="feature / superpixel caches")
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, default=None, help="first N images of every split (smoke runs)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's choice; on a busy shared CPU 1 is often fastest)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m downstream.bilateral_inception",
                                 description="Bilateral Inception on DeepLab trunks with any superpixels.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the trunk or a BI head")
    _common(t)
    t.add_argument("--stage", choices=["trunk", "bi"], required=True)
    t.add_argument("--train-split", default="train")
    t.add_argument("--val-split", default="val", help="'none' for no validation")
    t.add_argument("--out", type=Path, required=True, help="run folder (last.pt, best.pt, record.json)")
    t.add_argument("--epochs", type=int, default=None, help="default: 8")
    t.add_argument("--lr", type=float, default=None, help="default: 5e-4 (trunk), 1e-3 (bi)")
    t.add_argument("--batch-size", type=int, default=None, help="default: 8 (trunk), 4 (bi)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-resume", dest="resume", action="store_false")
    # trunk stage
    t.add_argument("--trunk", default="deeplabv3_mobilenetv2",
                   help="deeplabv3_mobilenetv2, deeplabv3_resnet50/101, deeplabv3_mobilenet_v3_large, "
                        "deeplab_largefov, tiny")
    t.add_argument("--trunk-weights", default=None,
                   help="pretrained weights: a local file (or a torchvision weight name, needs internet)")
    t.add_argument("--mode", choices=["head", "full"], default="head",
                   help="trunk stage: train head + classifier on cached backbone outputs, or everything")
    # bi stage
    t.add_argument("--trunk-checkpoint", type=Path, help="bi stage: best.pt of the trunk stage")
    t.add_argument("--provider", default="slic", help="superpixel provider (see `python -m sin providers`)")
    t.add_argument("--n-segments", type=int, default=600)
    t.add_argument("--init", choices=["trunk", "spec"], default="trunk",
                   help="bi stage: start from the trunk's classifier, or the released model's initialisation")
    t.add_argument("--dropout", type=float, default=None,
                   help="bi stage: dropout after BI6 / BI7 (default 0 with --init trunk, 0.5 with spec)")
    t.add_argument("--finetune", choices=["none", "head", "full"], default="none",
                   help="bi stage: the trunk frozen (cached features), its head trained too (cached backbone "
                        "outputs), or all of it (no cache)")
    t.add_argument("--trunk-lr", type=float, default=1e-4, help="bi stage: lr of the trunk with --finetune")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="per-class IoU and mIoU of the baseline or of a BI model")
    _common(e)
    e.add_argument("--split", default="val")
    e.add_argument("--trunk-checkpoint", type=Path, default=None,
                   help="best.pt of the trunk stage (or use --trunk/--trunk-weights for a pretrained trunk)")
    e.add_argument("--trunk", default="deeplabv3_mobilenetv2")
    e.add_argument("--trunk-weights", default=None)
    e.add_argument("--bi-checkpoint", type=Path, default=None, help="best.pt of the bi stage (omit: baseline)")
    e.add_argument("--provider", default=None, help="default: the BI checkpoint's")
    e.add_argument("--n-segments", type=int, default=None, help="default: the BI checkpoint's")
    e.add_argument("--png-dir", type=Path, default=None, help="write VOC palette PNG predictions here")
    e.add_argument("--out", type=Path, default=None, help="JSON with per-class IoU and mIoU")
    e.set_defaults(func=_cmd_eval)
    return ap


def _short(args):
    return None if not args.short_side else args.short_side


def _feature_cache(args, trunk, trunk_path, datasets):
    from . import train as T

    fp = T.file_fingerprint(trunk_path) if trunk_path is not None else "pretrained"
    d = Path(args.cache_dir) / datasets[0].name / f"features_{trunk.name}_{fp}_s{args.short_side}"
    for ds in datasets:
        cache = T.cache_features(trunk, ds, d, short_side=_short(args), device=args.device, progress=args.progress)
    return cache


def _bi_cache(args, trunk, trunk_path, datasets, finetune):
    """What BI reads per image: trunk features (frozen trunk), backbone outputs (head fine-tuned), nothing."""
    from . import train as T

    if finetune == "none":
        return _feature_cache(args, trunk, trunk_path, datasets)
    if finetune == "head":
        fp = T.file_fingerprint(trunk_path) if trunk_path is not None else "pretrained"
        d = Path(args.cache_dir) / datasets[0].name / f"backbone_{trunk.name}_{fp}_s{args.short_side}"
        for ds in datasets:
            cache = T.cache_backbone(trunk, ds, d, short_side=_short(args), device=args.device,
                                     progress=args.progress)
        return cache
    return None


def _superpixels(args, provider, n_segments, datasets):
    from . import train as T

    labels = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ds in datasets:
            labels.update(T.cache_superpixels(ds, provider, n_segments, Path(args.cache_dir) / ds.name / "superpixels",
                                              progress=args.progress)["labels"])
    return labels


def _cmd_train(args) -> int:
    from . import train as T
    from .trunks import build_trunk

    train_set = _open(args, args.train_split)
    val_set = None if args.val_split == "none" else _open(args, args.val_split)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "trunk":
        trunk = build_trunk(args.trunk, args.trunk_weights,
                            num_classes=train_set.num_classes if args.trunk == "tiny" else 21)
        cfg = T.TrunkTrainConfig(epochs=8 if args.epochs is None else args.epochs, lr=args.lr or 5e-4,
                                 batch_size=args.batch_size or 8, short_side=_short(args), mode=args.mode,
                                 seed=args.seed)
        bb_dir = Path(args.cache_dir) / train_set.name / f"backbone_{args.out.name}"
        record = T.train_trunk(trunk, train_set, val_set, args.out, config=cfg, backbone_cache_dir=bb_dir,
                               device=args.device, resume=args.resume, progress=args.progress,
                               meta={"weights": str(args.trunk_weights)})
    else:
        if args.trunk_checkpoint is None:
            raise SystemExit("error: --stage bi needs --trunk-checkpoint (best.pt of --stage trunk)")
        trunk, _ = T.load_trunk_checkpoint(args.trunk_checkpoint)
        cfg = T.BITrainConfig(epochs=8 if args.epochs is None else args.epochs, lr=args.lr or 1e-3,
                              batch_size=args.batch_size or 4, init=args.init, dropout=args.dropout,
                              finetune=args.finetune, trunk_lr=args.trunk_lr, short_side=_short(args), seed=args.seed)
        sets = [train_set] + ([val_set] if val_set is not None else [])
        sps = _superpixels(args, args.provider, args.n_segments, sets)
        cache = _bi_cache(args, trunk, args.trunk_checkpoint, sets, args.finetune)
        head = T.build_head(trunk, train_set.num_classes, cfg)
        record = T.train_bi(head, train_set, val_set, sps, args.out, config=cfg, feature_cache=cache, trunk=trunk,
                            device=args.device, resume=args.resume, progress=args.progress,
                            meta={"provider": args.provider, "n_segments": args.n_segments,
                                  "trunk_checkpoint": str(args.trunk_checkpoint)})
    (args.out / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"done: best val mIoU {record['best_miou']:.4f} (epoch {record['best_epoch']}) -> {args.out / 'best.pt'}")
    return 0


def _cmd_eval(args) -> int:
    from . import train as T
    from .trunks import build_trunk

    ds = _open(args, args.split)
    if args.trunk_checkpoint is not None:
        trunk, _ = T.load_trunk_checkpoint(args.trunk_checkpoint)
    else:
        trunk = build_trunk(args.trunk, args.trunk_weights)
    if trunk.num_classes != ds.num_classes:
        raise SystemExit(f"error: the trunk predicts {trunk.num_classes} classes, {ds.name} has {ds.num_classes}")
    if args.bi_checkpoint is None:
        cm = T.evaluate_baseline(trunk, ds, short_side=_short(args), device=args.device, progress=args.progress,
                                 png_dir=args.png_dir)
        what = f"baseline ({trunk.name}, bilinear upsampling)"
    else:
        head, state = T.load_bi_checkpoint(args.bi_checkpoint)
        provider = args.provider or state["meta"].get("provider")
        n_segments = args.n_segments or state["meta"].get("n_segments")
        if provider is None or n_segments is None:
            raise SystemExit("error: pass --provider and --n-segments (not recorded in the BI checkpoint)")
        sps = _superpixels(args, provider, n_segments, [ds])
        finetune = state["config"].get("finetune", "none")
        cache = _bi_cache(args, trunk, args.trunk_checkpoint, [ds], finetune)  # before loading the BI trunk state
        if state.get("trunk_state") is not None:
            trunk.load_state_dict(state["trunk_state"])
        cm = T.evaluate_bi(head, ds, sps, feature_cache=cache, trunk=trunk, finetune=finetune,
                           short_side=_short(args), device=args.device, progress=args.progress, png_dir=args.png_dir)
        what = f"BI({provider}, k={n_segments}) on {trunk.name}"
    summary = {"dataset": ds.name, "split": args.split, "model": what, **cm.summary(ds.classes)}
    text = json.dumps(summary, indent=2)
    if args.out is not None:
        from sin.io import atomic_write

        atomic_write(args.out, lambda tmp: Path(tmp).write_text(text + "\n"))
    print(f"{what}: mIoU {100 * summary['mIoU']:.2f} on {ds.name} {args.split} ({len(ds)} images)")
    for name, v in summary["iou"].items():
        print(f"  {name:<14} {'' if v is None else f'{100 * v:.2f}'}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
