"""SIN training loss on association scores (paper Eq. 3-4, original ``loss.py``).

For every step the inserted elements are compared with their two neighbours *in the ground
truth*: the target is the neighbour with the same ground-truth segment, and an element counts
only when exactly one neighbour has the pixel's segment (``../shared/specs/sin.md`` section 4).
Per-level ground truth is the full-resolution label map sampled with strides
``(2^(L+1), 2^L)`` for horizontal and ``(2^L, 2^L)`` for vertical steps of level L.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .model import STEPS

__all__ = ["sin_loss", "distill_loss", "odd_scores", "step_targets", "PAPER_WEIGHTS_H", "PAPER_WEIGHTS_V"]

#: Weights of the horizontal / vertical losses for levels 3, 2, 1, 0 (coarse to fine).
PAPER_WEIGHTS_H = (20.0, 10.0, 5.0, 2.5)
PAPER_WEIGHTS_V = (8.0, 4.0, 2.0, 1.0)


def step_targets(target: torch.Tensor, step: str, ignore_index: int | None = None):
    """Ground truth of one step at its inserted positions.

    Parameters
    ----------
    target : (B, H, W) integer tensor
        Full-resolution ground-truth segment ids (``H = 16n - 15``).
    step : str
        One of :data:`sin.model.STEPS`.
    ignore_index : int, optional
        Ground-truth value that marks unlabelled pixels; an element is ignored when it or
        either neighbour carries it.

    Returns
    -------
    cls : (B, h', w') int64
        1 if the element should take the right/bottom neighbour, else 0.
    weight : (B, h', w') float
        1 where exactly one neighbour has the element's segment, else 0.
    """
    level, axis = int(step[0]), step[1]
    s = 2 ** level
    if axis == "h":
        grid = target[:, :: 2 * s, ::s]
        centre, prev, nxt = grid[:, :, 1::2], grid[:, :, 0:-1:2], grid[:, :, 2::2]
    else:
        grid = target[:, ::s, ::s]
        centre, prev, nxt = grid[:, 1::2, :], grid[:, 0:-1:2, :], grid[:, 2::2, :]
    same_prev = centre == prev
    same_next = centre == nxt
    cls = (~same_prev & same_next).long()
    valid = same_prev ^ same_next
    if ignore_index is not None:
        valid &= (centre != ignore_index) & (prev != ignore_index) & (nxt != ignore_index)
    return cls, valid.to(torch.float32)


def sin_loss(
    logits: Sequence[torch.Tensor],
    target: torch.Tensor,
    *,
    weights_h: Sequence[float] = PAPER_WEIGHTS_H,
    weights_v: Sequence[float] = PAPER_WEIGHTS_V,
    on_probabilities: bool = False,
    scale: float = 0.005,
    ignore_index: int | None = None,
    return_terms: bool = False,
):
    """SIN loss: weighted sum over the 8 steps of the masked cross-entropy.

    Parameters
    ----------
    logits : sequence of 8 tensors ``(B, 2, h, w)``
        Network outputs in :data:`sin.model.STEPS` order.
    target : (B, H, W) or (B, 1, H, W) integer tensor
        Ground-truth segment ids at the network input resolution.
    weights_h, weights_v : sequences of 4 floats
        Step weights for levels 3, 2, 1, 0 (paper: [20, 10, 5, 2.5] and [8, 4, 2, 1]).
    on_probabilities : bool, optional
        Reproduce the original code, which applies ``CrossEntropyLoss`` to *softmax
        probabilities* (a double softmax; per-element loss bounded in [0.313, 1.313]).
        Default False: cross-entropy on the logits.
    scale : float, optional
        Global factor of the original code (0.005).
    ignore_index : int, optional
        Ground-truth value of unlabelled pixels.
    return_terms : bool, optional
        Also return a dict of the unweighted per-step losses.

    Returns
    -------
    loss : scalar tensor
        ``scale * sum_steps w_step * mean_over_batch(sum_over_elements(mask * CE))``.
    """
    if len(logits) != len(STEPS):
        raise ValueError(f"expected {len(STEPS)} logit tensors, got {len(logits)}")
    if target.ndim == 4:
        target = target[:, 0]
    if target.ndim != 3 or target.is_floating_point():
        raise ValueError(f"target must be an integer (B, H, W) tensor, got {target.dtype} {tuple(target.shape)}")
    if len(weights_h) != 4 or len(weights_v) != 4:
        raise ValueError("weights_h and weights_v need one weight per level (4 each)")
    expected = logits[-1].shape[-2:]
    if tuple(target.shape[-2:]) != tuple(expected):
        raise ValueError(f"target size {tuple(target.shape[-2:])} does not match the network output {tuple(expected)}")
    weights = {}
    for i, level in enumerate((3, 2, 1, 0)):
        weights[f"{level}h"] = weights_h[i]
        weights[f"{level}v"] = weights_v[i]
    total = logits[0].new_zeros(())
    terms = {}
    for step, lg in zip(STEPS, logits):
        cls, valid = step_targets(target, step, ignore_index)
        odd = lg[:, :, :, 1::2] if step[1] == "h" else lg[:, :, 1::2, :]
        scores = torch.softmax(odd, dim=1) if on_probabilities else odd
        ce = F.cross_entropy(scores, cls, reduction="none")
        term = (ce * valid.to(ce.dtype)).sum(dim=(1, 2)).mean()
        terms[step] = term.detach()
        total = total + weights[step] * term
    loss = scale * total
    return (loss, terms) if return_terms else loss


def odd_scores(logits: torch.Tensor, step: str) -> torch.Tensor:
    """``logit_1 - logit_0`` of one step's ``(B, 2, h, w)`` logits at its inserted (odd) positions:
    ``(B, h, w')`` (what :meth:`sin.fast_model.FastSIN.scores` computes directly)."""
    odd = logits[:, :, :, 1::2] if step[1] == "h" else logits[:, :, 1::2, :]
    return odd[:, 1] - odd[:, 0]


def distill_loss(
    student_logits: Sequence[torch.Tensor],
    teacher_scores: Sequence[torch.Tensor],
    *,
    weights_h: Sequence[float] = PAPER_WEIGHTS_H,
    weights_v: Sequence[float] = PAPER_WEIGHTS_V,
    temperature: float = 1.0,
    scale: float = 0.005,
    return_terms: bool = False,
):
    """Knowledge distillation between two SINs: KL(teacher || student) of every 2-way decision.

    At every inserted position of every step the teacher's probability of "take the right/bottom
    neighbour", ``sigmoid(d_t / T)`` with ``d_t = logit_1 - logit_0``, is the soft target of the
    student's ``sigmoid(d_s / T)`` (Hinton et al. 2015; a 2-way softmax is a sigmoid of the logit
    difference). Unlike :func:`sin_loss`, which only counts positions where exactly one neighbour
    shares the ground-truth segment, every position counts: inside a segment the teacher's choice
    is what makes the superpixels compact.

    Parameters
    ----------
    student_logits : sequence of 8 tensors ``(B, 2, h, w)``
        The student's logits in :data:`sin.model.STEPS` order.
    teacher_scores : sequence of 8 tensors ``(B, h', w')``
        The teacher's logit differences at the inserted positions
        (:meth:`sin.fast_model.FastSIN.scores`, or :func:`odd_scores` of its logits).
    weights_h, weights_v, scale
        Step weights and global factor, as in :func:`sin_loss` (so that both terms weigh the
        steps alike).
    temperature : float, optional
        Softening T of both distributions; the KL is multiplied by ``T**2`` (gradients keep
        their size as T changes).
    return_terms : bool, optional
        Also return a dict of the unweighted per-step KL terms.

    Returns
    -------
    loss : scalar tensor
        ``scale * T**2 * sum_steps w_step * mean_over_batch(sum_over_positions(KL))``; 0 when
        the student's decisions equal the teacher's in probability.
    """
    if len(student_logits) != len(STEPS) or len(teacher_scores) != len(STEPS):
        raise ValueError(f"expected {len(STEPS)} student logit and teacher score tensors, got "
                         f"{len(student_logits)} and {len(teacher_scores)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if len(weights_h) != 4 or len(weights_v) != 4:
        raise ValueError("weights_h and weights_v need one weight per level (4 each)")
    weights = {}
    for i, level in enumerate((3, 2, 1, 0)):
        weights[f"{level}h"] = weights_h[i]
        weights[f"{level}v"] = weights_v[i]
    total = student_logits[0].new_zeros((), dtype=torch.float32)
    terms = {}
    for step, lg, t in zip(STEPS, student_logits, teacher_scores):
        d_s = odd_scores(lg.float(), step) / temperature
        if d_s.shape != t.shape:
            raise ValueError(f"step {step}: student scores {tuple(d_s.shape)} and teacher scores "
                             f"{tuple(t.shape)} differ in shape (the same input size for both?)")
        d_t = t.detach().float() / temperature
        p_t = torch.sigmoid(d_t)
        # KL(p_t || p_s) = BCE(d_s, p_t) - H(p_t): the entropy term is constant for the student
        # but makes the loss 0 at a perfect match (readable in the log)
        kl = (F.binary_cross_entropy_with_logits(d_s, p_t, reduction="none")
              - F.binary_cross_entropy_with_logits(d_t, p_t, reduction="none"))
        term = kl.sum(dim=(1, 2)).mean()
        terms[step] = term.detach()
        total = total + weights[step] * term
    loss = scale * temperature ** 2 * total
    return (loss, terms) if return_terms else loss
