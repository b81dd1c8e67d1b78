"""``python -m sin segment``: resumable, never replaces another run's outputs or an input, any provider
exception is one image's failure, size options reachable from the command line."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT
from sin.cli import main
from sin.io import read_labels
from sin.segment import RECORD_DIR
from tests.parallel_helpers import calls, write_marked

ROOT = REPO_ROOT
# "@1" declares the helper's code version, so its maps are cached on disk across processes (issue 23.3)
HELPER = "tests.parallel_helpers:counting_grid@1"


def _env():
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _sin(*argv, **kw):
    return subprocess.Popen([sys.executable, "-m", "sin", *map(str, argv)], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _records(out: Path) -> dict:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / RECORD_DIR).glob("*.json"))}


@pytest.fixture
def log(tmp_path):
    d = tmp_path / "log"
    d.mkdir()
    return d


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9 of the command")
def test_killed_run_resumes_without_recomputing(tmp_path, log):
    photos = tmp_path / "photos"
    write_marked(photos, 5)
    out = tmp_path / "out"
    cmd = ["segment", photos, "-o", out, "-k", "9", "-p", f"{HELPER}:log={log},die_on=2"]
    proc = _sin(*cmd)
    proc.communicate(timeout=120)
    assert proc.returncode == -9  # killed at p2 (the provider kills its own process, once)
    assert set(_files(out)) == {"p0.png", "p0_overlay.png", "p1.png", "p1_overlay.png"}
    recs = _records(out)
    assert recs["p0.png.json"]["status"] == "complete" and recs["p2.png.json"]["status"] == "running"

    assert main([str(a) for a in cmd]) == 0  # the same command again: finishes, nothing replaced by hand
    assert calls(log) == {i: 1 for i in range(5)}  # p0, p1 not recomputed; p2 once (the killed call never returned)
    assert all(r["status"] == "complete" for r in _records(out).values()) and len(_records(out)) == 5
    reference = tmp_path / "reference"
    assert main(["segment", str(photos), "-o", str(reference), "-k", "9", "-p", f"{HELPER}:log={log}"]) == 0
    assert _files(out) == _files(reference)

    # a third run has nothing to do
    assert main([str(a) for a in cmd]) == 0
    assert calls(log) == {i: 2 for i in range(5)}  # only the reference run's calls were added


def test_outputs_of_another_command_are_not_taken_as_done(tmp_path, capsys):
    photos = tmp_path / "photos"
    write_marked(photos, 2)
    out = tmp_path / "out"
    assert main(["segment", str(photos), "-o", str(out), "-p", HELPER, "-k", "4"]) == 0
    first = _files(out)
    capsys.readouterr()
    # another -k: refused (one line, exit 2), nothing replaced
    assert main(["segment", str(photos), "-o", str(out), "-p", HELPER, "-k", "9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_segments 4 instead of 9" in err[0] and "--overwrite" in err[0]
    # outputs without a record (another program, an older version): not ours either
    (out / RECORD_DIR / "p0.png.json").unlink()
    assert main(["segment", str(photos), "-o", str(out), "-p", HELPER, "-k", "4"]) == 1
    err = capsys.readouterr().err
    assert "p0.png already exists" in err and "not written by" in err
    assert _files(out) == first
    # a damaged record is not a complete one
    (out / RECORD_DIR / "p1.png.json").write_text("{not json")
    assert main(["segment", str(photos / "p1.png"), "-o", str(out), "-p", HELPER, "-k", "4"]) == 2
    assert "unreadable" in capsys.readouterr().err
    assert main(["segment", str(photos), "-o", str(out), "-p", HELPER, "-k", "9", "--overwrite"]) == 0
    assert _files(out).keys() == first.keys() and _files(out) != first


def test_two_runs_into_one_folder_never_replace_each_others_outputs(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    write_marked(a, 1)
    (b / "p0.png").parent.mkdir()
    from PIL import Image

    from tests.parallel_helpers import marked_image

    Image.fromarray(marked_image(0, seed=7)).save(b / "p0.png")  # same stem, other pixels
    out = tmp_path / "out"
    started, go = tmp_path / "started", tmp_path / "go"
    first = _sin("segment", a / "p0.png", "-o", out, "-p", f"{HELPER}:started={started},wait_for={go}", "-k", "4")
    try:
        deadline = time.time() + 120
        while not started.exists():  # the first run holds p0 (claimed, computing)
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline
            time.sleep(0.05)
        assert main(["segment", str(b / "p0.png"), "-o", str(out), "-p", HELPER, "-k", "4"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "writing its outputs right now" in err[0]
        # --overwrite does not take it either while the first run works on it
        assert main(["segment", str(b / "p0.png"), "-o", str(out), "-p", HELPER, "-k", "4", "--overwrite"]) == 2
        capsys.readouterr()
        go.touch()
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
    made_by_a = _files(out)
    assert main(["segment", str(b / "p0.png"), "-o", str(out), "-p", HELPER, "-k", "4"]) == 2
    assert f"made from another input file, {a / 'p0.png'}" in capsys.readouterr().err
    assert _files(out) == made_by_a


def test_an_output_created_meanwhile_by_another_writer_is_kept(tmp_path, capsys):
    photos = tmp_path / "photos"
    write_marked(photos, 2)
    out = tmp_path / "out"
    intruder = out / "p1_overlay.png"  # created while p1 is computed, after the up-front checks
    assert main(["segment", str(photos), "-o", str(out), "-p", f"{HELPER}:touch={intruder},touch_on=1", "-k", "4"]) == 1
    err = capsys.readouterr().err
    assert "p1_overlay.png already exists" in err and "not replaced" in err
    assert intruder.read_bytes() == b"another writer"
    intruder.write_bytes(b"still theirs")
    # the same command again: p0 is done, p1's outputs are not its own to replace
    assert main(["segment", str(photos), "-o", str(out), "-p", f"{HELPER}:touch={intruder},touch_on=1", "-k", "4"]) == 1
    assert "another program created one of its outputs" in capsys.readouterr().err
    assert intruder.read_bytes() == b"still theirs"


def test_no_output_replaces_an_input_even_a_hard_link(tmp_path):
    photos = tmp_path / "photos"
    write_marked(photos, 2)
    out = tmp_path / "out"
    out.mkdir()
    os.link(photos / "p1.png", out / "p1.png")  # the output name is the input file itself
    before = (photos / "p1.png").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["segment", str(photos), "-o", str(out), "-p", HELPER, "-k", "4", *extra]) == 2
    assert (photos / "p1.png").read_bytes() == before and not (out / "p0.png").exists()


def test_any_provider_exception_fails_only_that_image(tmp_path, capsys):
    # (in worker processes too: tests/sin/test_parallel.py; segment on an executor: its Dask test)
    photos = tmp_path / "photos"
    write_marked(photos, 4)
    out = tmp_path / "out"
    seg = ["segment", str(photos), "-o", str(out), "-p", f"{HELPER}:fail_on=1,exit_on=2", "-k", "4"]
    assert main(seg) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err and err[0] == "error: 2 of 4 image(s) failed:"
    assert "p1.png: ZeroDivisionError: the user function divided by zero" in err[1]
    assert "p2.png: SystemExit: 3" in err[2]
    assert {"p0.png", "p3.png"} <= set(_files(out)) and "p1.png" not in _files(out)
    # resuming retries exactly the failed images
    assert main(seg) == 1
    captured = capsys.readouterr()
    assert "2 of 4" in captured.err and captured.out.startswith("2 image(s) already complete")
    assert sorted(_records(out)) == ["p0.png.json", "p3.png.json"]


def test_size_limit_options_from_the_command_line(tmp_path, capsys):
    photos = tmp_path / "photos"
    write_marked(photos, 2)  # 24x32 = 768 pixels
    seg = ["segment", str(photos), "-p", "slic", "-k", "20"]
    assert main(seg + ["-o", str(tmp_path / "a"), "--max-pixels", "100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "768 pixels, above its limit of 100 pixels" in err[0] and "0.0 MP" not in err[0]
    assert "pass --downscale" in err[0] and "--max-pixels none" in err[0] and "downscale=True" not in err[0]
    assert main(seg + ["-o", str(tmp_path / "b"), "--max-pixels", "100", "--downscale", "--format", "npy"]) == 0
    labels = np.load(tmp_path / "b" / "p0.npy")
    assert labels.shape == (24, 32) and labels.max() + 1 <= 20
    assert main(seg + ["-o", str(tmp_path / "c"), "--max-pixels", "none"]) == 0
    assert read_labels(tmp_path / "c" / "p0.png").shape == (24, 32)
    with pytest.raises(SystemExit) as info:
        main(seg + ["-o", str(tmp_path / "d"), "--max-pixels", "3"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ">= 4" in err[0]


def test_help_says_how_completion_is_known(capsys):
    with pytest.raises(SystemExit) as info:
        main(["segment", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("Resumable", RECORD_DIR, "sha256", "atomically", "--scheduler", "--processes", "--downscale",
                  "--max-pixels", "--stretch"):
        assert words in text, words


def test_an_unreadable_input_is_that_images_failure(tmp_path, monkeypatch, capsys):
    import sin.fingerprint

    photos = tmp_path / "photos"
    write_marked(photos, 3)
    real = sin.fingerprint.file_sha256

    def denied(path):
        if Path(path).name == "p1.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(sin.fingerprint, "file_sha256", denied)
    assert main(["segment", str(photos), "-o", str(tmp_path / "out"), "-p", HELPER, "-k", "4"]) == 1
    err = capsys.readouterr().err
    assert "p1.png: cannot read image" in err and "Permission denied" in err and "Traceback" not in err
    assert sorted(_records(tmp_path / "out")) == ["p0.png.json", "p2.png.json"]
