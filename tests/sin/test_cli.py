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
               "--provider", "sin:weights=untrained"])
    assert rc == 0
    for i, shape in enumerate([(40, 60), (33, 47)]):
        labels = read_labels(out / f"im{i}.{fmt}")
        check_superpixels(labels, shape)
        overlay = np.asarray(Image.open(out / f"im{i}_overlay.png"))
        assert overlay.shape == shape + (3,)
    assert not list(out.glob("notes*"))


def test_segment_csv_is_benchmark_format(image_dir, tmp_path):
    main(["segment", str(image_dir / "im0.png"), "-k", "6", "-o", str(tmp_path), "--format", "csv",
          "--no-overlay", "--provider", "sin:weights=untrained"])
    lines = (tmp_path / "im0.csv").read_text().strip().splitlines()
    assert len(lines) == 40 and all(len(line.split(",")) == 60 for line in lines)
    assert not (tmp_path / "im0_overlay.png").exists()


def test_segment_with_another_provider(image_dir, tmp_path):
    assert main(["segment", str(image_dir / "im1.png"), "--provider", "grid", "-k", "9", "-o", str(tmp_path)]) == 0
    labels = read_labels(tmp_path / "im1.png")
    assert labels.max() + 1 == 9


def test_errors_exit_with_code_2(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "missing.png"), "-o", str(tmp_path)]) == 2
    assert "no such image" in capsys.readouterr().err
    assert main(["segment", str(tmp_path), "-o", str(tmp_path / "o")]) == 2  # empty folder
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert main(["segment", str(bad), "-o", str(tmp_path / "o")]) == 2  # its only image failed
    assert "cannot read image" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse: unknown provider
        main(["segment", str(bad), "-o", str(tmp_path / "o"), "--provider", "nope"])
    assert exc.value.code == 2 and "unknown superpixel provider 'nope'" in capsys.readouterr().err
    assert main(["segment", str(bad), "-o", str(tmp_path / "o"), "--provider",
                 f"sin:weights={tmp_path / 'w.pt'}"]) == 2
    assert "w.pt" in capsys.readouterr().err


def test_help_documents_every_command():
    proc = subprocess.run([sys.executable, "-m", "sin", "--help"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0
    for cmd in ("segment", "demo", "providers", "train"):
        assert cmd in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "sin", "segment", "--help"], capture_output=True, text=True,
                          timeout=600)
    for flag in ("--n-segments", "--out", "--provider", "--format", "--overwrite", "--fail-fast"):
        assert flag in proc.stdout
    for gone in ("--method", "--weights", "--device"):  # provider parameters go through --provider
        assert gone not in proc.stdout


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


# ------------------------------------------------------------------------------------------
# sin.io: high bit-depth / float images, EXIF orientation, float labels
# ------------------------------------------------------------------------------------------

def test_read_image_scales_16bit_grayscale_by_its_container(tmp_path):
    from sin.io import read_image

    # values far above 255: PIL's convert("L") clips them all to white
    ramp = np.linspace(1000, 41000, 8 * 6).reshape(8, 6).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    img = read_image(tmp_path / "g16.png")
    assert img.shape == (8, 6, 3) and img.dtype == np.uint8
    assert np.array_equal(img[..., 0], np.round(ramp / 65535.0 * 255).astype(np.uint8))
    assert np.all(np.diff(img[..., 0].ravel().astype(int)) >= 0)  # order kept: not blank
    # the contrast stretch of earlier versions, on request
    stretched = read_image(tmp_path / "g16.png", stretch=True)
    assert np.array_equal(stretched[..., 0], np.round((ramp - 1000.0) / 40000.0 * 255).astype(np.uint8))


@pytest.mark.parametrize("values,stretch,expected", [
    (np.array([[0.0, 0.25], [0.5, 1.0]], np.float32), False, [[0, 64], [128, 255]]),  # [0, 1]: taken as is
    (np.array([[-2.0, 0.0], [2.0, 6.0]], np.float32), True, [[0, 64], [128, 255]]),   # stretched on request
])
def test_read_image_scales_float_tiff(tmp_path, values, stretch, expected):
    from sin.io import read_image

    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif", stretch=stretch)
    assert np.array_equal(img[..., 1], np.array(expected, np.uint8))


def test_read_image_refuses_float_outside_unit_range_unless_stretched(tmp_path):
    from sin.io import read_image

    Image.fromarray(np.array([[-2.0, 0.0], [2.0, 6.0]], np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*stretch=True"):
        read_image(tmp_path / "f.tif")


def test_read_image_rejects_nan_tiff(tmp_path):
    from sin.io import read_image

    Image.fromarray(np.array([[0.0, np.nan]], np.float32), mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(ValueError, match="non-finite"):
        read_image(tmp_path / "nan.tif")


def test_read_image_honours_exif_orientation(tmp_path):
    from sin.io import read_image

    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "rot.jpg")
    assert img.shape == (40, 20, 3)  # upright: portrait
    assert img[:20].mean() > 200 and img[20:].mean() < 50  # the white half is now on top


def test_write_labels_refuses_non_integral_float_labels(tmp_path):
    with pytest.raises(ValueError, match="non-integer"):
        write_labels(np.array([[0.0, 1.5]]), tmp_path / "l.png")
    with pytest.raises(ValueError, match="non-integer"):
        write_labels(np.array([[0.0, np.nan]]), tmp_path / "l.npy")
    assert not list(tmp_path.iterdir())  # nothing written
    write_labels(np.array([[0.0, 2.0]]), tmp_path / "ok.csv")  # exact integers are fine
    assert np.array_equal(read_labels(tmp_path / "ok.csv"), [[0, 2]])
    with pytest.raises(ValueError, match="int32"):
        write_labels(np.array([[0, 2**40]]), tmp_path / "big.npy")
