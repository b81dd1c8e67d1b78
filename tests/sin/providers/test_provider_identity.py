"""What a provider *is*, for the label cache and for worker processes (issue 23 items 3 and 5, issue 24 item 1).

* User code is cached across processes only when it declares its identity (``version=``/``code=``
  at registration, ``@version`` on an import path); closures, lambdas and ``exec``'d functions that
  did not are kept apart and in memory only.
* Weights identity follows the bytes, also when a snapshot is copied over the weights with its old
  modification time (``cp -p``): the predictor cache and the fingerprint load the new network.
* A provider pickles by registry name and parameters and is re-resolved from the registry.
* An import path whose module fails on import is one ``ValueError`` line.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT
import sin
from sin.providers import LabelCache, register_provider
from sin.providers import registry

ROOT = REPO_ROOT


def _bands(n):
    def bands(image, n_segments):
        return (np.arange(image.shape[0]) * n // image.shape[0])[:, None].repeat(image.shape[1], 1)
    return bands


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """An importable package ``idpkg`` with ``mod.blocks``, a helper module and modules that fail on import."""
    pkg = tmp_path / "idpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("K = 2\n")
    (pkg / "mod.py").write_text(textwrap.dedent("""
        import numpy as np
        from idpkg import helper

        def blocks(image, n_segments):
            h, w = image.shape[:2]
            return (np.arange(w)[None, :] * helper.K // w).repeat(h, 0)
    """))
    (pkg / "raises.py").write_text("raise RuntimeError('no GPU here')\n")
    (pkg / "syntax.py").write_text("def f(:\n")
    (pkg / "exits.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for m in [m for m in sys.modules if m == "idpkg" or m.startswith("idpkg.")]:
        sys.modules.pop(m, None)


def _fingerprints_in_another_process(root: Path, specs: list[str]) -> list[str]:
    code = ("import sys, sin; sys.path.insert(0, sys.argv[1]); "
            "print(' '.join(sin.get_provider(s).fingerprint for s in sys.argv[2:]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code, str(root), *specs], capture_output=True, text=True,
                         timeout=120, env=env, check=True)
    return out.stdout.split()


def test_only_declared_user_code_keeps_its_key_across_processes(user_package):
    specs = ["idpkg.mod:blocks@1", "idpkg.mod:blocks", "slic"]
    here = [sin.get_provider(s).fingerprint for s in specs]
    there = _fingerprints_in_another_process(user_package, specs)
    assert here[0] == there[0]  # declared: the same maps in every process
    assert here[1] != there[1]  # undeclared: this process only
    assert here[2] == there[2]
    assert sin.get_provider("idpkg.mod:blocks@1").persistent and not sin.get_provider("idpkg.mod:blocks").persistent
    assert sin.get_provider("idpkg.mod:blocks@2").fingerprint != here[0]
    with pytest.raises(ValueError, match="followed by a version"):
        sin.get_provider("idpkg.mod:blocks@")


def test_declared_code_follows_its_modules_and_a_version_does_not_pretend(user_package):
    from idpkg import mod

    try:
        register_provider("id_code", mod.blocks, connected=True, code=("idpkg.mod", "idpkg.helper"))
        register_provider("id_version", mod.blocks, connected=True, version="1")
        code_fp, version_fp = sin.get_provider("id_code").fingerprint, sin.get_provider("id_version").fingerprint
        helper = user_package / "idpkg" / "helper.py"
        helper.write_text("K = 3  # a new helper: the output changes\n")
        assert sin.get_provider("id_code").fingerprint != code_fp  # a declared module changed
        assert sin.get_provider("id_version").fingerprint == version_fp  # the author's version says what changed
    finally:
        registry._REGISTRY.pop("id_code", None)
        registry._REGISTRY.pop("id_version", None)


def test_lambdas_exec_and_closures_never_share_a_key():
    f, g = (lambda image, n_segments: _bands(2)(image, n_segments)), (lambda image, n_segments: _bands(3)(image, n_segments))
    namespace_a, namespace_b = {}, {}
    source = "def made(image, n_segments):\n    return image[..., 0].astype(int) * 0\n"
    exec(source, namespace_a)  # noqa: S102 - what a notebook or `python -c` does
    exec(source, namespace_b)  # noqa: S102
    fps = [sin.get_provider(x).fingerprint for x in (f, g, namespace_a["made"], namespace_b["made"], _bands(2), _bands(2))]
    assert len(set(fps)) == len(fps)
    assert sin.get_provider(f).fingerprint == fps[0]  # stable for the same object


def test_undeclared_maps_stay_in_memory_declared_ones_go_to_disk(tmp_path):
    calls = []

    def counted(image, n_segments):
        calls.append(1)
        return _bands(3)(image, n_segments)

    cache = LabelCache(tmp_path / "labels")
    img = np.random.default_rng(0).random((12, 10, 3)).astype(np.float32)
    a, _ = cache.labels(counted, img, 3)
    b, _ = cache.labels(counted, img, 3)
    assert np.array_equal(a, b) and len(calls) == 1  # served from memory in this process
    assert not list(tmp_path.rglob("*.npz"))
    try:
        register_provider("id_disk", counted, connected=True, version="1")
        cache.labels("id_disk", img, 3)
        assert len(list(tmp_path.rglob("*.npz"))) == 1 and len(calls) == 2
        cache.labels("id_disk", img, 3)
        assert len(calls) == 2
    finally:
        registry._REGISTRY.pop("id_disk", None)


@pytest.mark.parametrize("module,match", [("raises", "RuntimeError: no GPU here"), ("syntax", "SyntaxError"),
                                          ("exits", "exit code 3")])
def test_an_import_path_that_fails_on_import_is_one_value_error(user_package, module, match):
    with pytest.raises(ValueError, match=f"importing 'idpkg.{module}' failed.*{match}") as exc:
        sin.get_provider(f"idpkg.{module}:fn")
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------------------------------------ weights identity
def test_predictor_and_fingerprint_follow_weights_copied_with_their_old_mtime(tmp_path):
    """``cp -p new.pt weights.pt`` (same size, old mtime) must load the new network (issue 23 item 5)."""
    import torch

    from sin.checkpoint import load_model, save_weights

    weights, other = tmp_path / "weights.pt", tmp_path / "snapsht.pt"  # torch names its archive after the file
    for path, factor in ((weights, 1.0), (other, -1.0)):  # made alike: files of the same size
        model = load_model(None)
        with torch.no_grad():
            model.pred_mask0_v.weight.mul_(factor)
        save_weights(model, path)
    assert weights.stat().st_size == other.stat().st_size
    image = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    p = sin.get_provider("sin", weights=str(weights), precision="fp32")
    before, fp = p(image, 40), p.fingerprint
    old = weights.stat()
    shutil.copy2(other, weights)  # cp -p
    os.utime(weights, ns=(old.st_atime_ns, old.st_mtime_ns))  # and the old time stamps back
    assert weights.stat().st_mtime_ns == old.st_mtime_ns and weights.stat().st_size == old.st_size
    after = p(image, 40)
    want = sin.superpixels(image, 40, weights=str(other), precision="fp32")
    assert np.array_equal(after, want) and not np.array_equal(after, before)
    assert p.fingerprint != fp


# ------------------------------------------------------------------------------------------ pickling
def test_providers_pickle_by_registry_name_and_are_re_resolved():
    p = sin.get_provider("sin:weights=msrc21")
    q = pickle.loads(pickle.dumps(p))
    assert q == p and q.fingerprint == p.fingerprint and q.entry is p.entry
    assert b"sin_superpixels" not in pickle.dumps(p)  # the name travels, not the function
    try:
        register_provider("id_pickled", _bands(2), connected=True, version="1")
        data = pickle.dumps(sin.get_provider("id_pickled"))
        register_provider("id_pickled", _bands(4), connected=True, version="2", overwrite=True)
        r = pickle.loads(data)  # looked up again: today's registration
        assert r.entry is registry.lookup("id_pickled") and r.version == "2"
    finally:
        registry._REGISTRY.pop("id_pickled", None)
    # a function that is not registered travels by reference, as before; a lambda cannot
    r = pickle.loads(pickle.dumps(sin.get_provider(sin.providers.grid.grid_superpixels)))
    assert r.entry.fn is sin.providers.grid.grid_superpixels
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(sin.get_provider(lambda image, n_segments: image[..., 0] * 0))
