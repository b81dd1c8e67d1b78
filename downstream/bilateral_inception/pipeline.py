"""The one Bilateral Inception pipeline: trunk -> features -> superpixels -> BI head -> evaluation.

Used by the command line (``python -m downstream.bilateral_inception``) and by
``benchmarks.semseg_table``, so both name and reuse caches the same way:

* feature / backbone caches under ``cache_dir``, one folder per (kind, trunk name, trunk weights
  digest, input short side, flips, dataset split's images, code version)
  (:func:`.caches.feature_cache_key`);
* superpixels from the toolkit's one label-map cache, :class:`sin.providers.LabelCache` (keyed
  by the provider's fingerprint and each image's pixels; group = the dataset's name);
* trained runs (trunk, BI heads, classifier controls) in folders keyed by the trunk's weights,
  the provider's fingerprint, the training configuration, the dataset and the code version
  (:meth:`BIPipeline.run_dir`).

Any provider plugs in: a registered name, ``"name:key=value,..."``, ``"package.module:function"``,
a function ``f(image, n_segments, **params) -> labels`` or a :class:`sin.Provider`.

>>> pipe = BIPipeline(cache_dir="cache/bi")                              # doctest: +SKIP
>>> trunk = pipe.trunk_from_checkpoint("runs/bi/trunk/best.pt")          # doctest: +SKIP
>>> head, state, record = pipe.train_bi(trunk, my_function, 600, train_set, val_set,
...                                     out_dir="runs/bi/mine")          # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import warnings
from contextlib import contextmanager
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sin.checkpoint import load_model, load_torch_file
from sin.io import atomic_write
from sin.parallel import image_source, label_maps
from sin.paths import cache_root
from sin.providers import LabelCache, Provider, get_provider

from .bi_training import BITrainConfig, build_head, config_key, load_bi_checkpoint, train_bi
from .caches import (
    CacheUnion,
    cache_backbone,
    cache_features,
    config_fingerprint,
    dataset_fingerprint,
    feature_cache_key,
    module_fingerprint,
)
from .datasets import SegmentationDataset
from .end_to_end import E2E_FORMAT, EndToEndConfig, load_end_to_end, train_end_to_end
from .crf import CRFParams
from .evaluation import crf_grid_search, evaluate_baseline, evaluate_bi, evaluate_crf, evaluate_superpixel_average
from .metrics import ConfusionMatrix
from .trunk_training import TrunkTrainConfig, load_trunk_checkpoint, train_classifier, train_trunk
from .trunks import SegmentationTrunk, build_trunk

__all__ = ["TRAIN_VERSIONS", "TrunkHandle", "BIPipeline", "ProviderMismatch", "per_image_stack", "run_lock"]

#: Output versions of the trained stages (they enter the run folders' names, as timm and torchvision
#: version weights): bump one when the same configuration and data would train something else
#: (a changed loss, loop, initialisation, feature, pooling, ...). A comment or docstring needs none.
TRAIN_VERSIONS = {"trunk": "1", "classifier": "1", "bi": "1", "e2e": "1",
                  # evaluations (per-image confusion matrices) and the CRF selection are cached too
                  "eval": "1", "crf_select": "1"}


class ProviderMismatch(ValueError):
    """A BI head evaluated with other superpixels than it was trained on."""


@dataclass
class TrunkHandle:
    """A trunk and the digest of its weights (:func:`.caches.module_fingerprint`)."""

    trunk: SegmentationTrunk
    source: str = ""

    @property
    def fingerprint(self) -> str:
        return module_fingerprint(self.trunk)

    @property
    def backbone_fingerprint(self) -> str:
        return module_fingerprint(self.trunk.backbone)

    def copy(self) -> TrunkHandle:
        return TrunkHandle(copy.deepcopy(self.trunk), self.source)


@contextmanager
def run_lock(target):
    """Hold an exclusive lock on ``target`` (a run folder or a cache file) while it is being made.

    Two processes asked for the same run (e.g. a table split by seed and by provider, or a second
    command started by mistake) must never train into one folder at once: the second waits here,
    then finds the first one's finished run and reuses it. The lock is released when the holder
    exits, even when it is killed (``flock``). On systems without ``fcntl`` it does nothing.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: unguarded, as before
        yield
        return
    target = Path(target)
    lock = target / ".lock" if target.suffix == "" else target.with_name(target.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _short(short_side):
    return None if not short_side else int(short_side)


class BIPipeline:
    """Caches, trunks, superpixels, BI heads and their evaluation, with one naming scheme.

    Parameters
    ----------
    cache_dir : path, optional
        Feature / backbone caches (default ``sin.paths.cache_root() / "bi"``).
    label_cache : sin.providers.LabelCache, optional
        Superpixel label maps (default: the toolkit's one cache, ``sin.paths.cache_root() / "labels"``).
    short_side : int or None
        Trunk input shorter side (None or 0: native size).
    device : str
    progress : bool
        tqdm bars and per-epoch lines.
    executor : concurrent.futures.Executor, optional
        Where superpixels are computed (:func:`sin.parallel.label_maps`; e.g. a Dask cluster's
        executor); ``None``: ``processes`` local workers (1: in this process).
    """

    def __init__(self, cache_dir=None, *, label_cache: LabelCache | None = None, short_side: int | None = 257,
                 device="cpu", progress: bool = True, executor=None, processes: int = 1):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_root() / "bi"
        self.label_cache = label_cache if label_cache is not None else LabelCache()
        self.executor, self.processes = executor, processes
        self.short_side = _short(short_side)
        self.device = device
        self.progress = progress

    @classmethod
    def from_cache_root(cls, root=None, **kwargs) -> BIPipeline:
        """A pipeline whose caches live under one cache root (the CLIs' ``--cache DIR``): trunk
        features in ``DIR/bi``, label maps in ``DIR/labels`` (default root: :func:`sin.paths.cache_root`)."""
        root = cache_root(root)
        return cls(root / "bi", label_cache=LabelCache(root / "labels"), **kwargs)

    # ------------------------------------------------------------------ trunks
    @staticmethod
    def pretrained_trunk(name: str, weights=None, *, num_classes: int = 21) -> TrunkHandle:
        """A trunk from :func:`.trunks.build_trunk` (``weights``: a local file, or None)."""
        return TrunkHandle(build_trunk(name, weights, num_classes=num_classes), str(weights))

    @staticmethod
    def trunk_from_checkpoint(path) -> TrunkHandle:
        """A fine-tuned trunk from a ``best.pt`` of :meth:`fine_tune_trunk` / ``train --stage trunk``."""
        trunk, _ = load_trunk_checkpoint(path)
        return TrunkHandle(trunk, str(path))

    def backbone(self, handle: TrunkHandle, datasets: Sequence[SegmentationDataset], *,
                 flips: bool = False) -> CacheUnion:
        """Backbone outputs of every image of ``datasets`` (cached)."""
        caches = []
        for ds in datasets:
            d = self.cache_dir / ds.name / feature_cache_key("backbone", handle.trunk.name,
                                                             handle.backbone_fingerprint, self.short_side,
                                                             flips=flips, dataset=ds)
            caches.append(cache_backbone(handle.trunk, ds, d, short_side=self.short_side, flips=flips,
                                         device=self.device, progress=self.progress))
        return CacheUnion(caches)

    def features(self, handle: TrunkHandle, datasets: Sequence[SegmentationDataset], *,
                 backbone: CacheUnion | None = None) -> CacheUnion:
        """Trunk features of every image of ``datasets`` (cached; from ``backbone`` outputs when given)."""
        caches = []
        for ds in datasets:
            d = self.cache_dir / ds.name / feature_cache_key("features", handle.trunk.name, handle.fingerprint,
                                                             self.short_side, dataset=ds)
            caches.append(cache_features(handle.trunk, ds, d, short_side=self.short_side, backbone_cache=backbone,
                                         device=self.device, progress=self.progress))
        return CacheUnion(caches)

    def bi_inputs(self, handle: TrunkHandle, datasets: Sequence[SegmentationDataset], finetune: str):
        """What BI reads per image: trunk features (frozen trunk), backbone outputs (its head trained
        too) or nothing (end to end)."""
        if finetune == "none":
            return self.features(handle, datasets)
        if finetune == "head":
            return self.backbone(handle, datasets)
        return None

    def run_dir(self, runs_dir, kind: str, *parts, stage: str) -> Path:
        """``runs_dir/<kind>_<digest>``: the digest covers ``parts`` (weights digests, provider
        fingerprints, configurations, dataset fingerprints) and the stage's output version
        (:data:`TRAIN_VERSIONS`)."""
        return Path(runs_dir) / f"{kind}_{config_fingerprint([list(map(str, parts)), stage, TRAIN_VERSIONS[stage]])}"

    def fine_tune_trunk(self, handle: TrunkHandle, train_set: SegmentationDataset,
                        val_set: SegmentationDataset | None, *, config: TrunkTrainConfig | None = None,
                        out_dir=None, runs_dir=None, resume: bool = True, meta: dict | None = None):
        """Fine-tune (new classifier, ``config.mode``) and return ``(TrunkHandle of best.pt, record, out_dir)``.

        ``out_dir`` names the run folder; otherwise it is :meth:`run_dir` under ``runs_dir``.
        """
        config = config or TrunkTrainConfig(short_side=self.short_side)
        if out_dir is None:
            if runs_dir is None:
                raise ValueError("fine_tune_trunk needs out_dir or runs_dir")
            sets = [train_set] + ([val_set] if val_set is not None else [])
            out_dir = self.run_dir(runs_dir, f"trunk_{handle.trunk.name}", handle.fingerprint, asdict(config),
                                   *[dataset_fingerprint(ds) for ds in sets], stage="trunk")
        bb = None
        if config.mode == "head":
            bb = CacheUnion(self.backbone(handle, [train_set], flips=config.flips).caches
                            + (self.backbone(handle, [val_set]).caches if val_set is not None else []))
        with run_lock(out_dir):
            record = train_trunk(handle.trunk, train_set, val_set, out_dir, config=config, backbone_cache=bb,
                                 device=self.device, resume=resume, progress=self.progress,
                                 meta={"weights": handle.source, **(meta or {})})
        return self.trunk_from_checkpoint(Path(out_dir) / "best.pt"), record, Path(out_dir)

    def train_classifier(self, handle: TrunkHandle, train_set, val_set, *, config: BITrainConfig, runs_dir,
                         features: CacheUnion | None = None, resume: bool = True):
        """The equally trained baseline: the trunk's classifier trained on the frozen features with
        the BI head's budget (``config``: epochs, lr, weight decay, batch size, seed). When the BI
        heads train the trunk's head too (``config.finetune == "head"``), so does the control:
        head (lr ``config.trunk_lr``) and classifier, on cached backbone outputs.
        Returns ``(TrunkHandle, record, out_dir)``."""
        sets = [train_set] + ([val_set] if val_set is not None else [])
        budget = {k: getattr(config, k) for k in ("epochs", "lr", "weight_decay", "batch_size", "seed")}
        if config.finetune == "head":
            budget.update(finetune="head", trunk_lr=config.trunk_lr)  # (keys without it are unchanged)
            features = self.backbone(handle, sets)
        elif config.finetune != "none":
            raise ValueError(f"the equally trained baseline supports finetune 'none' or 'head', not {config.finetune!r}")
        features = features if features is not None else self.features(handle, sets)
        out_dir = self.run_dir(runs_dir, f"classifier_{handle.trunk.name}", handle.fingerprint, budget,
                               self.short_side, *[dataset_fingerprint(ds) for ds in sets], stage="classifier")
        trained = handle.copy()
        with run_lock(out_dir):
            record = train_classifier(trained.trunk, train_set, val_set, features, out_dir, **budget,
                                      device=self.device, resume=resume, progress=self.progress)
        return self.trunk_from_checkpoint(out_dir / "best.pt"), record, out_dir

    # ------------------------------------------------------------------ superpixels
    def superpixels(self, provider, datasets: Sequence[SegmentationDataset], n_segments: int) -> dict:
        """``{image id: (H, W) int32 labels}`` of every image of ``datasets`` from the label cache.

        ``provider``: anything :func:`sin.get_provider` accepts. The maps come from the toolkit's
        one runner, :func:`sin.parallel.label_maps` (on :attr:`executor`, or :attr:`processes`
        local workers; workers read the images themselves).
        """
        provider = get_provider(provider)
        n_segments = int(n_segments)
        if n_segments < 1:
            raise ValueError(f"n_segments must be a positive integer, got {n_segments}")
        labels = {}
        for ds in datasets:
            ids = list(ds.ids)
            maps = label_maps(provider, [image_source(_load_image, ds, sid, name=sid) for sid in ids], n_segments,
                              cache=self.label_cache, executor=self.executor, processes=self.processes,
                              progress=self.progress, desc=f"superpixels {provider.spec_string()} k={n_segments}")
            for sid, lab in zip(ids, maps):
                if lab.size == 0:
                    raise ValueError(f"provider {provider.spec_string()} returned an empty label map for {sid}")
                labels[sid] = lab
        return labels

    # ------------------------------------------------------------------ BI heads
    def train_bi(self, handle: TrunkHandle, provider, n_segments: int, train_set: SegmentationDataset,
                 val_set: SegmentationDataset | None, *, config: BITrainConfig | None = None, out_dir=None,
                 runs_dir=None, resume: bool = True, meta: dict | None = None):
        """Superpixels, the BI inputs and a trained head (best epoch on val).

        Returns ``(head, state, record, out_dir)``; ``state`` is the ``best.pt`` content. The
        checkpoint records the provider's spec string and fingerprint, ``n_segments``, the trunk's
        weights digest and the code version.
        """
        provider = get_provider(provider)
        config = config or BITrainConfig(short_side=self.short_side)
        sets = [train_set] + ([val_set] if val_set is not None else [])
        if out_dir is None:
            if runs_dir is None:
                raise ValueError("train_bi needs out_dir or runs_dir")
            out_dir = self.run_dir(runs_dir, f"bi_{provider.tag}_k{int(n_segments)}", handle.fingerprint,
                                   config_key(config), self.short_side, *[dataset_fingerprint(ds) for ds in sets],
                                   stage="bi")
        sps = self.superpixels(provider, sets, n_segments)
        inputs = self.bi_inputs(handle, sets, config.finetune)
        head = build_head(handle.trunk, train_set.num_classes, config)
        info = {"provider": provider.spec_string(), "provider_fingerprint": provider.fingerprint,
                "n_segments": int(n_segments), "trunk_fingerprint": handle.fingerprint,
                "trunk": handle.source, "version": TRAIN_VERSIONS["bi"], **(meta or {})}
        with run_lock(out_dir):
            record = train_bi(head, train_set, val_set, sps, out_dir, config=config, feature_cache=inputs,
                              trunk=handle.copy().trunk, device=self.device, resume=resume, progress=self.progress,
                              meta=info)
        head, state = load_bi_checkpoint(Path(out_dir) / "best.pt")
        return head, state, record, Path(out_dir)

    def train_end_to_end(self, handle: TrunkHandle, n_segments: int, train_set: SegmentationDataset,
                         val_set: SegmentationDataset | None, *, config: BITrainConfig | None = None,
                         e2e: EndToEndConfig | None = None, sin_weights=None, out_dir=None, runs_dir=None,
                         resume: bool = True, meta: dict | None = None):
        """A BI head trained together with SIN (:mod:`.end_to_end`), starting from ``sin_weights``
        (None: the shipped weights) and from the same head initialisation as :meth:`train_bi`.

        Returns ``(head, provider, record, out_dir)``: ``provider`` is the ``sin`` provider with
        the selected fine-tuned weights (``out_dir/sin_best.pt``, fp32), the hard superpixels to
        evaluate the head with. The run folder's key covers the trunk, both configurations, the
        starting SIN weights (the provider fingerprint), the data and the code of both modules.
        """
        config = config or BITrainConfig(short_side=self.short_side)
        e2e = e2e or EndToEndConfig()
        start = get_provider("sin").with_params(weights=None if sin_weights is None else str(sin_weights),
                                                precision="fp32")
        sets = [train_set] + ([val_set] if val_set is not None else [])
        if out_dir is None:
            if runs_dir is None:
                raise ValueError("train_end_to_end needs out_dir or runs_dir")
            out_dir = self.run_dir(runs_dir, f"bi_sin_e2e_k{int(n_segments)}", handle.fingerprint, config_key(config),
                                   asdict(e2e), start.fingerprint, self.short_side,
                                   *[dataset_fingerprint(ds) for ds in sets], stage="e2e")
        out_dir = Path(out_dir)
        feats = self.features(handle, sets)
        head = build_head(handle.trunk, train_set.num_classes, config)
        info = {"start_provider": start.spec_string(), "start_fingerprint": start.fingerprint,
                "n_segments": int(n_segments), "trunk_fingerprint": handle.fingerprint, "trunk": handle.source,
                **(meta or {})}
        with run_lock(out_dir):
            record = train_end_to_end(head, load_model(start.weights_file), train_set, val_set, feats, out_dir,
                                      n_segments=int(n_segments), bi_config=config, config=e2e, device=self.device,
                                      resume=resume, progress=self.progress, meta=info)
        head, _, _ = load_end_to_end(out_dir / "best.pt")
        provider = get_provider("sin").with_params(weights=str(out_dir / "sin_best.pt"), precision="fp32")
        return head, provider, record, out_dir

    @staticmethod
    def bi_provider(state: dict, provider=None, n_segments: int | None = None, *,
                    allow_provider_change: bool = False) -> tuple[Provider, int]:
        """The provider and count to evaluate a BI checkpoint with: the ones it was trained with, or
        the given ones. A provider whose fingerprint differs from the trained one (other
        parameters, weights or code) raises :class:`ProviderMismatch`, or only warns with
        ``allow_provider_change``."""
        meta = state.get("meta", {})
        trained_spec, trained_fp = meta.get("provider"), meta.get("provider_fingerprint")
        if provider is None and trained_spec is None:
            raise ValueError("the BI checkpoint does not record its provider: pass one")
        prov = get_provider(provider if provider is not None else trained_spec)
        n = int(n_segments if n_segments is not None else meta.get("n_segments", 0) or 0)
        if n < 1:
            raise ValueError("the BI checkpoint does not record its n_segments: pass one")
        if trained_fp is not None and prov.fingerprint != trained_fp:
            msg = (f"the BI head was trained on {trained_spec} superpixels (fingerprint {trained_fp}) but is "
                   f"evaluated with {prov.spec_string()} (fingerprint {prov.fingerprint}): other parameters, "
                   "weights or provider code")
            if not allow_provider_change:
                raise ProviderMismatch(msg + "; pass --allow-provider-change to evaluate anyway")
            warnings.warn(msg, stacklevel=2)
        return prov, n

    def load_bi(self, path, handle: TrunkHandle, provider=None, n_segments: int | None = None, *,
                allow_provider_change: bool = False):
        """``(head, trunk handle with the BI run's trunk state, provider, n_segments, state)``.

        An end-to-end checkpoint (:mod:`.end_to_end`) is evaluated with the ``sin`` provider and the
        fine-tuned SIN saved beside it (``sin_best.pt``), unless ``provider`` is given."""
        if load_torch_file(path, "checkpoint").get("format") == E2E_FORMAT:
            head, _, state = load_end_to_end(path)
            sin_file = Path(path).parent / "sin_best.pt"
            if provider is None and not sin_file.is_file():
                raise FileNotFoundError(f"the fine-tuned SIN of {path} is missing: {sin_file}")
            prov = get_provider(provider) if provider is not None else \
                get_provider("sin").with_params(weights=str(sin_file), precision="fp32")
            n = int(n_segments if n_segments is not None else state["n_segments"])
            return head, handle.copy(), prov, n, state
        head, state = load_bi_checkpoint(path)
        prov, n = self.bi_provider(state, provider, n_segments, allow_provider_change=allow_provider_change)
        bi_handle = handle.copy()
        if state.get("trunk_state") is not None:
            bi_handle.trunk.load_state_dict(state["trunk_state"])
        return head, bi_handle, prov, n, state

    def evaluate_bi(self, head, handle: TrunkHandle, provider, n_segments: int, dataset: SegmentationDataset, *,
                    finetune: str = "none", inputs_from: TrunkHandle | None = None, png_dir=None,
                    predictions: dict | None = None, per_image: dict | None = None,
                    band_widths=None) -> ConfusionMatrix:
        """Confusion matrix of a BI head on ``dataset``. ``inputs_from``: the trunk whose cached
        features / backbone outputs BI reads (default ``handle``; the backbone is never trained)."""
        sps = self.superpixels(provider, [dataset], n_segments)
        inputs = self.bi_inputs(inputs_from or handle, [dataset], finetune)
        return evaluate_bi(head, dataset, sps, feature_cache=inputs, trunk=handle.trunk, finetune=finetune,
                           short_side=self.short_side, device=self.device, progress=self.progress, png_dir=png_dir,
                           predictions=predictions, per_image=per_image, band_widths=band_widths)

    def evaluate_baseline(self, handle: TrunkHandle, dataset: SegmentationDataset, *, features=None, png_dir=None,
                          predictions: dict | None = None, per_image: dict | None = None,
                          band_widths=None) -> ConfusionMatrix:
        """The trunk alone (bilinear upsampling) on ``dataset``, from cached features."""
        features = features if features is not None else self.features(handle, [dataset])
        return evaluate_baseline(handle.trunk, dataset, short_side=self.short_side, feature_cache=features,
                                 device=self.device, progress=self.progress, png_dir=png_dir,
                                 predictions=predictions, per_image=per_image, band_widths=band_widths)

    # ------------------------------------------------------------------ untrained refinements: CRF, superpixel average
    def select_crf(self, handle: TrunkHandle, val_set: SegmentationDataset, grid, *, runs_dir,
                   features=None) -> tuple[CRFParams, list[dict]]:
        """The grid point with the best val mIoU (ties: the first), and every point's score.

        Cached in ``runs_dir`` (key: trunk weights, grid, val images, input size, version)."""
        grid = list(grid)
        path = self.run_dir(runs_dir, "crf_select", handle.fingerprint, [g.as_dict() for g in grid], self.short_side,
                            dataset_fingerprint(val_set), stage="crf_select").with_suffix(".json")
        with run_lock(path):  # another process selecting the same: wait, then read its result
            scores = self._crf_scores(path, grid, handle, val_set, features)
        finite = [i for i, s in enumerate(scores) if np.isfinite(s["val_miou"])]
        if not finite:
            raise ValueError("every CRF grid point scored NaN on val")
        best = max(finite, key=lambda i: (scores[i]["val_miou"], -i))
        return grid[best], scores

    def _crf_scores(self, path: Path, grid, handle, val_set, features) -> list[dict]:
        scores = None
        if path.is_file():
            try:
                scores = json.loads(path.read_text())["scores"]
                if [CRFParams(**s["params"]) for s in scores] != grid:
                    scores = None
            except (ValueError, KeyError, TypeError):
                scores = None  # damaged: recompute
        if scores is None:
            features = features if features is not None else self.features(handle, [val_set])
            cms = crf_grid_search(handle.trunk, val_set, grid, short_side=self.short_side, feature_cache=features,
                                  device=self.device, progress=self.progress)
            scores = [{"params": g.as_dict(), "val_miou": cm.mean_iou()} for g, cm in zip(grid, cms)]
            atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps({"scores": scores}, indent=1)))
        return scores

    def evaluate_crf(self, handle: TrunkHandle, dataset: SegmentationDataset, params: CRFParams, *, features=None,
                     superpixels: dict | None = None, predictions: dict | None = None,
                     per_image: dict | None = None, band_widths=None) -> ConfusionMatrix:
        """The trunk's probabilities refined by the dense CRF (optionally averaged in ``superpixels`` first)."""
        features = features if features is not None else self.features(handle, [dataset])
        return evaluate_crf(handle.trunk, dataset, params, superpixels=superpixels, short_side=self.short_side,
                            feature_cache=features, device=self.device, progress=self.progress,
                            predictions=predictions, per_image=per_image, band_widths=band_widths)

    def evaluate_superpixel_average(self, handle: TrunkHandle, provider, n_segments: int,
                                    dataset: SegmentationDataset, *, features=None, predictions: dict | None = None,
                                    per_image: dict | None = None, band_widths=None) -> ConfusionMatrix:
        """No training: the trunk's probabilities averaged inside each superpixel of ``provider``."""
        features = features if features is not None else self.features(handle, [dataset])
        sps = self.superpixels(provider, [dataset], n_segments)
        return evaluate_superpixel_average(handle.trunk, dataset, sps, short_side=self.short_side,
                                           feature_cache=features, device=self.device, progress=self.progress,
                                           predictions=predictions, per_image=per_image, band_widths=band_widths)

    # ------------------------------------------------------------------ cached evaluations
    def cached_evaluation(self, runs_dir, kind: str, parts: list, dataset: SegmentationDataset, compute, *,
                          keep_predictions=()) -> dict:
        """``compute(per_image, predictions) -> ConfusionMatrix`` once per key, then from the cache.

        Returns ``{"miou": float, "per_image": (N, ...) int64 stack in dataset order, "predictions":
        {id: prediction} for the ids in keep_predictions}``. The file (``runs_dir/<kind>_<digest>.npz``)
        is keyed by ``parts`` (what was evaluated: trunk / head / provider fingerprints, parameters)
        and the dataset's images; a file whose ids or shapes do not match is recomputed.
        """
        path = self.run_dir(runs_dir, kind, *parts, self.short_side, dataset_fingerprint(dataset),
                            stage="eval").with_suffix(".npz")
        ids = list(dataset.ids)
        keep = [i for i in keep_predictions if i in set(ids)]
        if path.is_file():
            try:
                with np.load(path) as z:
                    stack, miou = z["per_image"], float(z["miou"])
                    stored_ids = [str(i) for i in z["ids"]]
                    preds = {i: z[f"pred_{k}"] for k, i in enumerate(keep)}
                if stored_ids == ids and stack.shape[0] == len(ids) and stack.dtype.kind == "i":
                    return {"miou": miou, "per_image": stack, "predictions": preds}
            except (OSError, ValueError, KeyError):
                pass  # damaged or from another layout: recompute
        per_image, predictions = {}, {}
        cm = compute(per_image, predictions)
        stack = per_image_stack(per_image, ids)
        preds = {i: predictions[i] for i in keep if i in predictions}

        def _write(tmp):
            with open(tmp, "wb") as f:
                np.savez_compressed(f, per_image=stack, miou=np.float64(cm.mean_iou()), ids=np.array(ids),
                                    **{f"pred_{k}": preds[i] for k, i in enumerate(keep) if i in preds})

        atomic_write(path, _write)
        return {"miou": cm.mean_iou(), "per_image": stack, "predictions": preds}


def _load_image(dataset: SegmentationDataset, sid: str) -> np.ndarray:
    """The image of ``sid`` (what a worker of the runner loads; the dataset object is pickled)."""
    return dataset.load(sid).image


def per_image_stack(per_image: dict, ids: Sequence[str]) -> np.ndarray:
    """``(N, K, K)`` per-image confusion matrices in the order of ``ids``."""
    return np.stack([per_image[i] for i in ids])

