"""``slic``: scikit-image SLIC with a calibrated superpixel count.

scikit-image's SLIC returns noticeably fewer superpixels than requested (its connectivity
step merges small segments): on BSDS500 at compactness 10 we measured 49-104 % of the request
per image (mean 72 % at K = 200). ``calibrate=True`` (default) re-runs SLIC with the request
scaled by the observed ratio until the count is within ``tolerance`` of ``n_segments``
(at most ``max_rounds`` runs; the result closest to the target is kept).
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import slic

from .registry import register_provider


@register_provider("slic", connected=True, connectivity="post-processing",
                   description="SLIC (Achanta et al. 2012), scikit-image, connectivity enforced, count calibrated")
def slic_superpixels(image: np.ndarray, n_segments: int, *, compactness=10.0, max_num_iter=10,
                     sigma=0.0, calibrate=True, tolerance=0.1, max_rounds=4) -> np.ndarray:
    """SLIC in CIELAB with ``enforce_connectivity=True`` and a count close to ``n_segments``."""
    h, w = image.shape[:2]
    target = min(n_segments, h * w)
    request = target
    best, best_err = None, np.inf
    for _ in range(max_rounds if calibrate else 1):
        labels = slic(image, n_segments=max(1, int(round(request))), compactness=compactness,
                      max_num_iter=max_num_iter, sigma=sigma, start_label=0,
                      enforce_connectivity=True, channel_axis=-1)
        count = int(labels.max()) + 1
        err = abs(count / target - 1.0)
        if err < best_err:
            best, best_err = labels, err
        if err <= tolerance:
            break
        request = min(request * target / count, 4.0 * h * w)
    return best
