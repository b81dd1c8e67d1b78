"""A kill -9 during an atomic save leaves a temporary: the next save of that file, ``--resume`` and
``--overwrite`` delete it; temporaries of live writers are left alone."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT
from sin.checkpoint import atomic_torch_save
from sin.io import _temp_prefix, atomic_write, remove_stale_temporaries
from sin.train import prepare_run_dir

ROOT = REPO_ROOT


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temp(path: Path, pid: int) -> Path:
    name = _temp_prefix(path).replace(f"tmp-{os.getpid()}-", f"tmp-{pid}-") + "abcd1234" + path.suffix
    t = path.parent / name
    t.write_bytes(b"half a checkpoint")
    return t


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9")
def test_kill_during_checkpoint_save_leaves_a_temporary_the_next_save_removes(tmp_path):
    ckpt = tmp_path / "run" / "checkpoint.pt"
    script = textwrap.dedent(f"""
        import os, signal, torch
        from sin.checkpoint import atomic_torch_save
        atomic_torch_save({{"iteration": 1}}, {str(ckpt)!r})
        def dying_save(obj, f):
            open(f, "wb").write(b"half")
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of the write
        torch.save = dying_save
        atomic_torch_save({{"iteration": 2}}, {str(ckpt)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in ckpt.parent.iterdir() if p.name != "checkpoint.pt"]
    assert len(left) == 1 and left[0].name.startswith(".checkpoint.pt.tmp-")  # the leftover of the killed save
    assert torch.load(ckpt)["iteration"] == 1  # the checkpoint itself is whole
    atomic_torch_save({"iteration": 3}, ckpt)
    assert [p.name for p in ckpt.parent.iterdir()] == ["checkpoint.pt"]


@pytest.mark.parametrize("mode", ["resume", "overwrite"])
def test_resume_and_overwrite_remove_stale_temporaries(tmp_path, mode):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"iteration": 1}, out / "checkpoint.pt")
    dead = _temp(out / "checkpoint.pt", _dead_pid())
    legacy = out / "checkpoint.pt.x1y2z3w4.tmp"  # what earlier versions left (no writer recorded)
    legacy.write_bytes(b"half")
    live = _temp(out / "step_100.pt", os.getpid())  # a writer that is still running (this process)
    other = out / "notes.txt"
    other.write_text("mine")
    prepare_run_dir(out, **{mode: True})
    assert not dead.exists() and not legacy.exists()
    assert live.exists() and other.exists()


def test_atomic_write_cleans_only_its_own_files_temporaries(tmp_path):
    target = tmp_path / "a.npz"
    mine = _temp(target, _dead_pid())
    neighbour = _temp(tmp_path / "b.npz", _dead_pid())
    atomic_write(target, lambda t: Path(t).write_bytes(b"x"), clean_stale=True)
    assert not mine.exists() and neighbour.exists() and target.read_bytes() == b"x"
    assert remove_stale_temporaries(tmp_path) == [neighbour]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_exclusive_write_never_replaces(tmp_path):
    target = tmp_path / "out.png"
    atomic_write(target, lambda t: Path(t).write_bytes(b"first"), exclusive=True)
    with pytest.raises(FileExistsError, match="not replaced"):
        atomic_write(target, lambda t: Path(t).write_bytes(b"second"), exclusive=True)
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_atomic_write_never_replaces_a_device_fifo_or_folder(tmp_path):
    # the rename of an atomic write would swap a special file (e.g. --out /dev/null) for a regular
    # file; a FIFO stands in for the device here
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        atomic_write(fifo, lambda tmp: Path(tmp).write_text("x"))
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(ValueError, match="a folder"):
        atomic_write(tmp_path, lambda tmp: Path(tmp).write_text("x"))
    assert not [p for p in tmp_path.iterdir() if p.name != "pipe"]  # no temporary left behind
