"""Label-map utilities: contiguity, 4-connectivity checks and connectivity repair.

These are shared by SIN (whose maps can lose connectivity only when they are down-sampled to
a smaller input image) and by every provider in :mod:`sin.providers`, whose output contract
is checked with :func:`check_superpixels`.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label as _cc_label

__all__ = [
    "relabel_sequential",
    "connected_components",
    "is_4connected",
    "enforce_connectivity",
    "check_superpixels",
]


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Map the label values present to ``0..K-1`` (in increasing order of value), as int32."""
    labels = np.asarray(labels)
    if labels.size and np.issubdtype(labels.dtype, np.integer):
        lo, hi = int(labels.min()), int(labels.max())
        if lo >= 0 and hi < 4 * labels.size + 1024:
            # linear time (np.unique sorts: 1.4 s on a 12 MP map): count, then a lookup table
            present = np.bincount(labels.ravel(), minlength=hi + 1) > 0
            if present.all():
                return labels.astype(np.int32)  # a new array, as in every other case
            return (np.cumsum(present) - 1).astype(np.int32)[labels]
    uniq, inv = np.unique(labels, return_inverse=True)
    return inv.reshape(labels.shape).astype(np.int32)


def connected_components(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of equal-valued pixels: ``(component map 0..C-1, C)``."""
    labels = np.asarray(labels)
    # skimage.measure.label joins equal-valued neighbours; shift so that no value is background
    comp, n = _cc_label(labels.astype(np.int64) + 1, background=0, connectivity=1, return_num=True)
    return (comp - 1).astype(np.int32), int(n)


def is_4connected(labels: np.ndarray) -> bool:
    """True if every label value forms a single 4-connected region."""
    labels = np.asarray(labels)
    _, n_comp = connected_components(labels)
    return n_comp == np.unique(labels).size


def _component_adjacency(comp: np.ndarray):
    """Pairs (a, b) of 4-adjacent distinct components, with the length of their shared border."""
    pairs = []
    for a, b in ((comp[:, :-1], comp[:, 1:]), (comp[:-1, :], comp[1:, :])):
        diff = a != b
        pairs.append(np.stack([a[diff], b[diff]], axis=1))
    p = np.concatenate(pairs, axis=0).astype(np.int64)
    p = np.concatenate([p, p[:, ::-1]], axis=0)  # both directions
    return p


def enforce_connectivity(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Make every label 4-connected by merging stray fragments into a neighbour.

    For every label, its largest 4-connected component keeps the label; every other fragment
    is given the label of the kept component it shares the longest border with (fragments
    that touch only other fragments are resolved in later rounds). Labels that end up empty
    disappear and the result is relabelled to ``0..K-1``.

    Returns
    -------
    labels : (H, W) int32
        Contiguous, 4-connected labels.
    n_changed : int
        Number of pixels whose label was changed by the repair.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise ValueError(f"enforce_connectivity needs a non-empty 2-D label map, got shape {labels.shape}")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"enforce_connectivity needs integer labels, got {labels.dtype}")
    lab = relabel_sequential(labels)
    comp, n_comp = connected_components(lab)
    n_labels = int(lab.max()) + 1
    if n_comp == n_labels:
        return lab, 0
    comp_flat = comp.ravel()
    sizes = np.bincount(comp_flat, minlength=n_comp)
    comp_label = np.zeros(n_comp, dtype=np.int64)
    comp_label[comp_flat] = lab.ravel()
    # the largest component of each label keeps it (ties: lowest component id)
    order = np.lexsort((np.arange(n_comp), -sizes, comp_label))
    first = np.ones(n_comp, dtype=bool)
    first[1:] = comp_label[order[1:]] != comp_label[order[:-1]]
    kept = np.zeros(n_comp, dtype=bool)
    kept[order[first]] = True
    pairs = _component_adjacency(comp)
    new_label = np.where(kept, comp_label, -1)
    while (new_label < 0).any():
        # candidate edges: orphan component -> already labelled neighbour component
        src, dst = pairs[:, 0], pairs[:, 1]
        sel = (new_label[src] < 0) & (new_label[dst] >= 0)
        if not sel.any():  # an image made only of fragments cannot happen, but never loop forever
            raise RuntimeError("enforce_connectivity: no labelled neighbour for remaining fragments")
        s, t = src[sel], new_label[dst[sel]]
        # border length per (orphan, target label); pick the longest per orphan
        key = s * (n_labels + 1) + t
        uk, counts = np.unique(key, return_counts=True)
        us, ut = uk // (n_labels + 1), uk % (n_labels + 1)
        best = np.lexsort((ut, -counts, us))
        choose = np.ones(best.size, dtype=bool)
        choose[1:] = us[best[1:]] != us[best[:-1]]
        new_label[us[best[choose]]] = ut[best[choose]]
    out = new_label[comp]
    n_changed = int((out != lab).sum())
    return relabel_sequential(out), n_changed


def check_superpixels(labels, shape=None, *, connected: bool = True) -> None:
    """Raise ``ValueError`` unless ``labels`` meets the provider contract.

    The contract: a 2-D ``int32`` array (of ``shape`` if given) with values exactly
    ``0..K-1`` (all present) and, if ``connected``, every region 4-connected.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    if shape is not None and labels.shape != tuple(shape):
        raise ValueError(f"labels shape {labels.shape} != expected {tuple(shape)}")
    if labels.dtype != np.int32:
        raise ValueError(f"labels must be int32, got {labels.dtype}")
    k = int(labels.max()) + 1
    if labels.min() != 0 or np.unique(labels).size != k:
        raise ValueError("labels are not contiguous 0..K-1")
    if connected and not is_4connected(labels):
        raise ValueError("some superpixel is not 4-connected")
