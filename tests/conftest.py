import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

#: The test tree mirrors the packages (tests/sin, tests/sin/providers, tests/downstream/..., tests/benchmarks):
#: test modules in sub-folders locate files through these constants (``from conftest import TEST_DATA``),
#: not through their own ``__file__``. No test folder has an ``__init__.py``: pytest's default "prepend"
#: import mode puts each test's folder (and this one, for ``from conftest import ...``) on sys.path, so
#: test file basenames must be unique across the tree (pytest stops with "import file mismatch"
#: otherwise). An ``__init__.py`` in tests/sin alone would make that folder the package ``sin`` and
#: shadow the real one.
TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
#: committed fixtures of the tests (golden outputs, reference label maps)
TEST_DATA = TESTS_DIR / "data"

# Real data for the tests marked `data`; override with SIN_DATA_ROOT.
DATA_ROOT = Path(os.environ.get("SIN_DATA_ROOT", REPO_ROOT / ".." / "shared" / "data"))

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci")


def data_path(*parts) -> Path:
    """Path under the shared data root, or skip the test when it is not there."""
    p = DATA_ROOT.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"dataset not available: {p}")
    return p


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache root (label maps, merged weights, features): nothing is
    written into the repository's ``cache/`` and no test sees another's cached files."""
    monkeypatch.setenv("SIN_CACHE_DIR", str(tmp_path / "sin_cache"))
    return tmp_path / "sin_cache"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


#: Input kinds every provider accepts (see :func:`random_image`).
IMAGE_KINDS = ("uint8", "float", "gray")


def random_image(h: int, w: int, kind: str, rng):
    """A random ``(image, channel_axis)`` of one of :data:`IMAGE_KINDS`."""
    if kind == "uint8":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), -1
    if kind == "float":
        return rng.random((h, w, 3)), -1
    if kind == "gray":
        return rng.random((h, w)), None
    raise ValueError(f"unknown image kind {kind!r}")


def write_folder_segmentation(root: Path, samples: dict, classes: str, splits=("train", "val", "test")) -> Path:
    """A ``FolderSegmentation`` layout under ``root``: ``samples`` maps an id to ``(image, label)``
    uint8 arrays (PNG files), ``classes`` is the ``classes.txt`` text, every split lists every id."""
    from PIL import Image

    for d in ("images", "labels", "splits"):
        (root / d).mkdir(parents=True)
    (root / "classes.txt").write_text(classes)
    for sid, (image, label) in samples.items():
        Image.fromarray(np.asarray(image, np.uint8)).save(root / "images" / f"{sid}.png")
        Image.fromarray(np.asarray(label, np.uint8)).save(root / "labels" / f"{sid}.png")
    for split in splits:
        (root / "splits" / f"{split}.txt").write_text("".join(f"{sid}\n" for sid in samples))
    return root


def write_camvid(root: Path, samples: dict) -> Path:
    """CamVid in the SegNet layout under ``root``: ``samples`` maps a split to ``{id: (image, label)}``
    (labels 0..10, 11 = void), written as ``<split>/<id>.png``, ``<split>annot/<id>.png`` and the
    split list ``<split>.txt`` with SegNet's absolute-path lines."""
    from PIL import Image

    for split, items in samples.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        lines = []
        for sid, (image, label) in items.items():
            Image.fromarray(np.asarray(image, np.uint8)).save(root / split / f"{sid}.png")
            Image.fromarray(np.asarray(label, np.uint8)).save(root / f"{split}annot" / f"{sid}.png")
            lines.append(f"/SegNet/CamVid/{split}/{sid}.png /SegNet/CamVid/{split}annot/{sid}.png\n")
        (root / f"{split}.txt").write_text("".join(lines))
    return root
