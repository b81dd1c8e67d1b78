"""A provider for the runner and ``segment`` tests that records its calls, and fails, blocks or dies
on request: ``"tests.parallel_helpers:counting_grid"`` (an import path, as users give their own
functions; worker processes import it too). Not registered, so the registry-wide contract tests
do not pick it up.

Images are told apart by their first pixel: ``round(image[0, 0, 0] * 255)`` is the image's index.
"""

import multiprocessing
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image


def marked_image(index: int, shape=(24, 32), seed: int = 0) -> np.ndarray:
    """A random uint8 RGB image whose first pixel carries ``index``."""
    img = np.random.default_rng(seed + index).integers(0, 256, shape + (3,), dtype=np.uint8)
    img[0, 0, 0] = index
    return img


def write_marked(folder: Path, n: int, *, suffix: str = ".png", shape=(24, 32)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        Image.fromarray(marked_image(i, shape)).save(folder / f"p{i}{suffix}")
        paths.append(folder / f"p{i}{suffix}")
    return paths


def calls(log) -> dict:
    """``{image index: number of finished calls}`` recorded in ``log``."""
    out: dict = {}
    for p in Path(log).glob("call-*"):
        i = int(p.name.split("-")[1])
        out[i] = out.get(i, 0) + 1
    return out


def counting_grid(image, n_segments, log="", die_on=-1, fail_on=-1, exit_on=-1, started="", wait_for="",
                  sleep=0.0, touch="", touch_on=-1):
    """Grid labels (about ``n_segments`` cells); per image (by index):

    ``die_on``: SIGKILL this process the first time (a ``died-<i>`` file in ``log`` remembers it);
    ``fail_on``: raise ZeroDivisionError; ``exit_on``: ``sys.exit(3)``; ``started``: create this
    file on entry; ``wait_for``: block until that file exists; ``sleep``: seconds per call;
    ``touch``: create this file (another writer of an output) before returning image ``touch_on``.
    """
    index = int(round(float(image[0, 0, 0]) * 255))
    if started:
        Path(started).touch()
    if wait_for:
        deadline = time.time() + 60
        while not Path(wait_for).exists() and time.time() < deadline:
            time.sleep(0.05)
    if index == die_on and not (Path(log) / f"died-{index}").exists():
        if multiprocessing.parent_process() is None and "PYTEST_CURRENT_TEST" in os.environ:
            raise RuntimeError("counting_grid refuses to kill the test process itself")
        (Path(log) / f"died-{index}").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    if index == fail_on:
        raise ZeroDivisionError("the user function divided by zero")
    if index == exit_on:
        sys.exit(3)
    time.sleep(sleep)
    h, w = image.shape[:2]
    side = max(1, int(np.sqrt(h * w / max(1, n_segments))))
    rows, cols = -(-h // side), -(-w // side)
    labels = (np.arange(h)[:, None] // side) * cols + (np.arange(w)[None, :] // side)
    assert labels.max() < rows * cols
    if touch and index == touch_on:
        Path(touch).write_bytes(b"another writer")
    if log:
        (Path(log) / f"call-{index}-{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
    return labels.astype(np.int32)
