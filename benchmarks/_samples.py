"""Dataset samples as image sources for :func:`sin.parallel.label_maps`, and scores in the worker.

The benchmark tables score every label map against the image's annotations (ground-truth
segmentations, a saliency mask, class labels) in the worker that made it. A :class:`Sample` is
what travels to that worker: a top-level ``load(*args) -> (image, annotations)`` and its
arguments. Called, it returns the pixels (what the runner segments); :meth:`Sample.truth`
returns the annotations (what ``then`` scores against). The worker loads the pair once and keeps
the last few in memory, so the runner's call and ``then``'s calls for each requested count do
not read the files again. The copy is keyed by the sample object (a token made with it), not by
its arguments alone: a later run (new samples) reads files that changed in between::

    label_maps("slic", [Sample(read_pair, (image_path, mask_path), "0001")], [(200, 400)], then=score)

:func:`dataset_item` loads an item of a :mod:`sin.datasets` dataset (image, ground-truth
segmentations) and :class:`Scores` is the ``then`` that evaluates a map against them
(:func:`sin.metrics.evaluate`).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Sample", "Scores", "dataset_item"]


def _read_only(value):
    # the pair is shared by every later use in this process: a method that wrote into the image
    # would change what the next one sees, so writing fails loudly instead
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _read_only(v)
    return value


@functools.lru_cache(maxsize=8)
def _loaded(load: Callable, args: tuple, token: str) -> tuple:
    image, truth = load(*args)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{getattr(load, '__qualname__', load)} returned a {type(image).__name__}, not an image array")
    return _read_only(image), _read_only(truth)


@dataclass(frozen=True, repr=False)
class Sample:
    """One image and its annotations, loaded where the work runs.

    Parameters
    ----------
    load : callable
        A top-level (picklable) ``load(*args) -> (image, annotations)``.
    args : tuple
        Its arguments; hashable (paths, names, indices), they key the in-memory copy.
    name : str
        The image's name (failures, tables).
    token : str, optional
        Keys the worker's in-memory copy (default: new for every sample made).
    """

    load: Callable
    args: tuple
    name: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex, compare=False)

    def __call__(self) -> np.ndarray:
        return _loaded(self.load, self.args, self.token)[0]

    def truth(self):
        """The annotations (read-only arrays)."""
        return _loaded(self.load, self.args, self.token)[1]

    def __repr__(self) -> str:  # how a failure names the image
        return self.name


def dataset_item(dataset, index: int) -> tuple:
    """``(image, ground truths)`` of item ``index`` of a :mod:`sin.datasets` dataset (it pickles: paths)."""
    _, image, gts = dataset[index]
    return image, gts


@dataclass(frozen=True)
class Scores:
    """``then`` of the runner: the metric rows of one label map against the sample's ground truths
    (:func:`sin.metrics.evaluate`, one row per ground truth, with ``method``, ``n_segments`` and
    the provider's ``seconds``) and whether the map came from the label cache."""

    method: str
    tolerance: int | None = None

    def __call__(self, seg) -> tuple[list, bool]:
        from sin.metrics import evaluate

        df = evaluate(seg.labels, seg.source.truth(), seg.image, image_id=seg.source.name, tolerance=self.tolerance)
        df.insert(0, "n_segments", seg.n_segments)
        df.insert(0, "method", self.method)
        df["seconds"] = seg.seconds
        return df.to_dict("records"), seg.cached
