"""Superpixel providers behind one interface (see :mod:`sin.providers.registry`).

Paper methods: ``sin``, ``slic``, ``snic``, ``ers``. Extras: ``grid``, ``fh``, ``seeds``,
``lsc`` (and ``ssn`` when its weights are given).
"""

from .registry import Provider, available_providers, get_provider, provider_table, register_provider

# importing a module registers its providers
from . import sin_provider, slic, grid, felzenszwalb, opencv_extras  # noqa: E402,F401

__all__ = ["Provider", "available_providers", "get_provider", "provider_table", "register_provider"]
