"""Protocols: how superpixels are requested for Saliency Optimization, as named presets.

A protocol is everything besides the image and the superpixel method that decides an SO map in
a published table: the superpixel count rule, the SLIC compactness and SO's own constants.
:func:`~downstream.saliency_optimization.so_saliency` applies the preset ``"sin_paper"`` by
default, so ``so_saliency(image, "slic")`` gives the map of the SIN paper's Table 2 setting
(``python -m benchmarks.sod_table`` uses the same preset object):

===================  ==========================================================================
``rows``             the table's rows S = 200 and 400 ("200 / 400 superpixels")
count rule           row S requests ``K = round(h * w * S / 120000)`` superpixels of an h x w
                     image (MATLAB round, at least 2): ``round(h w / 600)`` for 200 and
                     ``round(h w / 300)`` for 400, the SO demo's ``pixNumInSP`` (about 200 / 400
                     on a 300 x 400 image). ``sin`` turns K into its seed grid
                     (:func:`sin.geometry.grid_shape`), the other methods take K as it is.
SLIC compactness     20, the SO demo's ``SLIC_mex(img, spnumber, 20)``: ``slic`` without an
                     explicit ``compactness`` runs with it (``slic:compactness=10`` overrides it).
SO constants         ``"code"``: the released MATLAB code's (:data:`~.core.CODE_PARAMS`), which
                     the SIN authors ran; not the values printed in the SO paper
                     (``so_params="paper"``).
===================  ==========================================================================

``preset=None`` switches all of it off (``n_segments`` must then be given; SLIC keeps its own
default compactness).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .core import SO_VERSION, resolve_so_params

__all__ = ["PRESETS", "SIN_PAPER", "SOProtocol", "get_preset"]


@dataclass(frozen=True)
class SOProtocol:
    """A Saliency Optimization protocol (see the module notes).

    Attributes
    ----------
    name : str
        Preset name.
    rows : tuple of int
        The table's rows S; row S requests ``round(h * w * S / pixels_per_row)`` superpixels.
    default_row : int
        The row used when none is given.
    pixels_per_row : float
        Denominator of the count rule (120000: a 300 x 400 image gets S superpixels).
    min_segments : int
        Fewest superpixels requested (SO needs 2).
    slic_compactness : float or None
        Compactness given to ``slic`` when its spec sets none; ``None`` leaves SLIC's default.
    so_params : str
        SO's constants (see :func:`~.core.resolve_so_params`).
    """

    name: str
    rows: tuple = (200, 400)
    default_row: int = 200
    pixels_per_row: float = 120000.0
    min_segments: int = 2
    slic_compactness: float | None = 20.0
    so_params: str = "code"

    @property
    def count_rule(self) -> str:
        return f"round(h*w*size/{self.pixels_per_row:g})"

    def n_segments(self, height: int, width: int, row: int | None = None) -> int:
        """Superpixels requested for an ``height`` x ``width`` image in row ``row`` (MATLAB round)."""
        row = self.default_row if row is None else row
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or row < 1:
            raise ValueError(f"row must be a positive integer, got {row!r}")
        return max(self.min_segments, int(np.floor(height * width * row / self.pixels_per_row + 0.5)))

    def provider(self, provider="slic", **params):
        """The :class:`sin.Provider` this protocol runs for ``provider`` (and ``params``).

        ``slic`` named by a string that sets no ``compactness`` (and no ``compactness=`` keyword)
        gets :attr:`slic_compactness`; an explicit compactness, every other method, and a
        ready-made :class:`sin.Provider` object are run as given.
        """
        from sin.providers import get_provider, parse_provider_spec

        prov = get_provider(provider, **params)
        explicit = "compactness" in params or not isinstance(provider, str) or \
            "compactness" in parse_provider_spec(provider)[1]
        if prov.name == "slic" and self.slic_compactness is not None and not explicit:
            prov = prov.with_params(compactness=self.slic_compactness)
        return prov

    def map_key(self, so_params=None) -> str:
        """Digest of what besides the label map decides an SO map: SO's constants and :data:`SO_VERSION`."""
        from sin.fingerprint import config_digest

        p = resolve_so_params(self.so_params if so_params is None else so_params)
        return config_digest({"so_params": dataclasses.asdict(p), "so_version": SO_VERSION})


#: The SIN paper's Table 2 setting (see the module notes).
SIN_PAPER = SOProtocol(name="sin_paper")

#: Presets by name.
PRESETS = {SIN_PAPER.name: SIN_PAPER}


def get_preset(preset) -> SOProtocol | None:
    """``None``, an :class:`SOProtocol`, or the name of one in :data:`PRESETS`."""
    if preset is None or isinstance(preset, SOProtocol):
        return preset
    if isinstance(preset, str) and preset in PRESETS:
        return PRESETS[preset]
    raise ValueError(f"unknown SO preset {preset!r}; known: {', '.join(PRESETS)} (or None for no preset)")
