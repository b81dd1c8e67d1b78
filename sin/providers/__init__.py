"""Superpixel providers behind one interface.

Paper methods: ``sin``, ``slic``, ``snic``, ``ers``. Extras: ``grid``, ``fh``, ``seeds``, ``lsc``,
``ssn`` (deep superpixels; needs its weights file), ``fastslic`` (optional package). Weight variants
are tags of their method (``sin:weights=msrc21``). ``python -m sin providers`` lists every method
with its parameters, defaults and allowed ranges.

Modules: :mod:`~sin.providers.provider` (the :class:`Provider` object: output contract, size and
count policies, fingerprint), :mod:`~sin.providers.registry` (names, registration, spec strings),
:mod:`~sin.providers.params` (declared parameter types and ranges), :mod:`~sin.providers.weights`
(weights files and tags), :mod:`~sin.providers.cache` (the label-map cache), one module per method.
"""

from .provider import Provider, SuperpixelCountWarning
from .registry import (ProviderEntry, ProviderSpec, available_providers, get_provider, parse_provider_spec,
                       register_alias, register_provider)
from .weights import WeightsInfo, WeightsTag

# importing a module registers its providers
from . import sin_provider, slic, snic, ers  # noqa: E402,F401  (the paper's methods)
from . import grid, felzenszwalb, opencv_extras, ssn  # noqa: E402,F401  (extras)
from . import fastslic  # noqa: E402,F401  (registers only when the optional fast-slic imports)
from .batch import parallel_map, process_pool, run_provider  # noqa: E402
from .cache import LabelCache, image_digest  # noqa: E402

__all__ = ["LabelCache", "Provider", "ProviderEntry", "ProviderSpec", "SuperpixelCountWarning", "WeightsInfo",
           "WeightsTag", "available_providers", "get_provider", "image_digest", "parallel_map", "parse_provider_spec",
           "process_pool", "register_alias", "register_provider", "run_provider"]


def __getattr__(name):
    if name == "provider_table":  # moved to the CLI (python -m sin providers)
        import warnings

        from ..cli import provider_table

        warnings.warn("sin.providers.provider_table moved to sin.cli.provider_table", DeprecationWarning, stacklevel=2)
        return provider_table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
