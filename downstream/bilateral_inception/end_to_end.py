"""SIN trained end to end through a Bilateral Inception head: task-specific superpixels.

During training the superpixels are SIN's *soft* assignment (:func:`sin.soft_interpolate`: every
pixel shares its weight between the <= 4 seeds of its grid cell), so the BI loss reaches SIN's
association scores through the superpixel features, the grid-to-superpixel sources and the
smearing of superpixel scores back to pixels. At evaluation SIN gives hard labels through the
ordinary ``sin`` provider (``sin:weights=<fine-tuned file>``), exactly as a user would deploy it,
so the hard map is 4-connected by construction and the BI head sees the same kind of input it
sees everywhere else in the toolkit.

What is trained, and why (defaults of :class:`EndToEndConfig`):

* the BI head, initialised and optimised exactly as for the fixed-superpixel rows
  (:class:`.bi_training.BITrainConfig`: same epochs, learning rate, schedule, batch size, seed);
* SIN's **decoder** (the eight deconvolution + prediction stages, 0.6 M of 1.8 M parameters, every
  association decision) with Adam at ``sin_lr``; the encoder is frozen in eval mode (its BatchNorm
  statistics stay those of BSDS500) and its output is computed once per image. This keeps one
  epoch at about twice the cost of a fixed-superpixel epoch on 2 CPU cores; ``sin_train="all"``
  trains the whole network (use it on a GPU);
* the trunk stays frozen (cached features), as for every other row;
* a regulariser that keeps SIN a superpixel method: SIN's own reconstruction loss
  (:func:`sin.loss.sin_loss`) on the task's label map at the network resolution, void pixels
  ignored, normalised per network pixel and weighted by ``aux_weight``.

The soft assignment is computed at the network resolution (``16n-15 x 16m-15``) and resized to the
image with the nearest-neighbour rule of the hard path (:func:`sin.inference.resize_labels`), so the
soft map's argmax and the deployed hard map are the same function of the association scores.

The model is selected on val (mIoU with *hard* SIN labels every epoch); test is evaluated once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sin.checkpoint import load_torch_file, save_weights
from sin.inference import SINPredictor, _limit_grid, _nearest_index, normalize_image
from sin.interpolation import soft_interpolate
from sin.loss import sin_loss
from sin.model import STEPS, SINNet
from sin.pooling import Assignment, superpixel_unpool

from .bi_training import BITrainConfig, _head_config
from .datasets import VOID
from .evaluation import evaluate_bi
from .features import grid_assignment, superpixel_features
from .loop import end_epoch, load_state, lr_factor, optimizer_step, progress_bar, resume_state, seed_everything, \
    shape_batches, shuffle_rng
from .model import BilateralInceptionHead
from .preprocess import image_to_tensor, label_tensor

__all__ = ["E2E_FORMAT", "EndToEndConfig", "SoftSIN", "grouped_superpixel_logits", "end_to_end_loss",
           "train_end_to_end", "export_sin", "load_end_to_end", "hard_sin_labels"]

E2E_FORMAT = "bi-sin-e2e-v1"


@dataclass
class EndToEndConfig:
    """What SIN does while a BI head trains through it (the head's own settings: ``BITrainConfig``).

    Attributes
    ----------
    sin_lr : float
        Adam learning rate of SIN's trained parameters (cosine-decayed like the head's).
    sin_train : {"decoder", "all"}
        SIN parameters that are trained (see the module notes).
    aux_weight : float
        Weight of SIN's reconstruction loss on the task labels (per network pixel); 0 disables it.
        0.1 was selected on MSRC-21 val over 1 (``results/semseg/README.md``).
    temperature : float
        Softmax temperature of the association scores in the soft assignment.
    """

    sin_lr: float = 1e-4
    sin_train: str = "decoder"
    aux_weight: float = 0.1
    temperature: float = 1.0

    def __post_init__(self):
        if self.sin_train not in ("decoder", "all"):
            raise ValueError(f"sin_train must be 'decoder' or 'all', got {self.sin_train!r}")
        if not self.sin_lr > 0 or not self.temperature > 0:
            raise ValueError("sin_lr and temperature must be > 0")
        if not (self.aux_weight >= 0 and np.isfinite(self.aux_weight)):
            raise ValueError(f"aux_weight must be a finite number >= 0, got {self.aux_weight}")


#: command-line flags of :class:`EndToEndConfig` (field -> help); defaults come from the dataclass
_E2E_FLAGS = {"sin_lr": "Adam lr of SIN", "sin_train": "SIN parameters trained (decoder: encoder frozen and cached)",
              "aux_weight": "weight of SIN's own loss on the task labels (0: none; 0.1 selected on MSRC-21 val)",
              "temperature": "softmax temperature of SIN's soft assignment"}


def add_e2e_args(parser, *, prefix: str = "", what: str = "") -> None:
    """``--{prefix}sin-lr``, ``--{prefix}sin-train``, ``--{prefix}aux-weight``, ``--{prefix}temperature``
    (the one place their types and defaults are written: :class:`EndToEndConfig`)."""
    from sin.argtypes import number, positive_float

    d = EndToEndConfig()
    types = {"sin_lr": positive_float, "aux_weight": number(float, low=0), "temperature": positive_float}
    for field_name, text in _E2E_FLAGS.items():
        flag = f"--{prefix}{field_name.replace('_', '-')}"
        kw = {"choices": ["decoder", "all"]} if field_name == "sin_train" else {"type": types[field_name]}
        parser.add_argument(flag, dest=f"{prefix.replace('-', '_')}{field_name}", default=getattr(d, field_name),
                            help=f"{what}{text} (default {getattr(d, field_name)})", **kw)


def e2e_config_from_args(args, *, prefix: str = "") -> EndToEndConfig:
    """The :class:`EndToEndConfig` of the flags of :func:`add_e2e_args`."""
    p = prefix.replace("-", "_")
    return EndToEndConfig(**{f: getattr(args, p + f) for f in _E2E_FLAGS})


class SoftSIN(nn.Module):
    """A SIN network that returns a differentiable assignment at the input image's resolution.

    ``forward(image, n_segments, encoded=None) -> (logits, assignment, network_size)``:
    ``image (B, 3, H, W)`` RGB in [0, 1]; ``logits`` the eight step logits (for the auxiliary
    loss); ``assignment`` an :class:`~sin.pooling.Assignment` ``(B, 4, H, W)``. ``encoded``: the
    encoder output when it is frozen and cached.
    """

    def __init__(self, model: SINNet, *, train: str = "decoder", temperature: float = 1.0):
        super().__init__()
        self.model = model
        self.train_part = train
        self.temperature = float(temperature)
        for name, p in model.named_parameters():
            p.requires_grad_(train == "all" or name.startswith(("deconv", "pred_mask")))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def train(self, mode: bool = True):
        super().train(mode)
        # the encoder's BatchNorm keeps its statistics (small batches; frozen encoder)
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    @staticmethod
    def grid(n_segments: int, height: int, width: int) -> tuple[int, int]:
        """The seed grid the hard path uses for this request and image size."""
        n, m, _ = _limit_grid(int(n_segments), int(height), int(width))
        return n, m

    def network_input(self, image: torch.Tensor, n_segments: int) -> torch.Tensor:
        """The normalised network input: the image resized as :class:`sin.SINPredictor` does."""
        n, m = self.grid(n_segments, *image.shape[-2:])
        size = (16 * n - 15, 16 * m - 15)
        x = image
        if tuple(image.shape[-2:]) != size:
            x = F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0.0, 1.0)
        return normalize_image(x)

    def encode(self, image: torch.Tensor, n_segments: int) -> torch.Tensor:
        return self.model.encode(self.network_input(image, n_segments))

    def forward(self, image: torch.Tensor, n_segments: int, encoded: torch.Tensor | None = None):
        if encoded is None:
            encoded = self.encode(image, n_segments)
        feat, logits = encoded, []
        for step in STEPS:  # SINNet.forward after the encoder
            feat = getattr(self.model, f"deconv{step[0]}_{step[1]}")(feat)
            logits.append(getattr(self.model, f"pred_mask{step[0]}_{step[1]}")(feat))
        a = soft_interpolate(logits, temperature=self.temperature)
        h, w = image.shape[-2:]
        hn, wn = a.shape
        rows, cols = _nearest_index(h, hn, image.device), _nearest_index(w, wn, image.device)
        index = a.index.index_select(3, cols).index_select(2, rows)
        weight = a.weight.index_select(3, cols).index_select(2, rows)
        return logits, Assignment(index=index, weight=weight, num_superpixels=a.num_superpixels), (hn, wn)


def grouped_superpixel_logits(head: BilateralInceptionHead, features: torch.Tensor, image: torch.Tensor,
                              assignment: Assignment) -> tuple[torch.Tensor, torch.Tensor]:
    """``head.superpixel_logits`` with the BI6 sources merged per superpixel for soft assignments too.

    For a hard assignment the head merges the trunk's grid points of one superpixel into a single
    BI6 source (their mean value, multiplicity = their number; exact). With SIN's soft assignment
    a grid point belongs to up to 4 superpixels, and the head falls back to one source per grid
    point (~1600 instead of ~600 at k=600 on MSRC-21: 2-3x the cost of the whole head). Here
    the same merge is done with the soft weights: source ``s`` carries the weighted mean of the
    grid values and the soft multiplicity ``sum_p w_ps``, at superpixel ``s``'s own features. It is
    identical to the head's path for hard assignments (tested) and a documented approximation of
    the per-grid-point sources for soft ones. One image size per batch (no padding).
    """
    sp = superpixel_features(image, assignment, **head.feature_scales)
    sp_feat = head.transform(sp.features.to(features.dtype))
    grid, _ = grid_assignment(assignment, features.shape[-2:], align_corners=head.align_corners)
    values = features.flatten(2)  # (B, C, P)
    b, c, _ = values.shape
    k = assignment.num_superpixels
    idx = grid.index.flatten(2).flatten(1)  # (B, S*P), slot-major
    w = grid.weight.flatten(2).to(values.dtype)  # (B, S, P)
    counts = values.new_zeros((b, k)).scatter_add(1, idx, w.flatten(1))
    weighted = (values.unsqueeze(2) * w.unsqueeze(1)).flatten(2)  # (B, C, S*P)
    sums = values.new_zeros((b, c, k)).scatter_add(2, idx.unsqueeze(1).expand(b, c, -1), weighted)
    means = sums / counts.clamp_min(1e-12).unsqueeze(1)
    x = head.bi6(means, sp_feat, sp_feat, target_mask=sp.mask, source_counts=counts)
    x = head.dropout(head.act(x))
    x = head.fc7(x)
    x = head.bi7(x, sp_feat, sp_feat, source_mask=sp.mask, target_mask=sp.mask)
    x = head.dropout(head.act(x))
    return head.classifier(x) * sp.mask.unsqueeze(1).to(x.dtype), sp.mask


def aux_target(label: torch.Tensor, size) -> torch.Tensor:
    """``(B, H, W)`` task labels resized (nearest, centre-aligned) to the network size."""
    hn, wn = size
    rows = _nearest_index(hn, label.shape[-2], label.device)
    cols = _nearest_index(wn, label.shape[-1], label.device)
    return label.index_select(2, cols).index_select(1, rows)


def end_to_end_loss(head: BilateralInceptionHead, soft_sin: SoftSIN, features, image, label, n_segments: int,
                    config: EndToEndConfig, encoded=None) -> tuple[torch.Tensor, dict]:
    """BI pixel cross-entropy on the soft assignment (+ ``aux_weight`` x SIN's loss on ``label``).

    ``features (B, C, h, w)``, ``image (B, 3, H, W)`` in [0, 1], ``label (B, H, W)`` (void 255),
    one image size per batch.
    """
    logits, assignment, size = soft_sin(image, n_segments, encoded)
    if not bool(torch.isfinite(features).all()):
        raise ValueError("Bilateral Inception features contain NaN or inf")
    sp_logits, _ = grouped_superpixel_logits(head, features, image, assignment)
    pixel_logits = superpixel_unpool(sp_logits, assignment)
    valid = label != VOID
    if not bool(valid.any()):
        bi = pixel_logits.sum() * 0.0
    else:
        bi = F.cross_entropy(pixel_logits, label, ignore_index=VOID)
    terms = {"bi": float(bi.detach())}
    loss = bi
    if config.aux_weight > 0:
        aux = sin_loss(logits, aux_target(label, size), ignore_index=VOID, scale=1.0 / (size[0] * size[1]))
        terms["aux"] = float(aux.detach())
        loss = loss + config.aux_weight * aux
    return loss, terms


def hard_sin_labels(model: SINNet, dataset, n_segments: int, *, device="cpu", progress: bool = False) -> dict:
    """``{id: (H, W) int32}`` hard SIN labels of ``dataset`` with ``model``'s current weights (fp32),
    as the ``sin`` provider computes them."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    predictor = SINPredictor(weights=state, device=device, precision="fp32")
    return {sid: predictor(dataset.load(sid).image, n_segments)
            for sid in progress_bar(dataset.ids, "SIN labels", enabled=progress)}


def train_end_to_end(head: BilateralInceptionHead, sin_model: SINNet, train_set, val_set, feature_cache, out_dir,
                     *, n_segments: int = 600, bi_config=None, config: EndToEndConfig | None = None, device="cpu",
                     resume: bool = True, progress: bool = True, meta: dict | None = None) -> dict:
    """Train ``head`` and SIN together; keep the best epoch on ``val_set`` (mIoU, hard SIN labels).

    ``bi_config``: the head's :class:`.bi_training.BITrainConfig` (epochs, lr, weight decay, batch
    size, seed; ``finetune`` must be ``"none"``: the trunk is frozen and ``feature_cache`` holds
    its features). Writes ``last.pt`` / ``best.pt`` (head + SIN state) and ``sin_best.pt`` (the
    selected SIN weights in the toolkit's weights format, loadable as ``sin:weights=...``) to
    ``out_dir``; returns the training record.
    """
    bcfg = bi_config or BITrainConfig()
    config = config or EndToEndConfig()
    if bcfg.finetune != "none":
        raise ValueError("end-to-end SIN training keeps the trunk frozen (finetune='none')")
    if feature_cache is None:
        raise ValueError("end-to-end SIN training needs the trunk feature cache")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(bcfg.seed)
    head = head.to(device)
    soft_sin = SoftSIN(sin_model, train=config.sin_train, temperature=config.temperature).to(device)
    groups = head.param_groups(bcfg.lr, weight_decay=bcfg.weight_decay)
    groups.append({"params": soft_sin.trainable_parameters(), "lr": config.sin_lr, "weight_decay": 0.0})
    for g in groups:
        g["base_lr"] = g["lr"]
    opt = torch.optim.Adam(groups)
    record, state = resume_state(out_dir / "last.pt", E2E_FORMAT, opt, resume)
    if state is not None:
        head.load_state_dict(state["state_dict"])
        sin_model.load_state_dict(state["sin_state"])
    if record["epoch"] >= bcfg.epochs and (out_dir / "best.pt").is_file():
        export_sin(out_dir)
        return record
    ids = list(train_set.ids)
    samples = {sid: train_set.load(sid) for sid in ids}
    images = {sid: image_to_tensor(samples[sid].image) for sid in ids}
    labels = {sid: label_tensor(samples[sid].label) for sid in ids}
    feats = {sid: feature_cache.load_tensor(sid).float() for sid in ids}
    shapes = [(tuple(images[i].shape), tuple(feats[i].shape)) for i in ids]
    rng = shuffle_rng(bcfg.seed, shapes, bcfg.batch_size, record["epoch"])
    encoded: dict = {}
    head_config = _head_config(head)
    for epoch in range(record["epoch"], bcfg.epochs):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr_factor(epoch, bcfg.epochs)
        head.train()
        soft_sin.train()
        losses, aux = [], []
        for batch_idx in progress_bar(shape_batches(shapes, bcfg.batch_size, True, rng),
                                      f"BI+SIN epoch {epoch + 1}/{bcfg.epochs}", enabled=progress):
            bid = [ids[i] for i in batch_idx]
            image = torch.stack([images[i] for i in bid]).to(device)
            enc = None
            if config.sin_train == "decoder":  # frozen encoder: computed once per image
                missing = [i for i in bid if i not in encoded]
                if missing:
                    with torch.no_grad():
                        out = soft_sin.encode(torch.stack([images[i] for i in missing]).to(device), n_segments)
                    encoded.update({i: o.cpu() for i, o in zip(missing, out)})
                enc = torch.stack([encoded[i] for i in bid]).to(device)
            loss, terms = end_to_end_loss(head, soft_sin, torch.stack([feats[i] for i in bid]).to(device), image,
                                          torch.stack([labels[i] for i in bid]).to(device), n_segments, config, enc)
            optimizer_step(opt, loss)
            losses.append(terms["bi"])
            aux.append(terms.get("aux", 0.0))
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "train_aux": float(np.mean(aux))}
        if val_set is not None:
            sps = hard_sin_labels(sin_model, val_set, n_segments, device=device)
            entry["val_miou"] = evaluate_bi(head, val_set, sps, feature_cache=feature_cache, device=device,
                                            progress=False).mean_iou()
        entry["seconds"] = time.perf_counter() - t0
        ckpt = {"format": E2E_FORMAT, "head_config": head_config, "config": asdict(bcfg), "e2e": asdict(config),
                "n_segments": int(n_segments), "classes": list(train_set.classes), "meta": dict(meta or {})}
        weights = {"state_dict": head.state_dict(),
                   "sin_state": {k: v.detach().cpu() for k, v in sin_model.state_dict().items()}}
        end_epoch(record, entry, epoch, out_dir, ckpt, weights, opt, "BI+SIN", progress)
    export_sin(out_dir)
    return record


def export_sin(out_dir) -> Path:
    """Write the selected SIN of ``out_dir/best.pt`` as ``sin_best.pt`` (the toolkit's weights
    format, loadable as ``sin:weights=...``) unless it is already that epoch's."""
    out_dir = Path(out_dir)
    target = out_dir / "sin_best.pt"
    state = load_state(out_dir / "best.pt", E2E_FORMAT)
    epoch = state["record"]["best_epoch"]
    if target.is_file():
        if load_torch_file(target, "SIN weights").get("meta", {}).get("epoch") == epoch:
            return target
    model = SINNet()
    model.load_state_dict(state["sin_state"])
    save_weights(model, target, meta={"trained": "end to end through a BI head", "epoch": epoch,
                                      "e2e": state.get("e2e"), **state.get("meta", {})})
    return target


def load_end_to_end(path) -> tuple[BilateralInceptionHead, SINNet, dict]:
    """The head and the SIN network of an end-to-end ``best.pt``."""
    state = load_state(path, E2E_FORMAT)
    cfg = dict(state["head_config"])
    head = BilateralInceptionHead(cfg.pop("in_channels"), cfg.pop("num_classes"), cfg.pop("mid_channels"), **cfg)
    head.load_state_dict(state["state_dict"])
    model = SINNet()
    model.load_state_dict(state["sin_state"])
    return head.eval(), model.eval(), state
