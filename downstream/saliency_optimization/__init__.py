"""Saliency Optimization (Zhu et al., CVPR 2014) on pluggable superpixels.

>>> from downstream.saliency_optimization import so_saliency, saliency_optimization
>>> smap = so_saliency(image, provider="slic", n_segments=200)       # (H, W) float32 in [0, 1]
>>> smap = so_saliency(image, provider="slic:compactness=20", so_params="paper")
>>> smap = so_saliency(image, provider=my_superpixels)               # f(image, n_segments) -> labels
>>> smap = saliency_optimization(image, labels)                       # any label map

See :mod:`.core` for the pipeline, :mod:`.colour` for MATLAB ``colorspace`` CIELAB,
:mod:`.graph` for the superpixel graph, :mod:`.datasets` and :mod:`.evaluate` for the ECSSD-style
benchmark (``python -m benchmarks.sod_table``).
"""

from .colour import matlab_rgb_to_lab
from .core import (CODE_PARAMS, MAX_SUPERPIXELS, PAPER_PARAMS, PAPER_UNVERIFIED, SOParams, SOResult,
                   graythresh, resolve_so_params, saliency_optimization, saliency_optimization_details,
                   so_saliency, so_segment_count)

__all__ = ["matlab_rgb_to_lab", "CODE_PARAMS", "MAX_SUPERPIXELS", "PAPER_PARAMS", "PAPER_UNVERIFIED", "SOParams",
           "SOResult", "graythresh", "resolve_so_params", "saliency_optimization", "saliency_optimization_details",
           "so_saliency", "so_segment_count"]
