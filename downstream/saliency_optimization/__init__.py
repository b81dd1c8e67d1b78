"""Saliency Optimization (Zhu et al., CVPR 2014) on pluggable superpixels.

>>> from downstream.saliency_optimization import so_saliency, saliency_optimization
>>> smap = so_saliency(image, provider="slic")          # the SIN paper's Table 2 setting: (H, W) float32 in [0, 1]
>>> smap = so_saliency(image, provider="sin", row=400)  # its 400 row (round(h w / 300) superpixels)
>>> smap = so_saliency(image, provider="slic:compactness=10", n_segments=200, so_params="paper")
>>> smap = so_saliency(image, provider=my_superpixels)               # f(image, n_segments) -> labels
>>> smap = saliency_optimization(image, labels)                       # any label map

See :mod:`.protocol` for the presets (the SIN paper's count rule, SLIC compactness and SO
constants: ``preset="sin_paper"``, the default), :mod:`.core` for the pipeline, :mod:`.colour` for MATLAB ``colorspace`` CIELAB,
:mod:`.graph` for the superpixel graph, :mod:`.datasets` and :mod:`.evaluate` for the ECSSD-style
benchmark (``python -m benchmarks.sod_table``).
"""

from .colour import matlab_rgb_to_lab
from .core import (CODE_PARAMS, MAX_SUPERPIXELS, PAPER_PARAMS, PAPER_UNVERIFIED, SO_VERSION, SOParams, SOResult,
                   graythresh, resolve_so_params, saliency_optimization, saliency_optimization_details,
                   so_saliency, so_segment_count)
from .protocol import PRESETS, SIN_PAPER, SOProtocol, get_preset

__all__ = ["matlab_rgb_to_lab", "CODE_PARAMS", "MAX_SUPERPIXELS", "PAPER_PARAMS", "PAPER_UNVERIFIED", "PRESETS",
           "SIN_PAPER", "SO_VERSION", "SOParams", "SOProtocol", "SOResult", "get_preset", "graythresh",
           "resolve_so_params", "saliency_optimization", "saliency_optimization_details", "so_saliency",
           "so_segment_count"]
