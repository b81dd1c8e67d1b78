"""One interface for every superpixel method: a registry of providers.

A provider is a function ``fn(image, n_segments, **params) -> labels`` that receives a validated
``(H, W, 3)`` float32 RGB image in [0, 1] and returns an integer ``(H, W)`` label map. The
:class:`Provider` wrapper around it validates the input, relabels the output to contiguous
``int32`` ``0..K-1`` and (optionally, ``check=True``) verifies the declared connectivity.

>>> from sin.providers import get_provider, available_providers
>>> labels = get_provider("slic")(image, n_segments=600)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..connectivity import check_superpixels, relabel_sequential
from ..image import as_float_rgb, check_n_segments

__all__ = ["Provider", "register_provider", "get_provider", "available_providers", "provider_table"]


@dataclass(frozen=True)
class Provider:
    """A registered superpixel method.

    Attributes
    ----------
    name : str
        Registry name (``"slic"``, ``"sin"``, ...).
    fn : callable
        ``fn(image_float_rgb, n_segments, **params) -> (H, W) integer labels``.
    connected : bool
        Every returned region is guaranteed 4-connected (natively or by the provider's own
        post-processing, see ``connectivity``).
    connectivity : str
        How connectivity comes about: ``"by construction"``, ``"post-processing"`` or ``"none"``.
    extra : bool
        Not one of the methods of the SIN paper (shown separately in tables).
    description : str
        One line for ``python -m sin providers`` and the README.
    defaults : dict
        Default keyword parameters (documented, overridable per call).
    """

    name: str
    fn: Callable
    connected: bool
    connectivity: str = "by construction"
    extra: bool = False
    description: str = ""
    defaults: dict = field(default_factory=dict)

    def __call__(self, image, n_segments: int = 600, *, channel_axis: int | None = -1,
                 check: bool = False, **params) -> np.ndarray:
        """Superpixels of ``image``: ``(H, W)`` int32 labels ``0..K-1``.

        Parameters
        ----------
        image : array_like
            RGB, RGBA or grayscale; uint8 or float in [0, 1] (see :func:`sin.image.as_float_rgb`).
        n_segments : int
            Requested number of superpixels (methods differ in how closely they meet it).
        channel_axis : int or None
            Axis of the colour channels (``None``: grayscale).
        check : bool
            Verify the output contract (contiguous int32; 4-connected if declared).
        **params
            Method parameters, overriding :attr:`defaults`.
        """
        img = as_float_rgb(image, channel_axis=channel_axis)
        k = check_n_segments(n_segments)
        kwargs = {**self.defaults, **params}
        labels = np.asarray(self.fn(img, k, **kwargs))
        if labels.shape != img.shape[:2]:
            raise RuntimeError(f"provider {self.name!r} returned shape {labels.shape} for image {img.shape[:2]}")
        labels = relabel_sequential(labels)
        if check:
            check_superpixels(labels, img.shape[:2], connected=self.connected)
        return labels


_REGISTRY: dict[str, Provider] = {}


def register_provider(name: str, fn: Callable | None = None, *, connected: bool,
                      connectivity: str = "by construction", extra: bool = False,
                      description: str = "", defaults: dict | None = None, overwrite: bool = False):
    """Register a superpixel method under ``name`` (usable as a decorator).

    Examples
    --------
    >>> @register_provider("quadrants", connected=True, extra=True)
    ... def quadrants(image, n_segments):
    ...     h, w = image.shape[:2]
    ...     return (np.arange(h)[:, None] >= h // 2) * 2 + (np.arange(w)[None] >= w // 2)
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"provider name must be an identifier-like string, got {name!r}")
    if connectivity not in ("by construction", "post-processing", "none"):
        raise ValueError(f"connectivity must be 'by construction', 'post-processing' or 'none', got {connectivity!r}")

    def _register(f: Callable) -> Callable:
        if name in _REGISTRY and not overwrite:
            raise ValueError(f"provider {name!r} is already registered (pass overwrite=True)")
        _REGISTRY[name] = Provider(name=name, fn=f, connected=connected, connectivity=connectivity,
                                   extra=extra, description=description, defaults=dict(defaults or {}))
        return f

    return _register(fn) if fn is not None else _register


def get_provider(name: str) -> Provider:
    """The provider registered as ``name``; ``ValueError`` listing the choices otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown superpixel provider {name!r}; available: {', '.join(available_providers())}") from None


def available_providers(include_extras: bool = True) -> list[str]:
    """Names of the registered providers (the paper's methods first)."""
    items = sorted(_REGISTRY.values(), key=lambda p: (p.extra, p.name))
    return [p.name for p in items if include_extras or not p.extra]


def provider_table() -> str:
    """Markdown table of the registered providers."""
    rows = ["| provider | 4-connected | how | extra | description |", "|---|---|---|---|---|"]
    for name in available_providers():
        p = _REGISTRY[name]
        rows.append(f"| `{p.name}` | {'yes' if p.connected else 'no'} | {p.connectivity} | "
                    f"{'yes' if p.extra else ''} | {p.description} |")
    return "\n".join(rows)
