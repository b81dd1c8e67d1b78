"""The toolkit's command-line vocabulary: one parser class, one set of flags, one set of exit codes.

Every command line (``python -m sin``, the Bilateral Inception CLI, the benchmark scripts) is
built from the pieces here, so that a flag means the same thing everywhere:

==================  ===================================================================
``--providers``     superpixel providers, ``NAME[:key=value,...]`` or ``package.module:function``
                    (``--provider`` where a command takes one); :func:`add_provider_args`
``--dataset NAME``  which dataset (a name, never a path); :func:`add_dataset_args`
``--data-root DIR`` that dataset's folder (default ``$SIN_DATA_ROOT/<its folder>``)
``--cache DIR``     the cache root (:func:`sin.paths.cache_root`, ``$SIN_CACHE_DIR``): label
                    maps in ``DIR/labels``, other caches beside them; :func:`add_cache_args`
``--recompute``     ignore cached results (they are overwritten)
``--out DIR``       where results go; checked up front by :func:`output_dir`
==================  ===================================================================

Exit codes (:func:`run_cli`): 0 done; 1 done, but some items failed (each one is listed);
2 nothing (or not everything) was done because of a usage error or an expected failure (bad
argument, missing input, unusable ``--out``, corrupt weights, ...), reported in one line; 130
interrupted. Argument errors are one line too (:class:`Parser`), never the usage block.

Defaults are written once, in a config dataclass (:func:`config_defaults`,
:func:`config_from_args`), not repeated in every parser that offers the flag.

>>> parser = Parser(prog="python -m benchmarks.example")
>>> parser.add_argument("--n-segments", type=positive_int)
>>> parser.add_argument("--gamma", type=number(float, "--gamma", low=0, low_open=True, high=1))
>>> add_provider_args(parser, default=("slic", "sin"))
>>> def main(argv=None) -> int:
...     return cli_main(build_parser, work, argv)   # work(args) -> exit code (or anything: 0)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from pathlib import Path

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PARTIAL", "Parser", "add_cache_args", "cli_main",
           "add_dataset_args", "add_provider_args", "config_defaults", "config_from_args", "dataset_name",
           "error_message", "non_negative_int", "number", "output_dir", "positive_float", "positive_int", "provider",
           "resolve_providers", "run_cli"]

EXIT_OK = 0
#: The run finished, but some items (images, settings) failed; each one was listed.
EXIT_PARTIAL = 1
#: A usage error or an expected failure: nothing, or not everything, was done (one line on stderr).
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


# ---------------------------------------------------------------------------------- values

def number(kind=int, name: str | None = None, *, low=None, high=None, low_open: bool = False, what: str | None = None):
    """An argparse type: a finite ``kind`` within [low, high] (``low_open``: low excluded).

    The message says what was expected: ``what`` (e.g. "a positive integer") when given, else
    ``"<name> must be >= low and <= high"``.
    """

    def parse(text: str):
        noun = "an integer" if kind is int else "a number"
        try:
            value = kind(text)
        except ValueError:
            msg = f"expected {what}" if what else f"{name or 'value'} must be {noun}"
            raise argparse.ArgumentTypeError(f"{msg}, got {text!r}") from None
        bad = (not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low))
               or (high is not None and value > high))
        if bad:
            if what:
                raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
            lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
            hi = "" if high is None else f"<= {high}"
            raise argparse.ArgumentTypeError(f"{name or 'value'} must be {' and '.join(filter(None, (lo, hi)))}, "
                                             f"got {text}")
        return value

    parse.__name__ = name or (what or kind.__name__)  # argparse names the type in its messages
    return parse


positive_int = number(int, low=1, what="a positive integer")
non_negative_int = number(int, low=0, what="a non-negative integer")
positive_float = number(float, low=0, low_open=True, what="a positive number")


def provider(text: str):
    """argparse type: a :class:`sin.Provider` from ``NAME[:key=value,...]`` or ``package.module:function``."""
    from .providers import get_provider

    try:
        return get_provider(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def dataset_name(text: str) -> str:
    """argparse type: a dataset *name* (``ECSSD``, ``bsds500``); a path is refused with a hint."""
    if not text or "/" in text or os.sep in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(
            f"--dataset takes a dataset name (e.g. ECSSD, bsds500), not a path: got {text!r}; give the dataset's "
            "folder as --data-root PATH")
    return text


# ---------------------------------------------------------------------------------- parser

def error_message(exc: BaseException) -> str:
    """One line for an expected failure: the message, with an ``OSError``'s file name when it has one."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror and str(exc).startswith("["):
        msg = f"{exc.strerror}: {exc.filename}"  # "[Errno 13] Permission denied: 'x'" -> without the errno
    elif isinstance(exc, KeyError) and exc.args:
        msg = str(exc.args[0])
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with one-line errors (exit 2) and the help text laid out as written.

    argparse prints the whole usage block before an error (7 to 35 lines for the toolkit's
    commands); here it is one line naming the problem, and ``--help`` for the rest. Sub-parsers
    made with ``add_subparsers().add_parser`` are of this class too.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {' '.join(str(message).split())} (see --help)\n")


def run_cli(fn, *, expected: tuple = (ValueError, OSError), memory_hint: str = "try fewer or smaller images") -> int:
    """Call ``fn()`` and turn its outcome into an exit code.

    ``fn`` returns an exit code (``None`` counts as 0). An expected failure (``expected``:
    ``ValueError`` and ``OSError`` by default: a bad value, a missing or unreadable file, an
    unwritable folder, a full disk) ends with one ``error: ...`` line on stderr and
    :data:`EXIT_ERROR`; so does ``MemoryError``; Ctrl-C gives :data:`EXIT_INTERRUPTED`. Anything
    else is a bug and keeps its traceback.
    """
    try:
        return int(fn() or EXIT_OK)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print(f"error: out of memory ({memory_hint})", file=sys.stderr)
        return EXIT_ERROR
    except expected as exc:
        print("error: " + error_message(exc), file=sys.stderr)
        return EXIT_ERROR


def cli_main(build_parser, run, argv=None, **kwargs) -> int:
    """A script's ``main(argv)``: parse ``argv`` with ``build_parser()``, call ``run(args)`` under
    :func:`run_cli` (``kwargs`` go there). An ``int`` from ``run`` is the exit code; anything else
    (a table the Python API returns, ``None``) means done, 0."""
    args = build_parser().parse_args(argv)

    def call() -> int:
        out = run(args)
        return out if isinstance(out, int) and not isinstance(out, bool) else EXIT_OK

    return run_cli(call, **kwargs)


# ---------------------------------------------------------------------------------- flags

PROVIDER_HELP = ("superpixel provider{s}: registered names (python -m sin providers), optionally with parameters "
                 "NAME:key=value,... (e.g. slic:compactness=20, sin:weights=PATH), or package.module:function")


def add_provider_args(parser, *, default=("slic", "snic", "ers", "sin"), several: bool = True) -> None:
    """``--providers NAME[:key=value,...] ...`` and ``--skip-unavailable`` (or one ``--provider``).

    With ``several`` the values stay text (resolve them with :func:`resolve_providers`, which
    can skip the unavailable ones); a single ``--provider`` is resolved while parsing, so a bad
    one is a one-line usage error (its default too, unless ``None``).
    """
    if several:
        parser.add_argument("--providers", nargs="+", default=list(default), metavar="NAME[:k=v,...]",
                            help=PROVIDER_HELP.format(s="s"))
        parser.add_argument("--skip-unavailable", action="store_true",
                            help="drop providers that cannot be resolved instead of failing")
    else:
        parser.add_argument("--provider", type=provider, default=default, metavar="NAME[:k=v,...]",
                            help=PROVIDER_HELP.format(s=""))


def resolve_providers(specs, *, skip_unavailable: bool = False) -> list:
    """:class:`sin.providers.Provider` objects for ``--providers`` values, in order, duplicates once.

    Each value is anything :func:`sin.providers.get_provider` accepts. Values that cannot be
    resolved raise one ``ValueError`` naming all of them, unless ``skip_unavailable`` (then each
    is dropped with a note on stderr).

    Raises
    ------
    ValueError
        An unresolvable value (without ``skip_unavailable``), or no provider left.
    """
    from .providers import get_provider

    providers, problems = [], []
    for spec in specs:
        try:
            providers.append(get_provider(spec))
        except ValueError as exc:
            problems.append(str(exc))
    if problems and not skip_unavailable:
        raise ValueError("; ".join(problems) + " (or pass --skip-unavailable to run the others)")
    for p in problems:
        print(f"skipping: {p}", file=sys.stderr)
    providers = list(dict.fromkeys(providers))
    if not providers:
        raise ValueError("no provider left to run")
    return providers


def add_dataset_args(parser, *, default=None, choices=None, required: bool = False, what: str = "dataset") -> None:
    """``--dataset NAME`` (a name, never a path) and ``--data-root PATH`` (that dataset's folder).

    ``--data-root`` defaults (``None``) to the dataset's folder under :func:`sin.paths.data_root`
    (``$SIN_DATA_ROOT``), or to the dataset's own environment variable where it has one
    (``$SIN_BSDS500``): see :func:`sin.datasets.folder.dataset_root`.
    """
    parser.add_argument("--dataset", type=dataset_name, default=default, choices=choices, required=required,
                        metavar="NAME", help=f"{what} name" + (f" ({', '.join(choices)})" if choices else "")
                        + (f", default {default}" if default else ""))
    parser.add_argument("--data-root", type=Path, default=None, metavar="PATH",
                        help="the dataset's folder (default: its folder under $SIN_DATA_ROOT, ../shared/data)")


def add_cache_args(parser, *, recompute: bool = True) -> None:
    """``--cache DIR`` (the cache root; label maps in ``DIR/labels``) and ``--recompute``."""
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="cache root: label maps in DIR/labels, other caches beside them "
                             "(default $SIN_CACHE_DIR, else <repo>/cache or ~/.cache/sin)")
    if recompute:
        parser.add_argument("--recompute", action="store_true", help="ignore cached results (they are overwritten)")


def output_dir(path) -> Path:
    """Create the output folder ``path`` if needed and check that it can be written to.

    Raises
    ------
    ValueError
        ``path`` exists and is not a folder.
    OSError
        It cannot be created or written to (the message names it).
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {out} is not writable")
    return out


# ---------------------------------------------------------------------------------- defaults

def config_defaults(parser, config) -> None:
    """Take every flag's default from the dataclass ``config`` (a class or an instance).

    Fields are matched to flags by destination name (``--n-segments`` -> ``n_segments``); a field
    without a flag is an error, so that the dataclass stays the one place a default is written.
    Tuples become lists (what ``nargs="+"`` gives).
    """
    dests = {a.dest for a in parser._actions}
    values = {}
    for f in dataclasses.fields(config):
        if f.name not in dests:
            raise ValueError(f"config field {f.name!r} has no command-line flag")
        if isinstance(config, type):
            if f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                continue
        else:
            value = getattr(config, f.name)
        values[f.name] = list(value) if isinstance(value, tuple) else value
    parser.set_defaults(**values)


def config_from_args(config_cls, args, **overrides):
    """An instance of the dataclass ``config_cls`` from parsed ``args`` (lists become tuples)."""
    values = {}
    for f in dataclasses.fields(config_cls):
        if hasattr(args, f.name):
            v = getattr(args, f.name)
            values[f.name] = tuple(v) if isinstance(v, list) else v
    values.update(overrides)
    return config_cls(**values)
