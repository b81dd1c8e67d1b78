"""SIN superpixels (Yuan et al., PRICAI 2021) and a toolkit around them.

>>> import sin
>>> labels = sin.superpixels(image, n_segments=600)          # SIN, shipped weights
>>> labels = sin.get_provider("slic")(image, n_segments=600)  # any registered method
"""

import sys as _sys

if "torch" not in _sys.modules:
    # Before torch starts its OpenMP runtime: idle threads sleep instead of spinning, so SIN
    # does not slow down 10x next to a busy process (results/sin_speed.md, sin.threads).
    # setdefault: an explicit OMP_WAIT_POLICY / KMP_BLOCKTIME in the environment wins.
    from .threads import configure as _configure_threads

    _configure_threads(passive=True)

from . import providers

from .checkpoint import DEFAULT_WEIGHTS, UntrainedWarning, load_model, save_weights
from .connectivity import check_superpixels, enforce_connectivity, is_4connected, relabel_sequential
from .geometry import grid_shape, network_size
from .inference import SINPredictor, superpixels
from .interpolation import hard_interpolate, soft_interpolate
from .loss import sin_loss
from .model import STEPS, SINNet
from .pooling import Assignment, superpixel_pool, superpixel_unpool
from .providers import LabelCache, Provider, available_providers, get_provider, register_provider

__version__ = "0.1.0"

__all__ = [
    "Assignment",
    "LabelCache",
    "Provider",
    "available_providers",
    "get_provider",
    "providers",
    "register_provider",
    "DEFAULT_WEIGHTS",
    "SINNet",
    "SINPredictor",
    "STEPS",
    "UntrainedWarning",
    "check_superpixels",
    "enforce_connectivity",
    "grid_shape",
    "hard_interpolate",
    "is_4connected",
    "load_model",
    "network_size",
    "relabel_sequential",
    "save_weights",
    "sin_loss",
    "soft_interpolate",
    "superpixel_pool",
    "superpixel_unpool",
    "superpixels",
]
