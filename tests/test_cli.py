import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sin.cli import main
from sin.connectivity import check_superpixels
from sin.io import read_labels, write_labels


@pytest.fixture
def image_dir(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "imgs"
    d.mkdir()
    for i, shape in enumerate([(40, 60), (33, 47)]):
        Image.fromarray((rng.random(shape + (3,)) * 255).astype(np.uint8)).save(d / f"im{i}.png")
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.mark.parametrize("fmt", ["png", "npy", "csv"])
def test_segment_writes_labels_and_overlays(image_dir, tmp_path, fmt):
    out = tmp_path / "out"
    rc = main(["segment", str(image_dir), "--n-segments", "12", "--out", str(out), "--format", fmt,
               "--weights", "untrained"])
    assert rc == 0
    for i, shape in enumerate([(40, 60), (33, 47)]):
        labels = read_labels(out / f"im{i}.{fmt}")
        check_superpixels(labels, shape)
        overlay = np.asarray(Image.open(out / f"im{i}_overlay.png"))
        assert overlay.shape == shape + (3,)
    assert not list(out.glob("notes*"))


def test_segment_csv_is_benchmark_format(image_dir, tmp_path):
    main(["segment", str(image_dir / "im0.png"), "-k", "6", "-o", str(tmp_path), "--format", "csv",
          "--no-overlay", "--weights", "untrained"])
    lines = (tmp_path / "im0.csv").read_text().strip().splitlines()
    assert len(lines) == 40 and all(len(line.split(",")) == 60 for line in lines)
    assert not (tmp_path / "im0_overlay.png").exists()


def test_segment_with_another_provider(image_dir, tmp_path):
    assert main(["segment", str(image_dir / "im1.png"), "--method", "grid", "-k", "9", "-o", str(tmp_path)]) == 0
    labels = read_labels(tmp_path / "im1.png")
    assert labels.max() + 1 == 9


def test_errors_exit_with_code_2(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "missing.png"), "-o", str(tmp_path)]) == 2
    assert "no such image" in capsys.readouterr().err
    assert main(["segment", str(tmp_path), "-o", str(tmp_path / "o")]) == 2  # empty folder
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert main(["segment", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "cannot read image" in capsys.readouterr().err
    assert main(["segment", str(bad), "-o", str(tmp_path / "o"), "--method", "nope"]) == 2
    assert main(["segment", str(tmp_path / "o"), "-o", str(tmp_path / "o"), "--weights",
                 str(tmp_path / "w.pt")]) == 2


def test_help_documents_every_command():
    proc = subprocess.run([sys.executable, "-m", "sin", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for cmd in ("segment", "demo", "providers", "train"):
        assert cmd in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "sin", "segment", "--help"], capture_output=True, text=True,
                          timeout=120)
    for flag in ("--n-segments", "--out", "--device", "--format", "--method", "--weights"):
        assert flag in proc.stdout


def test_demo_writes_overlay(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "-k", "100"]) == 0
    out = capsys.readouterr().out
    assert "superpixels" in out and "overlay written" in out
    assert (tmp_path / "sample_sin_overlay.png").exists()


def test_label_png_roundtrip_and_errors(tmp_path):
    labels = np.arange(12, dtype=np.int32).reshape(3, 4) * 1000
    for fmt in ("png", "npy", "csv"):
        write_labels(labels, tmp_path / f"l.{fmt}")
        assert np.array_equal(read_labels(tmp_path / f"l.{fmt}"), labels)
    with pytest.raises(ValueError, match="65535"):
        write_labels(labels * 100, tmp_path / "big.png")
    with pytest.raises(ValueError, match="format"):
        write_labels(labels, tmp_path / "l.tiff")


def test_atomic_writes_use_normal_permissions(tmp_path):
    import os
    import stat

    from sin.checkpoint import atomic_torch_save

    mask = os.umask(0o022)
    try:
        write_labels(np.zeros((2, 2), np.int32), tmp_path / "a.png")
        atomic_torch_save({"x": 1}, tmp_path / "b.pt")
    finally:
        os.umask(mask)
    for name in ("a.png", "b.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_read_image_returns_writable_rgb_uint8(tmp_path, mode):
    from sin.io import read_image

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (7, 5, {"RGB": 3, "L": 1, "RGBA": 4}[mode]), dtype=np.uint8)
    Image.fromarray(arr[..., 0] if mode == "L" else arr, mode).save(tmp_path / "x.png")
    img = read_image(tmp_path / "x.png")
    assert img.shape == (7, 5, 3) and img.dtype == np.uint8
    assert img.flags.writeable  # torch.from_numpy warns on read-only arrays; callers may edit in place
    expected = np.repeat(arr[..., :1], 3, axis=-1) if mode == "L" else arr[..., :3]
    assert np.array_equal(img, expected)
