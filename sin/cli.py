"""Command line: ``python -m sin {segment,demo,providers,train} ...``.

Exit codes: 0 success; 1 ``segment`` finished but some images failed (each one is listed);
2 nothing was done (or the run stopped): a bad argument, a missing input, an unusable ``--out``, a full
disk, ... Expected failures end with one ``error: ...`` line on stderr, never a traceback.
``segment`` is resumable and safe to run twice into one folder (see :mod:`sin.segment`).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from . import argtypes as _argtypes

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the default prints the whole usage block first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


positive_int = _argtypes.positive_int
provider_arg = _argtypes.provider


# ---------------------------------------------------------------------------------- segment
def _add_segment(sub):
    from .segment import add_segment_parser  # the command lives in sin.segment (resumable, claims)

    add_segment_parser(sub)


# ---------------------------------------------------------------------------------- demo
def _add_demo(sub):
    p = sub.add_parser("demo", help="SIN on the bundled sample image; writes an overlay PNG",
                       description="Run SIN on the sample image shipped with the package.")
    p.add_argument("--out", "-o", type=Path, default=Path("out"), help="output folder (default ./out)")
    p.add_argument("--n-segments", "-k", type=positive_int, default=600)
    p.add_argument("--image", type=Path, default=None, help="another image instead of the sample")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from .checkpoint import DEFAULT_WEIGHTS, UntrainedWarning
    from .inference import SINPredictor
    from .io import SAMPLE_IMAGE, read_image, write_overlay

    path = Path(args.image or SAMPLE_IMAGE)
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
    out = write_overlay(image, labels, args.out / f"{path.stem}_sin_overlay.png")
    h, w = image.shape[:2]
    print(f"{path.name} ({w}x{h}): {info['n_superpixels']} superpixels (grid {info['grid'][0]}x{info['grid'][1]}, "
          f"requested {args.n_segments}), median {1000 * np.median(ts):.1f} ms on CPU "
          f"({predictor.precision}: {predictor.precision_reason})")
    print(f"overlay written to {out}")
    return 0


# ---------------------------------------------------------------------------------- providers
def _md(text) -> str:
    return str(text).replace("|", "\\|")


def provider_table(names=None) -> str:
    """Markdown tables of the registered providers (``names``: only those): the methods with
    their size limits and weights provenance, every parameter with its default and allowed
    values, and the weights tags with their files and sha256."""
    from .providers import get_provider
    from .providers.params import format_value
    from .providers.registry import entries, lookup

    chosen = [lookup(n) for n in names] if names else entries()
    methods = ["| provider | 4-connected | how | extra | max image | weights (sha256) | source, licence | description |",
               "|---|---|---|---|---|---|---|---|"]
    params = ["| provider | parameter | default | allowed | meaning |", "|---|---|---|---|---|"]
    tags = ["| provider | weights tag | file | sha256 | source | description |", "|---|---|---|---|---|---|"]
    for entry in chosen:
        weights = provenance = ""
        if entry.weights is not None:
            prov = get_provider(entry)
            path, sha = prov.weights_file, prov.weights_sha256()
            weights = f"`{path.name if path else '?'}` ({sha[:12] if sha and not sha.startswith('absent') else 'absent'})"
            provenance = ", ".join(filter(None, [entry.weights.source, entry.weights.licence]))
            for tag in entry.weights.tags.values():
                tags.append(f"| `{entry.name}` | `{entry.weights.param}={tag.name}` | `{Path(tag.file()).name}` | "
                            f"`{tag.sha256[:16]}…` | {_md(tag.source)} | {_md(tag.description)} |")
        limit = "" if entry.max_pixels is None else f"{entry.max_pixels / 1e6:g} MP"
        methods.append(f"| `{entry.name}` | {'yes' if entry.connected else 'no'} | {entry.connectivity} | "
                       f"{'yes' if entry.extra else ''} | {limit} | {weights} | {_md(provenance)} | "
                       f"{_md(entry.description)} |")
        declared = entry.declared
        for key, default in entry.defaults.items():
            decl = declared.get(key)
            allowed, meaning = (decl.describe(), getattr(decl, "help", "")) if decl is not None else ("not declared", "")
            params.append(f"| `{entry.name}` | `{key}` | `{format_value(default)}` | {_md(allowed)} | {_md(meaning)} |")
    out = "\n".join(methods) + "\n\nParameters (`--provider NAME:key=value,...`):\n\n" + "\n".join(params)
    if len(tags) > 2:
        out += "\n\nWeights tags (named files with a recorded sha256):\n\n" + "\n".join(tags)
    return out


def _cmd_providers(args) -> int:
    print(provider_table(args.names))
    return 0


def _add_providers(sub):
    p = sub.add_parser("providers", help="list the superpixel providers with their parameters",
                       description="Markdown tables of the registered superpixel providers (size limits, weights "
                                   "provenance), their parameters (default and allowed values) and weights tags. Any "
                                   "of them, or package.module:function, is accepted by --provider / --providers "
                                   "everywhere.")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these providers (default: all)")
    p.set_defaults(func=_cmd_providers)


# ---------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from .train import add_train_parser

    parser = _Parser(
        prog="python -m sin",
        description="SIN superpixels (Superpixel Interpolation Network) and superpixel tools.",
        epilog="Examples:\n"
               "  python -m sin demo\n"
               "  python -m sin segment photos/ --n-segments 600 --out out/ --format csv\n"
               "  python -m sin segment img.jpg --provider slic:compactness=20 -k 300 -o out/\n"
               "  python -m sin segment img.jpg --provider sin:device=cuda -o out/\n"
               "  python -m sin segment photos/ -o out/ --scheduler tcp://HOST:8786   (a Dask cluster)\n"
               "  python -m sin train --preset cpu --data ../shared/data/BSDS500 --out runs/cpu\n\n"
               "Exit codes: 0 ok, 1 some images failed (listed on stderr), 2 error (one line on stderr).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_segment(sub)
    _add_demo(sub)
    _add_providers(sub)
    add_train_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory (try a smaller image or fewer superpixels)", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:  # FileNotFoundError, PermissionError, disk full, ...
        msg = str(exc) if not isinstance(exc, OSError) or not exc.filename else \
            f"{exc.strerror or exc}: {exc.filename}"
        print("error: " + " ".join(msg.split()), file=sys.stderr)  # one line, whatever the message
        return 2
