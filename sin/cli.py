"""Command line: ``python -m sin {segment,demo,providers,train} ...``."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser"]


def _add_segment(sub):
    p = sub.add_parser(
        "segment",
        help="superpixels for images or folders of images",
        description="Write a label map and a boundary overlay PNG for every input image.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMG_OR_DIR", help="image files and/or folders (non-recursive)")
    p.add_argument("--n-segments", "-k", type=int, default=600, help="requested number of superpixels (default 600)")
    p.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    p.add_argument("--method", default="sin",
                   help="superpixel provider (default sin; see `python -m sin providers`)")
    p.add_argument("--weights", default=None,
                   help="SIN weights file (default: the weights shipped in sin/weights)")
    p.add_argument("--device", default="cpu", help="torch device for SIN, e.g. cuda (default cpu)")
    p.add_argument("--format", choices=["png", "npy", "csv"], default="png",
                   help="label map format: 16-bit PNG, NumPy .npy, or CSV as read by the superpixel-benchmark")
    p.add_argument("--no-overlay", action="store_true", help="do not write <name>_overlay.png")
    p.set_defaults(func=_cmd_segment)


def _cmd_segment(args) -> int:
    from tqdm import tqdm

    from .io import list_images, read_image, write_labels, write_overlay
    from .providers import get_provider

    provider = get_provider(args.method)
    params = {"weights": args.weights, "device": args.device} if args.method == "sin" else {}
    files = list_images(args.inputs)
    if not files:
        raise FileNotFoundError(f"no images found in {', '.join(map(str, args.inputs))}")
    args.out.mkdir(parents=True, exist_ok=True)
    times, counts = [], []
    for path in tqdm(files, desc=f"{args.method} k={args.n_segments}", unit="img", disable=len(files) < 2):
        image = read_image(path)
        t0 = time.perf_counter()
        labels = provider(image, args.n_segments, **params)
        times.append(time.perf_counter() - t0)
        counts.append(int(labels.max()) + 1)
        write_labels(labels, args.out / f"{path.stem}.{args.format}", args.format)
        if not args.no_overlay:
            write_overlay(image, labels, args.out / f"{path.stem}_overlay.png")
    print(f"{len(files)} image(s) -> {args.out}: {np.mean(counts):.0f} superpixels on average, "
          f"median {1000 * np.median(times):.1f} ms per image ({args.method})")
    return 0


def _add_demo(sub):
    p = sub.add_parser("demo", help="SIN on the bundled sample image; writes an overlay PNG",
                       description="Run SIN on the sample image shipped with the package.")
    p.add_argument("--out", "-o", type=Path, default=Path("out"), help="output folder (default ./out)")
    p.add_argument("--n-segments", "-k", type=int, default=600)
    p.add_argument("--image", type=Path, default=None, help="another image instead of the sample")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from .checkpoint import DEFAULT_WEIGHTS, UntrainedWarning
    from .inference import SINPredictor
    from .io import SAMPLE_IMAGE, read_image, write_overlay

    path = args.image or SAMPLE_IMAGE
    image = read_image(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWarning)
        predictor = SINPredictor()
    if predictor.trained:
        print(f"weights: {DEFAULT_WEIGHTS}")
    else:
        print("NOTE: no shipped weights found: running an UNTRAINED SIN network "
              "(valid, 4-connected superpixels, but not adapted to image content)")
    predictor(image, args.n_segments)  # warm-up (first call allocates)
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        labels, info = predictor(image, args.n_segments, return_info=True)
        ts.append(time.perf_counter() - t0)
    out = write_overlay(image, labels, args.out / f"{Path(path).stem}_sin_overlay.png")
    h, w = image.shape[:2]
    print(f"{path.name} ({w}x{h}): {info['n_superpixels']} superpixels (grid {info['grid'][0]}x{info['grid'][1]}, "
          f"requested {args.n_segments}), median {1000 * np.median(ts):.1f} ms on CPU")
    print(f"overlay written to {out}")
    return 0


def _add_providers(sub):
    p = sub.add_parser("providers", help="list the registered superpixel providers")
    p.set_defaults(func=lambda args: print(__import__("sin.providers", fromlist=["x"]).provider_table()) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sin",
        description="SIN superpixels (Superpixel Interpolation Network) and superpixel tools.",
        epilog="Examples:\n"
               "  python -m sin demo\n"
               "  python -m sin segment photos/ --n-segments 600 --out out/ --format csv\n"
               "  python -m sin segment img.jpg --method slic -k 300 -o out/\n"
               "  python -m sin train --preset cpu --data ../shared/data/BSDS500 --out runs/cpu",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_segment(sub)
    _add_demo(sub)
    _add_providers(sub)
    try:
        from .train import add_train_parser
    except ImportError:  # training lives in its own module; the CLI works without it
        pass
    else:
        add_train_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
