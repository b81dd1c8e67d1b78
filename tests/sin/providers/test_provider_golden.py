"""Golden outputs: every built-in provider (and weights tag) keeps its label map until its version is bumped.

Built-in providers are keyed in the label cache by an explicit ``version`` (not by their source),
so a change of output *must* come with a version bump, or stale maps would be served. This test
runs each one on a fixed image (the BSDS-like synthetic pixels stored in
``tests/data/ers_reference_v1.npz``) and compares with ``tests/data/provider_golden.json``, which
records, per provider, its version, the sha256 of its label map and the map itself.

* Same version, same map: pass. ``grid``, ``ers`` and ``fh`` must match bit for bit (integer and
  IEEE-exact arithmetic, see ``test_ers_determinism.py``). The others go through floating point
  that can differ between CPUs (numpy's AVX-512 kernels in ``rgb2lab``, torch's convolutions,
  OpenCV's dispatch), so where the digest differs they pass if the maps still agree on 99 % of the
  pixels (matched label to label, both ways).
* Output changed, same version: fail. Bump ``version=`` in the provider's ``register_provider``
  (and the pinned fingerprints in ``tests/sin/test_cache_keys.py``), then re-record.
* Version changed: re-record. Re-record with ``python tests/sin/providers/test_provider_golden.py --update``.
"""

from __future__ import annotations

import base64
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import sin
from sin.fingerprint import array_digest

if __name__ == "__main__":  # run as a script (--update): conftest.py is in tests/
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from conftest import TEST_DATA  # noqa: E402

DATA = TEST_DATA
GOLDEN = DATA / "provider_golden.json"
UPDATE = "python tests/sin/providers/test_provider_golden.py --update"
#: providers whose maps must be identical on every CPU
EXACT = {"grid", "ers", "fh"}
N_SEGMENTS = 50
#: the least agreement of the maps of a float-sensitive provider on another CPU
AGREEMENT = 0.99


def golden_specs() -> dict:
    """One spec string per built-in provider and weights tag (fixed precision: "auto" depends on the CPU)."""
    specs = {}
    for name in sin.available_providers():
        entry = sin.providers.registry.lookup(name)
        if not entry.builtin:
            continue
        fixed = ":precision=fp32" if "precision" in entry.defaults else ""
        specs[name] = name + fixed
        if entry.weights is not None:
            for tag in entry.weights.tags:
                specs[f"{name}:{entry.weights.param}={tag}"] = f"{name}:{entry.weights.param}={tag}" + fixed.replace(":", ",")
    return specs


def image() -> np.ndarray:
    return np.load(DATA / "ers_reference_v1.npz")["synthetic_image"]


def run(spec: str) -> tuple[sin.Provider, np.ndarray]:
    p = sin.get_provider(spec)
    return p, p(image(), N_SEGMENTS)


def encode(labels: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(labels.astype(np.uint16).tobytes(), 9)).decode()


def decode(text: str, shape) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint16).reshape(shape).astype(np.int32)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels in the best label-to-label match, the worse of both directions (1: same partition)."""
    pairs = a.astype(np.int64).ravel() * (int(b.max()) + 1) + b.ravel()
    joint = np.bincount(pairs, minlength=(int(a.max()) + 1) * (int(b.max()) + 1)).reshape(int(a.max()) + 1, -1)
    return min(joint.max(1).sum(), joint.max(0).sum()) / a.size


def _available(spec: str) -> sin.Provider | None:
    try:
        p = sin.get_provider(spec)
    except ValueError:
        return None
    if p.weights_file is not None and not p.weights_file.is_file():
        return None
    return p


RECORDS = json.loads(GOLDEN.read_text())["providers"] if GOLDEN.is_file() else {}


def test_every_builtin_provider_has_a_golden_record():
    missing = sorted(set(golden_specs()) - set(RECORDS))
    assert not missing, f"no golden output for {missing}: record it with `{UPDATE}`"


@pytest.mark.parametrize("key", sorted(RECORDS))
def test_output_changes_only_with_a_version_bump(key):
    rec = RECORDS[key]
    if _available(rec["spec"]) is None:
        pytest.skip(f"{rec['spec']} is not available here (optional package or weights file)")
    p, labels = run(rec["spec"])
    if p.version != rec["version"]:
        pytest.fail(f"{key}: version {rec['version']!r} -> {p.version!r}: re-record the golden output with `{UPDATE}`")
    if array_digest(labels, 64) == rec["sha256"]:
        return
    same = agreement(labels, decode(rec["labels"], rec["shape"])) if labels.shape == tuple(rec["shape"]) else 0.0
    if key not in EXACT and same >= AGREEMENT:
        return  # floating point of another CPU: the same partition up to a few boundary pixels
    pytest.fail(f"{key}: the label map changed (agreement {same:.4f} with the recorded one, {int(labels.max()) + 1} "
                f"superpixels, recorded {rec['count']}) but its version is still {p.version!r}. If the change is "
                f"intended, bump version= in its registration (and its pinned fingerprint in "
                f"tests/sin/test_cache_keys.py), then run `{UPDATE}`; otherwise the change is a bug.")


@pytest.mark.parametrize("change,match", [("output", "changed .* still '1'"), ("version", "re-record")])
def test_a_change_without_a_bump_is_caught(monkeypatch, change, match):
    """The check itself fails: a provider whose output changed but kept its version, or a bumped one."""
    import dataclasses

    from sin.providers import registry

    entry = registry.lookup("grid")
    if change == "output":
        new = dataclasses.replace(entry, fn=lambda image, n_segments: entry.fn(image, n_segments // 2))
    else:
        new = dataclasses.replace(entry, version="2")
    monkeypatch.setitem(registry._REGISTRY, "grid", new)
    with pytest.raises(pytest.fail.Exception, match=match):
        test_output_changes_only_with_a_version_bump("grid")


def test_agreement_is_a_partition_measure():
    a = np.repeat(np.arange(4), 5).reshape(4, 5)
    assert agreement(a, a) == 1.0 and agreement(a, 3 - a) == 1.0  # relabelled: the same partition
    b = a.copy()
    b[0, 0] = 1
    assert agreement(a, b) == pytest.approx(19 / 20)
    assert agreement(a, np.zeros_like(a)) == pytest.approx(5 / 20)


def update() -> None:
    records = {}
    for key, spec in golden_specs().items():
        if _available(spec) is None:
            print(f"skipped {key}: not available here", file=sys.stderr)
            if key in RECORDS:
                records[key] = RECORDS[key]
            continue
        p, labels = run(spec)
        records[key] = {"spec": spec, "version": p.version, "n_segments": N_SEGMENTS, "shape": list(labels.shape),
                        "count": int(labels.max()) + 1, "sha256": array_digest(labels, 64), "labels": encode(labels)}
    GOLDEN.write_text(json.dumps({"image": "ers_reference_v1.npz:synthetic_image", "providers": records},
                                 indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({len(records)} providers)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(f"usage: {UPDATE}")
    update()
