"""ERS gives the same label map on every CPU (issue 14).

ERS's greedy decides on exact floating-point comparisons of gains, and on the sign of round-off
residuals of the self-loops (a negative residual makes a gain NaN -> 0), so a 1-ulp change of an
edge weight can change the label map: with numpy's ``exp`` the maps differed between AVX-512 and
AVX2 machines. ``sin.providers.ers`` now computes its weights from a correctly rounded table and
its logarithms with basic IEEE operations only; these tests compare against label maps stored in
``tests/data/ers_reference_v1.npz`` (made by this module, see ``_make_fixture``), bit for bit,
in this process, with numpy's AVX-512 kernels switched off and with numba compiling for a generic
x86-64 CPU.

The stored inputs are pixels (a 64x80 crop of ``sin/data/sample.jpg`` and a BSDS-like synthetic
image), not the JPEG, so that a different JPEG decoder cannot change them.
"""

import math
import os
import subprocess
import sys
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import pytest

from sin.providers import get_provider
from sin.providers.ers import _log, edge_weights, ers

if __name__ == "__main__":  # run as a script (writing the fixture): conftest.py is in tests/
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from conftest import TESTS_DIR, TEST_DATA  # noqa: E402

FIXTURE = TEST_DATA / "ers_reference_v1.npz"
#: (name, K, connectivity) of the stored label maps
CASES = (("sample", 50, 4), ("synthetic", 50, 4), ("synthetic", 120, 4), ("synthetic", 40, 8))
#: numpy's AVX-512 dispatch targets (numpy >= 1.25 reads this at import and uses the AVX2 paths)
NPY_NO_AVX512 = "AVX512F,AVX512CD,AVX512_SKX,AVX512_CLX,AVX512_CNL,AVX512_ICL,AVX512_SPR"


def _synthetic_image(h=60, w=80, seed=3):
    """BSDS-like test image from integer operations only: a few smooth colour regions with
    gradients, a thin line, and noise (identical on every platform)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), dtype=np.int64)
    img[:] = (90, 120, 60)                                      # grass
    sky = yy * 5 < 2 * h + (xx % 17)                            # ragged horizon
    img[sky] = np.stack([150 + yy[sky], 180 + yy[sky] // 2, np.full(sky.sum(), 230)], -1)
    disk = (yy - 38) ** 2 + (xx - 50) ** 2 < 14 ** 2            # an object
    img[disk] = (200, 60, 40)
    img[(xx - yy == 10) & ~disk] = (30, 30, 30)                 # a thin dark line
    img += rng.integers(-12, 13, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _sample_crop():
    from sin.io import SAMPLE_IMAGE, read_image

    return np.ascontiguousarray(read_image(SAMPLE_IMAGE)[100:164, 180:260, :3])


def _make_fixture(path=FIXTURE):
    """Write the reference file (run once, by hand: ``python tests/sin/providers/test_ers_determinism.py``)."""
    images = {"sample": _sample_crop(), "synthetic": _synthetic_image()}
    arrays = {f"{name}_image": img for name, img in images.items()}
    for name, k, conn in CASES:
        arrays[f"{name}_k{k}_c{conn}"] = ers(images[name], k, connectivity=conn)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def _check_fixture() -> list:
    """Names of the stored cases whose label map differs from ERS now (run in subprocesses too)."""
    ref = np.load(FIXTURE)
    bad = []
    for name, k, conn in CASES:
        img = ref[f"{name}_image"]
        want = ref[f"{name}_k{k}_c{conn}"]
        for got in (ers(img, k, connectivity=conn),
                    get_provider("ers", connectivity=conn)(img, k),            # float32 route
                    ers(img.astype(np.float64) / 255.0, k, connectivity=conn)):  # float input
            if got.dtype != want.dtype or not np.array_equal(got, want):
                bad.append(f"{name}_k{k}_c{conn}")
                break
    return bad


# ------------------------------------------------------------------------------------------
# the stored label maps
# ------------------------------------------------------------------------------------------

def test_fixture_is_sane():
    ref = np.load(FIXTURE)
    assert ref["sample_image"].shape == (64, 80, 3) and ref["sample_image"].dtype == np.uint8
    assert np.array_equal(ref["synthetic_image"], _synthetic_image())  # the generator is stable
    for name, k, conn in CASES:
        labels = ref[f"{name}_k{k}_c{conn}"]
        assert labels.dtype == np.int32 and labels.max() + 1 >= k
        if conn == 4:
            assert labels.max() + 1 == k


def test_label_maps_identical_to_stored():
    assert _check_fixture() == []


def _run_check(env_extra, tmp_path):
    env = {**os.environ, **env_extra, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    path = [str(Path(__file__).parent), str(TESTS_DIR)]  # this module and the conftest it imports
    code = (f"import sys; sys.path[:0] = {path!r}; import test_ers_determinism as t; "
            "bad = t._check_fixture(); print('BAD', bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def test_label_maps_identical_without_numpy_avx512(tmp_path):
    # numpy's float64 exp/log have AVX-512F kernels that round differently from the AVX2 ones;
    # with them switched off the label maps must not change (on a CPU without AVX-512 numpy
    # ignores the variable, and the test still checks the stored maps)
    proc = _run_check({"NPY_DISABLE_CPU_FEATURES": NPY_NO_AVX512}, tmp_path)
    assert "BAD []" in proc.stdout


@pytest.mark.slow
def test_label_maps_identical_with_generic_numba_target(tmp_path):
    # numba compiled for a baseline x86-64 CPU (no AVX, no FMA) and without SVML: recompiles
    # everything (slow), then must reproduce the maps made with host-specific code
    proc = _run_check({"NUMBA_CPU_NAME": "generic", "NUMBA_DISABLE_INTEL_SVML": "1",
                       "NPY_DISABLE_CPU_FEATURES": NPY_NO_AVX512}, tmp_path)
    assert "BAD []" in proc.stdout


# ------------------------------------------------------------------------------------------
# the two deterministic pieces
# ------------------------------------------------------------------------------------------

def _exact_exp(x: Decimal) -> float:
    with localcontext() as ctx:
        ctx.prec = 60
        return float(x.exp())


@pytest.mark.parametrize("sigma", [5.0, 0.7, 33.3])
def test_edge_weights_are_the_nearest_doubles(sigma):
    l1 = np.arange(766)
    for diagonal, factor in ((False, 1), (True, 2)):
        got = edge_weights(l1, np.full(l1.shape, diagonal), sigma=sigma)
        with localcontext() as ctx:
            ctx.prec = 60
            two_var = 2 * (3 * Decimal(sigma)) ** 2
            want = [_exact_exp(-Decimal(factor * d * d) / two_var) for d in l1.tolist()]
        assert got.tolist() == want
    # hand values: d = 0 gives 1; d = 15 (= sigma_eff at sigma 5) gives exp(-1/2)
    assert edge_weights(np.array([0, 15]), sigma=5.0).tolist() == [1.0, 0.6065306597126334]
    with pytest.raises(ValueError, match="0..765"):
        edge_weights(np.array([766]))


def test_log_is_within_one_ulp_and_exact_where_it_must_be():
    rng = np.random.default_rng(0)
    xs = np.concatenate([np.exp(rng.uniform(-740, 700, 3000)), rng.uniform(0.5, 2.0, 3000),
                         1.0 + rng.uniform(-3e-6, 3e-6, 500), [5e-324, 2.5e-308, 1.7e308]])
    with localcontext() as ctx:
        ctx.prec = 40
        for x in xs.tolist():
            exact = Decimal(x).ln()
            err = abs(Decimal(_log(x)) - exact) / Decimal(math.ulp(float(exact)))
            assert err < 1, (x, float(err))
    assert _log(1.0) == 0.0
    assert [_log(2.0 ** k) for k in (-1074, -3, 1, 1023)] == [k * math.log(2.0) for k in (-1074, -3, 1, 1023)]
    assert _log(0.0) == -math.inf and math.isnan(_log(-1.0)) and math.isnan(_log(math.nan))


if __name__ == "__main__":
    _make_fixture()
    print(f"wrote {FIXTURE}")
