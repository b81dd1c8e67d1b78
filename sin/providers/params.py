"""Declared provider parameters: types and allowed ranges, checked before any method runs.

Every built-in provider declares each of its parameters in its :func:`~sin.providers.register_provider`
decorator (``params={"compactness": Float(low=0, low_open=True), ...}``), so a bad value gets one
``ValueError`` naming the provider, the parameter and the allowed range when the provider is made
(:func:`~sin.providers.get_provider`, :meth:`~sin.providers.Provider.with_params`), before native code
that would crash on it (OpenCV's SEEDS segfaults on ``histogram_bins=0``; fast-slic dies with SIGFPE on
``subsample_stride=0``). The defaults stay in the provider function's signature, written once.

The same declarations list the parameters in ``python -m sin providers``. This module also holds the
text form of values in the CLI syntax ``name:key=value,...`` (:func:`parse_value`, :func:`format_value`).
"""

from __future__ import annotations

import ast
import math
import numbers
from dataclasses import dataclass

__all__ = ["Bool", "Choice", "Device", "Float", "Int", "Param", "check_params", "format_value", "parse_value"]

OUT_OF_RANGE = "out of range"
#: torch device types a provider can run on (``meta``, ``xla`` etc. parse but hold no data here)
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


@dataclass(frozen=True)
class Param:
    """One declared parameter: its kind (``"int"``, ``"float"``, ``"bool"``, ``"choice"``,
    ``"device"``) and allowed range; make one with :func:`Int`, :func:`Float`, :func:`Bool`,
    :func:`Choice` or :func:`Device`."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    allow_none: bool = False
    help: str = ""

    def describe(self) -> str:
        """The allowed values in words, e.g. ``"a number > 0"``, ``"an integer in [1, 31]"``."""
        if self.kind == "bool":
            text = "True or False"
        elif self.kind == "choice":
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.kind == "device":
            text = "a torch device: " + ", ".join(DEVICE_TYPES) + " (cuda:1 for a numbered one)"
        else:
            what = "an integer" if self.kind == "int" else "a finite number"
            if self.low is not None and self.high is not None:
                text = f"{what} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
            elif self.low is not None:
                text = f"{what} {'>' if self.low_open else '>='} {self.low:g}"
            elif self.high is not None:
                text = f"{what} {'<' if self.high_open else '<='} {self.high:g}"
            else:
                text = what
        return text + (" or None" if self.allow_none else "")

    def problem(self, value) -> str | None:
        """Why ``value`` is not allowed, or ``None`` when it is."""
        if value is None:
            return None if self.allow_none else "None is not allowed"
        if self.kind == "bool":
            return None if isinstance(value, bool) or type(value).__name__ == "bool_" else "not a boolean"
        if self.kind == "choice":
            return None if any(_same_choice(value, c) for c in self.choices) else OUT_OF_RANGE
        if self.kind == "device":
            return _device_problem(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"not a number ({type(value).__name__})"
        if self.kind == "int" and not isinstance(value, numbers.Integral):
            return "not an integer"
        if not math.isfinite(float(value)):
            return "not finite"
        v = float(value)
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return OUT_OF_RANGE
        if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
            return OUT_OF_RANGE
        return None


def Int(low: int | None = None, high: int | None = None, *, allow_none: bool = False, help: str = "") -> Param:  # noqa: N802
    """An integer in ``[low, high]`` (``None``: unbounded on that side)."""
    return Param("int", low, high, allow_none=allow_none, help=help)


def Float(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False,  # noqa: N802
          allow_none: bool = False, help: str = "") -> Param:
    """A finite real number in ``[low, high]`` (``low_open``/``high_open``: excluding the bound);
    integers are accepted as they are (not converted: the value enters the cache key as given)."""
    return Param("float", low, high, low_open, high_open, allow_none=allow_none, help=help)


def Bool(*, help: str = "") -> Param:  # noqa: N802
    """``True`` or ``False``."""
    return Param("bool", help=help)


def Choice(*choices, help: str = "") -> Param:  # noqa: N802
    """One of ``choices`` (compared by value and type)."""
    return Param("choice", choices=tuple(choices), help=help)


def Device(*, help: str = "") -> Param:  # noqa: N802
    """A torch device string; whether the machine has it is checked when the method runs."""
    return Param("device", help=help)


def _same_choice(value, choice) -> bool:
    """``value == choice`` without letting ``True == 1`` or ``"4" == 4`` through (``4.0`` is 4)."""
    if isinstance(value, bool) or isinstance(choice, bool):
        return value is choice or (type(value).__name__ == "bool_" and bool(value) is choice)
    if isinstance(value, str) or isinstance(choice, str):
        return isinstance(value, str) and isinstance(choice, str) and value == choice
    return isinstance(value, numbers.Number) and value == choice


def _device_problem(value) -> str | None:
    if not isinstance(value, str):
        return f"not a device name ({type(value).__name__})"
    import torch  # only for methods that declare a device (they use torch anyway)

    try:
        kind = torch.device(value).type
    except (RuntimeError, TypeError, ValueError):
        return "not a torch device"
    return None if kind in DEVICE_TYPES else f"a {kind!r} device cannot run a provider"


def check_params(provider: str, declared: dict, params: dict) -> None:
    """Raise one ``ValueError`` naming ``provider``, the parameter and its allowed range for the
    first value in ``params`` that its declaration (``declared[key]``: a :class:`Param`, or any
    object with ``problem(value)`` and ``describe()``) does not allow."""
    for key, value in params.items():
        spec = declared.get(key)
        if spec is None:
            continue
        why = spec.problem(value)
        if why is not None:
            raise ValueError(f"provider {provider!r}: parameter {key!r} must be {spec.describe()}, "
                             f"got {value!r}" + (f" ({why})" if why != OUT_OF_RANGE else ""))


# ------------------------------------------------------------------------------ values as text
def parse_value(text: str):
    """A parameter value from the CLI syntax: a Python literal (``20``, ``0.5``, ``False``,
    ``None``, ``'a b'``), else the bare word as a string (a path, a device, a weights tag)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def format_value(value) -> str:
    """``value`` as :func:`parse_value` reads it back (bare words stay bare: fp32, cuda, msrc21)."""
    if isinstance(value, str) and value and parse_value(value) == value and not any(c in value for c in ",=: "):
        return value
    return repr(value)
