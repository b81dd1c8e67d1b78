"""`python -m sin` on bad inputs: exit codes, ONE-line messages (never a traceback), inputs untouched.

Starting Python + torch costs ~3 s per process on 2 cores, so the table of bad arguments runs
through one driver subprocess that calls :func:`sin.cli.main` once per case with stdout/stderr
captured (an uncaught exception there is recorded as a traceback and fails the test); the
data-loss case and a bad provider parameter run as real ``python -m sin`` processes; the rest
calls ``main`` in process (an uncaught exception fails the test just the same).
"""

from __future__ import annotations

import errno
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from sin.cli import main
from sin.segment import RECORD_DIR

ROOT = REPO_ROOT


def _sin(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "sin", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _outputs(out: Path) -> list[str]:
    """The files a segment run wrote into ``out`` (its records folder aside)."""
    return sorted(p.name for p in out.iterdir() if p.name != RECORD_DIR)


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert "error" in lines[0]
    return lines[0]


def _photo(path: Path, shape=(24, 32), seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((rng.random(shape + (3,)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    for i in range(3):
        _photo(d / f"p{i}.png", seed=i)
    return d


# ------------------------------------------------------------------------------------------
# real `python -m sin` processes
# ------------------------------------------------------------------------------------------

def test_segment_into_the_input_folder_refuses_and_leaves_photos_untouched(photos):
    before = _hashes(photos)
    proc = _sin("segment", photos, "-o", photos, "--provider", "grid", "-k", "4")
    assert proc.returncode == 2
    assert "would overwrite the input image" in _one_error_line(proc.stderr)
    assert _hashes(photos) == before  # no photo replaced, nothing added


def test_bad_provider_parameter_is_one_line(photos, tmp_path):
    proc = _sin("segment", photos, "-o", tmp_path / "o", "--provider", "grid:cells=3")
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "grid" in line and "cells" in line
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------
# many cases, one driver process
# ------------------------------------------------------------------------------------------

_DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys, traceback
    from sin.cli import main

    results = []
    for argv in json.load(open(sys.argv[1])):
        out, err = io.StringIO(), io.StringIO()
        code, tb = None, None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
            except BaseException:
                tb = traceback.format_exc()
        results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "traceback": tb})
    json.dump(results, open(sys.argv[2], "w"))
""")


def _run_cases(tmp_path, cases: list[list[str]]) -> list[dict]:
    d = tmp_path / "_driver"
    d.mkdir(exist_ok=True)
    (d / "cases.json").write_text(json.dumps([[str(a) for a in argv] for argv in cases]))
    (d / "driver.py").write_text(_DRIVER)
    proc = subprocess.run([sys.executable, d / "driver.py", d / "cases.json", d / "res.json"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads((d / "res.json").read_text())


def test_bad_inputs_exit_nonzero_with_one_line(tmp_path, photos):
    import torch

    file_ = tmp_path / "a_file.txt"
    file_.write_text("x")
    same_stem = [_photo(tmp_path / "x" / "img.png"), _photo(tmp_path / "y" / "img.jpg", seed=1)]
    seg = ["segment", photos, "--provider", "grid", "-k", "4"]
    cases = {  # argv -> (exit code, text in the one stderr line)
        "unknown provider": (seg[:2] + ["-o", tmp_path / "o1", "--provider", "nope"], 2, "unknown superpixel provider"),
        "bad parameter name": (seg + ["-o", tmp_path / "o2", "--provider", "slic:colour=1"], 2, "no parameter"),
        "bad parameter syntax": (seg[:2] + ["-o", tmp_path / "o3", "--provider", "slic:compactness"], 2, "key=value"),
        # refused while parsing, before any image is read (the provider's declared range)
        "bad parameter value": (seg[:2] + ["-o", tmp_path / "o4", "--provider", "snic:compactness=-1"], 2,
                                "parameter 'compactness' must be a finite number >= 0"),
        "bad import path": (seg[:2] + ["-o", tmp_path / "o5", "--provider", "no_such_pkg.mod:fn"], 2, "cannot import"),
        "k = 0": (seg[:2] + ["-o", tmp_path / "o6", "-k", "0"], 2, "positive integer"),
        "k not a number": (seg[:2] + ["-o", tmp_path / "o7", "-k", "many"], 2, "positive integer"),
        "out is a file": (seg + ["-o", file_], 2, "not a folder"),
        "out below a file": (seg + ["-o", file_ / "sub"], 2, "cannot create output folder"),
        "missing input": (["segment", tmp_path / "nope.png", "-o", tmp_path / "o8"], 2, "no such image"),
        "no images in folder": (["segment", tmp_path / "x" / "..", "-o", tmp_path / "o9"], 2, "no images"),
        "same stem, two folders": (["segment", *same_stem, "-o", tmp_path / "o10", "--provider", "grid"], 2,
                                   "would both be written"),
        "missing weights": (seg[:2] + ["-o", tmp_path / "o11", "--provider", f"sin:weights={tmp_path / 'w.pt'}"],
                            2, "w.pt"),
        "bad device": (seg[:2] + ["-o", tmp_path / "o12", "--provider", "sin:device=toaster"], 2, "device"),
        "unknown format": (seg + ["-o", tmp_path / "o13", "--format", "tiff"], 2, "invalid choice"),
        "no command": ([], 2, "required"),
        "unknown command": (["segmnt"], 2, "invalid choice"),
        "train: bad preset": (["train", "--preset", "nope", "--out", tmp_path / "t"], 2, "invalid choice"),
    }
    if not torch.cuda.is_available():
        cases["cuda without CUDA"] = (seg[:2] + ["-o", tmp_path / "o14", "--provider", "sin:device=cuda"], 2,
                                      "CUDA is not available")
    before = _hashes(tmp_path)
    results = _run_cases(tmp_path, [argv for argv, _, _ in cases.values()])
    for (what, (_argv, code, text)), res in zip(cases.items(), results):
        assert res["traceback"] is None, f"{what}: {res['traceback']}"
        assert res["code"] == code, f"{what}: exit {res['code']}, stderr {res['stderr']!r}"
        line = _one_error_line(res["stderr"])
        assert text in line, f"{what}: {line!r}"
    after = _hashes(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # every input untouched
    assert not [k for k in after if k not in before and not k.startswith("_driver")]  # no outputs from failed runs


def test_one_unreadable_file_does_not_stop_the_run(tmp_path, photos, capsys):
    (photos / "p1.png").write_bytes(b"not a png")  # in the middle of the sorted list
    (photos / "p3.jpg").write_bytes(b"")
    before = _hashes(photos)
    seg = ["segment", str(photos), "--provider", "grid", "-k", "4"]
    assert main(seg + ["-o", str(tmp_path / "all")]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err[0] == "error: 2 of 4 image(s) failed:" and len(err) == 3 and "Traceback" not in captured.err
    assert "p1.png" in err[1] and "cannot read image" in err[1] and "p3.jpg" in err[2]
    assert _outputs(tmp_path / "all") == [
        "p0.png", "p0_overlay.png", "p2.png", "p2_overlay.png"]  # the images after the bad one too
    # one record per finished image (none for the failed ones: their re-run starts clean)
    assert sorted(p.name for p in (tmp_path / "all" / RECORD_DIR).iterdir()) == ["p0.png.json", "p2.png.json"]
    assert "2 image(s)" in captured.out
    # --fail-fast: stops at p1 with one line; p0 was done, p2 never started
    assert main(seg + ["-o", str(tmp_path / "ff"), "--fail-fast"]) == 2
    assert "p1.png" in _one_error_line(capsys.readouterr().err)
    assert _outputs(tmp_path / "ff") == ["p0.png", "p0_overlay.png"]
    assert _hashes(photos) == before


def test_earlier_outputs_kept_unless_overwrite(tmp_path, photos, capsys):
    out = tmp_path / "out"
    seg = ["segment", str(photos), "-o", str(out), "--provider", "grid"]
    assert main(seg + ["-k", "4"]) == 0
    first = _hashes(out)
    capsys.readouterr()
    assert main(seg + ["-k", "9"]) == 2
    assert "--overwrite" in _one_error_line(capsys.readouterr().err)
    assert _hashes(out) == first
    assert main(seg + ["-k", "9", "--overwrite"]) == 0
    assert _hashes(out).keys() == first.keys() and _hashes(out) != first


def test_overlay_name_colliding_with_an_input_is_refused(tmp_path):
    # x.jpg's overlay would be written to DIR/x_overlay.png, which is itself an input
    d = tmp_path / "d"
    _photo(d / "x.jpg")
    _photo(d / "x_overlay.png", seed=1)
    before = _hashes(d)
    assert main(["segment", str(d), "-o", str(d), "--provider", "grid", "-k", "4"]) == 2
    assert _hashes(d) == before


# ------------------------------------------------------------------------------------------
# in process: failures that cannot be provoked from outside
# ------------------------------------------------------------------------------------------

def test_disk_full_is_one_line(tmp_path, photos, monkeypatch, capsys):
    import sin.io

    def full(path, write_fn, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sin.io, "atomic_write", full)
    assert main(["segment", str(photos), "-o", str(tmp_path / "o"), "--provider", "grid", "-k", "4"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "p0.png" in line


def test_permission_error_on_out_is_one_line(tmp_path, photos, monkeypatch, capsys):
    import os

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if "ro" in str(p) else real_access(p, mode))
    assert main(["segment", str(photos), "-o", str(tmp_path / "ro"), "--provider", "grid"]) == 2
    assert "not writable" in _one_error_line(capsys.readouterr().err)
