"""argparse types shared by every command line of the toolkit: checked up front, one-line errors.

>>> parser.add_argument("--n-segments", type=positive_int)
>>> parser.add_argument("--gamma", type=number(float, "--gamma", low=0, low_open=True, high=1))
>>> parser.add_argument("--provider", type=provider)   # NAME[:key=value,...] or package.module:function
"""

from __future__ import annotations

import argparse
import math

__all__ = ["non_negative_int", "number", "positive_float", "positive_int", "provider"]


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
