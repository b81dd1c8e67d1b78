"""sin.io.read_image on high-bit-depth files: scaled by the container's range (or the recorded
significant bits), the same values as the array API, a stretch only when asked."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

from sin.image import as_float_rgb
from sin.io import SAMPLE_IMAGE, read_image


@pytest.fixture(scope="module")
def photo():
    return read_image(SAMPLE_IMAGE)[:120, :160]  # an 8-bit photo


def _png16(path, arr16, sbit=None):
    """16-bit PNG: colour through OpenCV (Pillow cannot write it), grayscale through Pillow (+ sBIT)."""
    if arr16.ndim == 3:
        assert cv2.imwrite(str(path), np.ascontiguousarray(arr16[..., ::-1]))
    else:
        info = PngInfo()
        if sbit is not None:
            info.add(b"sBIT", bytes([sbit]))
        Image.fromarray(arr16).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("kind", ["rgb png", "gray png", "rgb tiff"])
def test_lossless_16bit_copy_reads_back_the_8bit_values(tmp_path, photo, kind):
    import tifffile

    src = photo if kind != "gray png" else np.repeat(photo[..., :1], 3, axis=-1)
    deep = src.astype(np.uint16) * 257  # v -> v * 257: the same intensities in 16 bits
    if kind == "rgb tiff":
        path = tmp_path / "copy.tif"
        tifffile.imwrite(path, deep)
    else:
        path = _png16(tmp_path / "copy.png", deep if kind == "rgb png" else deep[..., 0])
    got = read_image(path)
    assert got.dtype == np.uint8 and np.array_equal(got, src)  # before: up to 45/255 off (a min..max stretch)
    # full precision: exactly what the array API makes of the stored array (and of the 8-bit photo)
    full = read_image(path, dtype=np.float32)
    assert full.dtype == np.float32
    np.testing.assert_array_equal(full, as_float_rgb(deep))
    np.testing.assert_array_equal(full, as_float_rgb(src))
    assert read_image(path, dtype=None).dtype == np.float32  # deep files keep their precision
    assert read_image(SAMPLE_IMAGE, dtype=None).dtype == np.uint8  # 8-bit files stay uint8


def test_one_hot_pixel_does_not_black_out_the_image(tmp_path, photo):
    deep = photo.astype(np.uint16) * 50  # a dark exposure: values up to 12750 of 65535
    deep[5, 7] = 65535  # one hot pixel
    path = _png16(tmp_path / "hot.png", deep)
    got = read_image(path)
    expected = np.round(deep / 65535.0 * 255).astype(np.uint8)
    assert np.array_equal(got, expected)
    rest = np.ones(got.shape[:2], bool)
    rest[5, 7] = False
    assert got[rest].mean() > 0.7 * photo[rest].mean() * 50 / 257  # as bright as it is, not blacked out
    # the old min..max stretch on request: the hot pixel sets the scale
    stretched = read_image(path, stretch=True)
    assert stretched[5, 7].tolist() == [255, 255, 255]


def test_recorded_significant_bits_scale_unscaled_samples(tmp_path):
    rng = np.random.default_rng(0)
    twelve = rng.integers(0, 4096, (16, 20)).astype(np.uint16)  # 12-bit samples stored as they are
    got = read_image(_png16(tmp_path / "raw12.png", twelve, sbit=12), dtype=np.float32)
    np.testing.assert_allclose(got[..., 0], twelve / 4095.0, rtol=0, atol=1e-7)
    # a conforming writer scales them to 16 bits (bit replication): the container's range is right
    scaled = (twelve << 4) | (twelve >> 8)
    got = read_image(_png16(tmp_path / "scaled12.png", scaled, sbit=12), dtype=np.float32)
    np.testing.assert_allclose(got[..., 0], scaled / 65535.0, rtol=0, atol=1e-7)
    # without sBIT the same raw samples are a dark 16-bit image (no guessing)
    got = read_image(_png16(tmp_path / "plain.png", twelve), dtype=np.float32)
    np.testing.assert_allclose(got[..., 0], twelve / 65535.0, rtol=0, atol=1e-7)


def test_cli_and_api_agree_on_a_16bit_image(tmp_path):
    from sin.cli import main
    from sin.providers import get_provider

    rng = np.random.default_rng(1)
    deep = rng.integers(0, 65536, (36, 48, 3)).astype(np.uint16)
    deep[:18] //= 4  # structure: a darker top half
    path = _png16(tmp_path / "deep.png", deep)
    assert main(["segment", str(path), "-o", str(tmp_path / "out"), "-p", "slic", "-k", "30", "--format", "npy",
                 "--no-overlay"]) == 0
    cli = np.load(tmp_path / "out" / "deep.npy")
    api = get_provider("slic")(deep, 30)
    np.testing.assert_array_equal(cli, api)


def test_negative_or_out_of_range_samples_need_stretch(tmp_path):
    Image.fromarray(np.array([[-5, 0], [10, 300]], np.int32), mode="I").save(tmp_path / "signed.tif")
    with pytest.raises(ValueError, match="negative pixel values.*stretch=True"):
        read_image(tmp_path / "signed.tif")
    got = read_image(tmp_path / "signed.tif", stretch=True)
    assert got[..., 0].tolist() == [[0, 4], [13, 255]]  # (v + 5) / 305 * 255
    with pytest.raises(ValueError, match="dtype must be"):
        read_image(tmp_path / "signed.tif", dtype=np.int16)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_of_deep_colour_matches_pillow(orientation):
    from sin.io import _orient

    arr = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    im = Image.fromarray(arr)
    im.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(_orient(arr.astype(np.uint16), im), expected)
