"""``python -m sin segment``: label maps and overlays for image files, resumable and safe to run twice.

How an output is known to be complete
-------------------------------------
Every file is written to a temporary next to it and renamed, so a label map or overlay that
exists is whole. Next to them, ``<out>/.sin-segment/<label file>.json`` records what made them:
the input's sha256, the provider (name, parameters and fingerprint, i.e. its version and weights),
``--n-segments``, the format and the size and reading options. The record says ``complete`` only
after both outputs are in place. Re-running a command therefore skips every image whose record
is complete and matches, and redoes the rest (a killed run's ``running`` records included);
outputs made by *another* command (a record that differs, or no record at all) are never taken
as done, nor replaced without ``--overwrite``.

Two runs into one ``--out``
---------------------------
Each image's record is locked (``flock``) while a process works on it, and an output that did not
exist when the image was claimed is created exclusively (a hard link, which fails if the name is
taken meanwhile). So two ``segment`` processes never replace each other's files: the second one
fails that image with a message, whatever the timing. A lock dies with its process, so a killed
run leaves nothing that blocks its resumption.

No output ever replaces an input: targets are compared with the inputs by resolved path and by
file identity (hard links), ``--overwrite`` or not.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from .argtypes import positive_int
from .argtypes import provider as provider_arg

try:  # POSIX; elsewhere concurrent runs are not guarded (resumption still works)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = ["add_segment_parser", "run_segment", "RECORD_DIR"]

#: Folder in ``--out`` holding one record per image (see the module notes).
RECORD_DIR = ".sin-segment"
_RECORD_VERSION = 1


def _max_pixels(text: str):
    if text.strip().lower() == "none":
        return None
    value = positive_int(text)
    if value < 4:
        raise argparse.ArgumentTypeError(f"expected an integer >= 4 or 'none', got {text}")
    return value


def add_segment_parser(sub) -> argparse.ArgumentParser:
    from .parallel import add_executor_args

    p = sub.add_parser(
        "segment",
        help="superpixels for images or folders of images",
        description="Write a label map (<stem>.<format>) and a boundary overlay (<stem>_overlay.png) for every "
                    "input image into --out. Inputs are never overwritten; outputs of another run only with "
                    "--overwrite. Any failure of one image (unreadable file, provider error) does not stop the run: "
                    "the others are processed, every failure is listed at the end and the exit code is 1 "
                    "(--fail-fast stops at the first one).\n\n"
                    "Resumable: outputs are written atomically (a file that exists is complete) and "
                    f"--out/{RECORD_DIR}/<label file>.json records the input's sha256, the provider's fingerprint, "
                    "-k and the options. Run the same command again after a kill: finished images are skipped, the "
                    "others done. Outputs of a different command are never taken as done. Two runs into one --out "
                    "never replace each other's files (the second fails that image).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
                   help="recompute and replace outputs already in --out (inputs are never replaced)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first image that fails")
    p.add_argument("--downscale", action="store_true",
                   help="images above the provider's size limit run on a reduced copy (labels upsampled)")
    p.add_argument("--max-pixels", type=_max_pixels, default=argparse.SUPPRESS, metavar="N|none",
                   help="size limit in pixels (default: the provider's, see `python -m sin providers`; "
                        "none: no limit)")
    p.add_argument("--stretch", action="store_true",
                   help="map each image's own min..max to the full range (default: scale by the file's bit depth)")
    add_executor_args(p, processes=1)
    p.set_defaults(func=run_segment)
    return p


# ---------------------------------------------------------------------------------- checks
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
    """Output paths per input, refusing collisions with inputs (by path or file identity) and between inputs."""
    plan = [(out / f"{f.stem}.{fmt}", out / f"{f.stem}_overlay.png" if overlay else None) for f in files]
    inputs = {os.path.realpath(f): f for f in files}
    identities = {}
    for f in files:
        st = f.stat()
        identities[(st.st_dev, st.st_ino)] = f
    seen: dict[str, Path] = {}
    for src, (labels, over) in zip(files, plan):
        for t in filter(None, (labels, over, _record_path(out, labels))):
            real = os.path.realpath(t)
            try:
                st = os.stat(t)
                same = identities.get((st.st_dev, st.st_ino))
            except OSError:
                same = None
            hit = inputs.get(real) or same
            if hit is not None:
                raise ValueError(f"output {t} would overwrite the input image {hit}; choose another --out folder")
            if real in seen:
                raise ValueError(f"{seen[real]} and {src} would both be written to {t}; "
                                 "segment them into separate --out folders")
            seen[real] = src
    return plan


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    try:
        (out / RECORD_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {out} is not writable")


# ---------------------------------------------------------------------------------- claims
def _record_path(out: Path, label_path: Path) -> Path:
    return out / RECORD_DIR / f"{label_path.name}.json"


@dataclass
class _Claim:
    """An image this process works on: its record is locked (``fd``) until it is finished or released."""

    source: Path
    targets: tuple
    record: Path
    fd: int
    identity: dict
    fresh: bool  # no record before: release removes it again
    exclusive: bool  # outputs did not exist: create them exclusively


class _Claims:
    """Decides per image: done (skip), to do (claimed, locked) or not ours (a failure message)."""

    def __init__(self, overwrite: bool):
        self.overwrite = overwrite
        self.held: dict[int, _Claim] = {}

    def claim(self, source: Path, targets: tuple, record: Path, identity: dict):
        """``"done"``, a :class:`_Claim`, or the message of why this image is not done here."""
        fd = self._lock(record)
        if isinstance(fd, str):
            return fd
        try:
            raw = os.read(fd, 1 << 20)
            rec = json.loads(raw) if raw.strip() else None
        except (OSError, ValueError):
            rec = {"identity": "unreadable"}
        outputs = [t for t in targets if t is not None]
        same = isinstance(rec, dict) and rec.get("identity") == identity
        status = rec.get("status") if same else None
        if status == "complete" and all(t.exists() for t in outputs) and not self.overwrite:
            os.close(fd)
            return "done"
        # what this command may replace: outputs of its own earlier (killed) run, nothing else
        refused = None if self.overwrite or status in ("running", "complete") else _refusal(rec, identity, outputs)
        if refused is not None:
            if rec is None:  # the empty record was created just now, by this claim
                os.remove(record)
            os.close(fd)
            return refused
        claim = _Claim(source, targets, record, fd, identity, fresh=rec is None,
                       exclusive=rec is None and not self.overwrite)
        self._write(claim, "running")
        self.held[id(claim)] = claim
        return claim

    @staticmethod
    def _lock(record: Path):
        for _ in range(5):
            fd = os.open(record, os.O_RDWR | os.O_CREAT, 0o666)
            if fcntl is None:
                return fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return f"another `python -m sin segment` is writing its outputs right now (record {record} is locked)"
            try:  # a finishing run may have renamed a new record over the one we opened
                if os.fstat(fd).st_ino == os.stat(record).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
        return f"its record {record} keeps changing (another run is writing it)"

    @staticmethod
    def _write(claim: _Claim, status: str, **extra) -> None:
        rec = {"version": _RECORD_VERSION, "status": status, "identity": claim.identity, "input": str(claim.source),
               "outputs": [t.name for t in claim.targets if t is not None], "pid": os.getpid(),
               "host": socket.gethostname(), **extra}
        data = (json.dumps(rec, indent=1) + "\n").encode()
        if status != "complete":  # in place: the lock is on this file
            os.ftruncate(claim.fd, 0)
            os.pwrite(claim.fd, data, 0)
        else:  # whole or not at all
            from .io import atomic_write

            atomic_write(claim.record, lambda tmp: Path(tmp).write_bytes(data))

    def finish(self, claim: _Claim, labels: np.ndarray, image, fmt: str, **extra) -> None:
        """Write the outputs (exclusively where they did not exist), then the complete record."""
        from .io import write_labels, write_overlay

        label_path, overlay_path = claim.targets
        write_labels(labels, label_path, fmt, exclusive=claim.exclusive)
        claim.fresh = False  # an output of ours exists now: keep the record that says so
        if overlay_path is not None:
            write_overlay(image, labels, overlay_path, exclusive=claim.exclusive)
        self._write(claim, "complete", **extra)
        self.release(claim)

    def release(self, claim: _Claim, conflict: bool = False) -> None:
        """Unlock (a fresh record of an image that produced nothing is removed). ``conflict``: another
        writer created an output meanwhile; the record keeps a later run from replacing it."""
        if self.held.pop(id(claim), None) is None:
            return
        if conflict:
            self._write(claim, "conflict")
        elif claim.fresh:
            try:
                os.remove(claim.record)
            except FileNotFoundError:
                pass
        os.close(claim.fd)

    def release_all(self) -> None:
        for claim in list(self.held.values()):
            self.release(claim)


def _refusal(rec, identity: dict, outputs: list) -> str | None:
    """Why an image's outputs are not this command's to write (``None``: nothing there yet)."""
    out = outputs[0].parent
    if isinstance(rec, dict) and rec.get("identity") == identity:  # status "conflict"
        return (f"another program created one of its outputs in {out} during an earlier run; "
                "pass --overwrite to replace it or choose another --out")
    if rec is not None:
        return (f"its outputs in {out} are from another run ({_difference(rec, identity)}); "
                "pass --overwrite to replace them or choose another --out")
    existing = [t for t in outputs if t.exists()]
    if existing:
        return (f"{existing[0].name} already exists in {out} and was not written by `python -m sin segment`; "
                "pass --overwrite to replace it or choose another --out")
    return None


def _difference(rec, identity: dict) -> str:
    """How a record differs from this run: the same words for every image of one earlier run."""
    theirs = rec.get("identity") if isinstance(rec, dict) else None
    if not isinstance(theirs, dict):
        return "its record is unreadable"
    if theirs.get("input_sha256") != identity["input_sha256"]:
        return f"made from another input file, {rec.get('input', '?')}"
    diffs = [f"{k} {theirs.get(k)} instead of {identity.get(k)}" for k in sorted(set(theirs) | set(identity))
             if theirs.get(k) != identity.get(k) and k != "fingerprint"]
    return "made with " + (", ".join(diffs) if diffs else "another provider version or weights")


def _identity(provider, args, call: dict) -> dict:
    return {"provider": provider.spec_string(), "fingerprint": provider.fingerprint, "n_segments": args.n_segments,
            "format": args.format, "overlay": not args.no_overlay, "stretch": bool(args.stretch),
            **{k: call[k] for k in sorted(call)}}


# ---------------------------------------------------------------------------------- the command
def _outputs(seg, overlay: bool):
    """Runs in the worker: what the main process writes (the pixels only for the overlay)."""
    from .image import as_uint8_rgb

    return seg.labels, (as_uint8_rgb(seg.image) if overlay else None), seg.seconds


def _message(failure) -> str:
    """One line: the exception's text (its type too, unless it is an expected kind)."""
    from .parallel import ImageTooLarge

    if isinstance(failure.exception, ImageTooLarge):
        return failure.exception.advice("pass --downscale", "--max-pixels none (or a larger limit)")
    kind, _, text = failure.error.partition(": ")
    return text if kind in ("ValueError", "FileNotFoundError", "PermissionError") and text else failure.error


def run_segment(args) -> int:
    from tqdm import tqdm

    from .fingerprint import file_sha256
    from .io import list_images, read_image
    from .parallel import Failure, executor_from_args, iter_label_maps

    provider = args.provider if not isinstance(args.provider, str) else provider_arg(args.provider)
    _check_provider(provider)
    files = list_images(args.inputs)
    if not files:
        raise FileNotFoundError(f"no images found in {', '.join(map(str, args.inputs))}")
    plan = _plan_outputs(files, args.out, args.format, not args.no_overlay)
    _prepare_out(args.out)
    call = {"downscale": True} if args.downscale else {}
    if "max_pixels" in vars(args):
        call["max_pixels"] = args.max_pixels
    base = _identity(provider, args, call)
    claims = _Claims(args.overwrite)
    submitted: list[_Claim] = []
    failures: list[tuple[Path, str]] = []
    skipped = 0

    def todo():  # claimed lazily, a bounded window ahead of the workers
        nonlocal skipped
        for path, targets in zip(files, plan):
            try:
                identity = {**base, "input_sha256": file_sha256(path)}
            except OSError as exc:  # unreadable input: that image's failure
                got = f"cannot read image {path}: {exc.strerror or exc}"
            else:
                got = claims.claim(path, targets, _record_path(args.out, targets[0]), identity)
            if got == "done":
                skipped += 1
            elif isinstance(got, str):
                failures.append((path, got))
                if args.fail_fast:
                    return
            else:
                submitted.append(got)
                yield path

    times, counts = [], []
    name = provider.spec_string()
    with executor_from_args(args) as executor:
        results = iter_label_maps(provider, todo(), args.n_segments, executor=executor,
                                  then=partial(_outputs, overlay=not args.no_overlay),
                                  reader=partial(read_image, dtype=None, stretch=args.stretch), **call)
        # tqdm on a terminal only (disable=None): logs and captured stderr stay free of progress bars
        bar = tqdm(results, total=len(files), desc=f"{name} k={args.n_segments}", unit="img",
                   disable=None if len(files) > 1 else True)
        try:
            for i, result in bar:
                claim = submitted[i]
                if isinstance(result, Failure):
                    claims.release(claim)
                    failures.append((claim.source, _message(result)))
                else:
                    labels, image, seconds = result
                    try:
                        claims.finish(claim, labels, image, args.format, n_superpixels=int(labels.max()) + 1,
                                      seconds=round(seconds, 4))
                        times.append(seconds)
                        counts.append(int(labels.max()) + 1)
                    except FileExistsError as exc:  # someone else created it meanwhile: theirs stays
                        claims.release(claim, conflict=True)
                        failures.append((claim.source, f"{Path(exc.filename).name} {exc.strerror}"))
                    except OSError as exc:  # disk full, folder removed, ...: the next image would fail the same way
                        raise OSError(f"cannot write the outputs of {claim.source.name} to {args.out}: "
                                      f"{exc.strerror or exc}") from None
                if failures and args.fail_fast:
                    break
        finally:
            bar.close()
            results.close()
            claims.release_all()
    return _report(args, files, name, times, counts, skipped, failures)


def _report(args, files, name, times, counts, skipped, failures) -> int:
    done = len(counts)
    if args.fail_fast and failures:
        path, msg = failures[0]
        print(f"error: {path}: {msg}", file=sys.stderr)
        return 2
    if done:
        print(f"{done} image(s) -> {args.out}: {np.mean(counts):.0f} superpixels on average, "
              f"median {1000 * np.median(times):.1f} ms per image ({name})"
              + (f"; {skipped} already complete" if skipped else ""))
    elif skipped:
        print(f"{skipped} image(s) already complete in {args.out}" + ("" if failures else
                                                                      " (nothing to do; --overwrite recomputes them)"))
    if not failures:
        return 0
    order = {path: i for i, path in enumerate(files)}
    failures = sorted(failures, key=lambda f: order.get(f[0], len(order)))  # input order, whoever finished first
    head = f"error: {len(failures)} of {len(files)} image(s) failed"
    messages = {msg for _, msg in failures}
    if not done and not skipped and len(messages) == 1 and len(failures) > 1:
        # the same error everywhere (e.g. a bad provider parameter value): say it once
        print(f"error: all {len(files)} images failed: {messages.pop()}", file=sys.stderr)
        return 2
    if len(failures) == 1:
        print(f"{head}: {failures[0][0]}: {failures[0][1]}", file=sys.stderr)
    else:
        print(head + ":", file=sys.stderr)
        for path, msg in failures:
            print(f"  {path}: {msg}", file=sys.stderr)
    return 1 if done or skipped else 2
