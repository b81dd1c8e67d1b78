"""Command line: ``python -m sin {segment,demo,providers,train} ...``.

Exit codes: 0 success; 1 ``segment`` finished but some images failed (each one is listed);
2 nothing was done (or the run stopped): a bad argument, a missing input, an unusable ``--out``, a full
disk, ... Expected failures end with one ``error: ...`` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
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
    p = sub.add_parser(
        "segment",
        help="superpixels for images or folders of images",
        description="Write a label map (<stem>.<format>) and a boundary overlay (<stem>_overlay.png) for "
                    "every input image into --out. Inputs are never overwritten; existing outputs only with "
                    "--overwrite. An unreadable image does not stop the run: the others are processed, "
                    "every failure is listed at the end and the exit code is 1 (--fail-fast stops at the "
                    "first one).",
    )
    p.add_argument("inputs", nargs="+", metavar="IMG_OR_DIR", help="image files and/or folders (non-recursive)")
    p.add_argument("--n-segments", "-k", type=positive_int, default=600,
                   help="requested number of superpixels (default 600)")
    p.add_argument("--out", "-o", type=Path, required=True, help="output folder (created if needed)")
    p.add_argument("--provider", "-p", type=provider_arg, default="sin", metavar="NAME[:key=value,...]",
                   help="superpixel method and its parameters, e.g. slic:compactness=20, "
                        "sin:weights=PATH,device=cuda, or package.module:function "
                        "(default sin; see `python -m sin providers`)")
    p.add_argument("--format", choices=["png", "npy", "csv"], default="png",
                   help="label map format: 16-bit PNG, NumPy .npy, or CSV as read by the superpixel-benchmark")
    p.add_argument("--no-overlay", action="store_true", help="do not write <stem>_overlay.png")
    p.add_argument("--overwrite", action="store_true",
                   help="replace label maps / overlays already in --out (inputs are never replaced)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first image that fails")
    p.set_defaults(func=_cmd_segment)


def _check_device(device) -> None:
    """Fail before the first image, not on every image, for a device this machine lacks."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here (use device=cpu)")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} requested but MPS is not available here (use device=cpu)")


def _check_provider(provider) -> None:
    """Up-front checks of the provider's parameters that would otherwise fail once per image."""
    if "device" in provider.params and provider.params["device"] is not None:
        _check_device(provider.params["device"])
    w = provider.spec.weights
    if w is not None:
        value = provider.params.get(w.param)
        path = provider.weights_file
        # "untrained" and other non-path values are the provider's business
        if isinstance(value, (str, Path)) and str(value) != "untrained" and path is not None and not path.is_file():
            raise FileNotFoundError(f"provider {provider.name!r}: {w.param} file not found: {path}")


def _plan_outputs(files: list[Path], out: Path, fmt: str, overlay: bool) -> list[tuple[Path, Path | None]]:
    """Output paths per input, refusing collisions with inputs and between inputs."""
    plan = [(out / f"{f.stem}.{fmt}", out / f"{f.stem}_overlay.png" if overlay else None) for f in files]
    inputs = {os.path.realpath(f): f for f in files}
    seen: dict[str, Path] = {}
    for src, targets in zip(files, plan):
        for t in filter(None, targets):
            real = os.path.realpath(t)
            if real in inputs:
                raise ValueError(f"output {t} would overwrite the input image {inputs[real]}; "
                                 "choose another --out folder")
            if real in seen:
                raise ValueError(f"{seen[real]} and {src} would both be written to {t}; "
                                 "segment them into separate --out folders")
            seen[real] = src
    return plan


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {out} is not writable")


def _cmd_segment(args) -> int:
    from tqdm import tqdm

    from .io import list_images, read_image, write_labels, write_overlay

    provider = args.provider
    if isinstance(provider, str):  # the default, not run through `type=`
        provider = provider_arg(provider)
    _check_provider(provider)
    files = list_images(args.inputs)
    if not files:
        raise FileNotFoundError(f"no images found in {', '.join(map(str, args.inputs))}")
    plan = _plan_outputs(files, args.out, args.format, not args.no_overlay)
    if not args.overwrite:
        existing = [t for targets in plan for t in targets if t is not None and t.exists()]
        if existing:
            raise ValueError(f"{len(existing)} output file(s) already exist in {args.out} (e.g. {existing[0].name}); "
                             "pass --overwrite to replace them or choose another --out")
    _prepare_out(args.out)

    times, counts, failures = [], [], []
    name = provider.spec_string()
    # tqdm on a terminal only (disable=None): logs and captured stderr stay free of progress bars
    bar = tqdm(list(zip(files, plan)), desc=f"{name} k={args.n_segments}", unit="img",
               disable=None if len(files) > 1 else True)
    for path, (label_path, overlay_path) in bar:
        try:
            image = read_image(path)
            t0 = time.perf_counter()
            labels = provider(image, args.n_segments)
            times.append(time.perf_counter() - t0)
        except (ValueError, FileNotFoundError) as exc:  # this image only: go on with the others
            if args.fail_fast:
                raise ValueError(f"{path}: {exc}") from None
            failures.append((path, " ".join(str(exc).split())))
            continue
        try:
            write_labels(labels, label_path, args.format)
            if overlay_path is not None:
                write_overlay(image, labels, overlay_path)
        except OSError as exc:  # disk full, folder removed, ...: the next image would fail the same way
            raise OSError(f"cannot write the outputs of {path.name} to {args.out}: {exc.strerror or exc}") from None
        counts.append(int(labels.max()) + 1)
    done = len(counts)
    if done:
        print(f"{done} image(s) -> {args.out}: {np.mean(counts):.0f} superpixels on average, "
              f"median {1000 * np.median(times):.1f} ms per image ({name})")
    if failures:
        head = f"error: {len(failures)} of {len(files)} image(s) failed"
        messages = {msg for _, msg in failures}
        if not done and len(messages) == 1 and len(failures) > 1:
            # the same error everywhere (e.g. a bad provider parameter value): say it once
            print(f"error: all {len(files)} images failed: {messages.pop()}", file=sys.stderr)
            return 2
        if len(failures) == 1:
            print(f"{head}: {failures[0][0]}: {failures[0][1]}", file=sys.stderr)
        else:
            print(head + ":", file=sys.stderr)
            for path, msg in failures:
                print(f"  {path}: {msg}", file=sys.stderr)
        return 1 if done else 2
    return 0


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
