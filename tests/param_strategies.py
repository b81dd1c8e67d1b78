"""Hypothesis strategies over the parameters every provider declares (``entry.declared``), and the
fuzz loop that runs providers with valid values; used by ``test_fuzz.py``.

The loop prints each case (flushed) before running it, so that when a native library kills the
process (SEEDS' segfaults, fast-slic's SIGFPE) the parent running it in a subprocess can show the
case that did it: ``python tests/param_strategies.py NAME [NAME ...]``.
"""

from __future__ import annotations

import json
import math
import sys
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sin
from sin.providers.params import Param
from sin.providers.registry import lookup

#: providers whose native code has crashed the process on bad values: fuzzed in a subprocess
NATIVE = ("seeds", "lsc", "fastslic")
#: float parameters without an upper bound are drawn up to this
FLOAT_CAP = 1e4


def valid_values(decl) -> st.SearchStrategy:
    """Values the declaration allows: the edges of the range and values near the low edge (large
    iteration counts only at the edge, to keep runs short)."""
    if not isinstance(decl, Param):  # the weights parameter: the default file
        return st.none()
    if decl.kind == "bool":
        return st.booleans()
    if decl.kind == "choice":
        return st.sampled_from(decl.choices)
    if decl.kind == "device":
        return st.just("cpu")
    lo = decl.low if decl.low is not None else -FLOAT_CAP
    if decl.kind == "int":
        lo, hi = int(lo), int(decl.high if decl.high is not None else lo + 1000)
        return st.one_of(st.sampled_from(sorted({lo, hi})), st.integers(lo, min(hi, lo + 12)))
    hi = decl.high if decl.high is not None else max(FLOAT_CAP, lo + FLOAT_CAP)
    edges = [v for v, open_ in ((lo, decl.low_open), (hi, decl.high_open)) if not open_]
    near = st.floats(lo, min(hi, lo + 50), exclude_min=decl.low_open, exclude_max=decl.high_open and hi <= lo + 50,
                     allow_nan=False, allow_infinity=False)
    anywhere = st.floats(lo, hi, exclude_min=decl.low_open, exclude_max=decl.high_open,
                         allow_nan=False, allow_infinity=False)
    return st.one_of(*([st.sampled_from(edges)] if edges else []), near, anywhere)


def invalid_values(decl) -> st.SearchStrategy:
    """Values the declaration refuses: out of range, wrong type, non-finite, None."""
    wrong_type = st.one_of(st.text(max_size=4), st.lists(st.integers(), max_size=2), st.just(object()))
    if not isinstance(decl, Param):  # weights: a tag, a path or None
        return st.one_of(st.integers(), st.floats(), st.booleans(), st.just(""), st.lists(st.text(), max_size=2))
    if decl.kind == "bool":
        return st.one_of(st.integers(), st.floats(), st.text(max_size=4), st.none())
    if decl.kind == "choice":
        return st.one_of(st.text(max_size=6), st.integers(), st.floats(), st.none()).filter(
            lambda v: decl.problem(v) is not None)
    if decl.kind == "device":
        return st.one_of(st.integers(), st.none(), st.sampled_from(["", "gpu0", "cuda:x", "nodevice", "meta"]))
    out = [wrong_type, st.none(), st.booleans(), st.sampled_from([math.nan, math.inf, -math.inf])]
    if decl.kind == "int":
        out.append(st.floats())  # 2.0 too: an integer parameter takes ints
        if decl.low is not None:
            out.append(st.integers(max_value=int(decl.low) - 1))
        if decl.high is not None:
            out.append(st.integers(min_value=int(decl.high) + 1))
    else:
        if decl.low is not None:
            out.append(st.floats(max_value=decl.low, exclude_max=not decl.low_open, allow_nan=False,
                                 allow_infinity=False))
        if decl.high is not None:
            out.append(st.floats(min_value=decl.high, exclude_min=not decl.high_open, allow_nan=False,
                                 allow_infinity=False))
    return st.one_of(*out)


def valid_params(name: str) -> st.SearchStrategy:
    """A dict of valid values for some of ``name``'s declared parameters."""
    declared = lookup(name).declared
    return st.fixed_dictionaries({}, optional={k: valid_values(d) for k, d in declared.items()})


@st.composite
def small_images(draw):
    h, w = draw(st.integers(16, 40)), draw(st.integers(16, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    img = rng.random((h, w, 3)).astype(np.float32)
    if draw(st.booleans()):  # blocks: structure to segment
        small = rng.random((4, 4, 3))
        img = small[(np.arange(h) * 4) // h][:, (np.arange(w) * 4) // w].astype(np.float32)
    return img, draw(st.integers(1, min(80, h * w // 4)))


def fuzz_valid(name: str, examples: int) -> int:
    """Run ``name`` with ``examples`` drawn parameter sets on small images; each run must give a
    well-formed map or a ``ValueError`` that names the provider. Returns the number of runs."""
    runs = []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(params=valid_params(name), case=small_images())
    def run(params, case):
        img, k = case
        print(json.dumps({"provider": name, "params": params, "shape": img.shape, "k": k}, default=repr), flush=True)
        p = sin.get_provider(name, **params)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                labels = p(img, k, check=True)
        except ValueError as exc:  # a refusal must say whose
            assert name in str(exc).lower(), f"{name}: {exc}"
            return
        assert labels.shape == img.shape[:2] and labels.dtype == np.int32
        runs.append(1)

    run()
    return len(runs)


if __name__ == "__main__":  # the subprocess of test_fuzz.test_native_provider_parameters_never_crash
    for arg in sys.argv[1:]:
        provider, _, n = arg.partition("=")
        print(f"done {provider}: {fuzz_valid(provider, int(n or 12))} runs", flush=True)
