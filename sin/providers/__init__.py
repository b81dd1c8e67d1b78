"""Superpixel providers behind one interface (see :mod:`sin.providers.registry`).

Paper methods: ``sin``, ``slic``, ``snic``, ``ers``. Extras: ``grid``, ``fh``, ``seeds``,
``lsc``, ``ssn`` (deep superpixels; needs its weights file).
"""

from .registry import (Provider, ProviderSpec, SuperpixelCountWarning, WeightsInfo, available_providers, get_provider,
                       parse_provider_spec, provider_table, register_provider)

# importing a module registers its providers
from . import sin_provider, slic, snic, ers  # noqa: E402,F401  (the paper's methods)
from . import grid, felzenszwalb, opencv_extras, ssn  # noqa: E402,F401  (extras)
from . import fastslic  # noqa: E402,F401  (registers only when the optional fast-slic imports)
from . import sin_variants  # noqa: E402,F401  (named SIN weight variants, e.g. fine-tuned through BI)
from .batch import parallel_map, process_pool, run_provider  # noqa: E402
from .cache import LabelCache, image_digest  # noqa: E402

__all__ = ["LabelCache", "Provider", "ProviderSpec", "SuperpixelCountWarning", "WeightsInfo", "available_providers", "get_provider",
           "image_digest", "parallel_map", "parse_provider_spec", "process_pool", "provider_table",
           "register_provider", "run_provider"]
