"""Where data, weights and caches live: one resolution rule for the whole toolkit.

Every location is resolved the same way: an explicit argument, else an environment variable,
else a default. Nothing is ever downloaded.

=============  =======================  ===================================================
what           environment variable     default
=============  =======================  ===================================================
data root      ``SIN_DATA_ROOT``        ``<repo>/../shared/data``
weights root   ``SIN_WEIGHTS_ROOT``     ``<repo>/../shared/weights``
cache root     ``SIN_CACHE_DIR``        ``<repo>/cache`` in a source checkout, else
                                        ``$XDG_CACHE_HOME/sin`` (``~/.cache/sin``)
=============  =======================  ===================================================

Single files have their own variables on top (``SIN_BSDS500``, ``SIN_SSN_WEIGHTS``,
``SIN_DEEPLAB_WEIGHTS``, ...); :func:`resolve` is the rule they all follow, and
:func:`deeplab_weights` / :func:`deeplab_tflite` are the DeepLab trunk's files
(``$SIN_DEEPLAB_WEIGHTS``, else under the weights root, itself ``$SIN_WEIGHTS_ROOT``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEEPLAB_TFLITE_FILE", "DEEPLAB_WEIGHTS_FILE", "REPO", "cache_root", "data_root", "deeplab_tflite",
           "deeplab_weights", "resolve", "weights_root"]

#: The source checkout this package was imported from (``sin/..``). For an installed
#: (non-editable) package this is ``site-packages``: see :func:`cache_root`.
REPO = Path(__file__).resolve().parents[1]

#: File names of the DeepLabv3 MobileNetV2 (depth 0.5) trunk under the weights root: the PyTorch
#: port of the TFLite model, and the TFLite model itself (only the port check reads it).
DEEPLAB_WEIGHTS_FILE = "deeplabv3_mnv2_dm05_tflite_weights.pt"
DEEPLAB_TFLITE_FILE = "deeplabv3_257_mv_gpu.tflite"


def _is_source_checkout() -> bool:
    # an editable install / git checkout has the project files beside the package
    return (REPO / "pyproject.toml").is_file() and (REPO / "sin" / "__init__.py").is_file()


def resolve(arg=None, env_var: str | None = None, default=None) -> Path | None:
    """``arg`` if given, else ``$env_var`` if set and non-empty, else ``default`` (as a Path)."""
    if arg is not None and str(arg) != "":
        return Path(arg).expanduser()
    if env_var and os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser()
    return None if default is None else Path(default)


def data_root(root=None) -> Path:
    """Folder holding the datasets (``BSDS500/``, ``ECSSD/``, ``MSRC21/``, ...)."""
    return resolve(root, "SIN_DATA_ROOT", REPO.parent / "shared" / "data")


def weights_root(root=None) -> Path:
    """Folder holding third-party pretrained weights (SSN, DeepLab)."""
    return resolve(root, "SIN_WEIGHTS_ROOT", REPO.parent / "shared" / "weights")


def cache_root(root=None) -> Path:
    """Root of every on-disk cache (label maps, trunk features).

    A source checkout keeps its caches in ``<repo>/cache`` (git-ignored); an installed package
    never writes next to ``site-packages`` and uses ``$XDG_CACHE_HOME/sin`` instead.
    """
    if _is_source_checkout():
        default = REPO / "cache"
    else:
        default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sin"
    return resolve(root, "SIN_CACHE_DIR", default)


def deeplab_weights(path=None) -> Path:
    """The DeepLab trunk weights: ``path``, else ``$SIN_DEEPLAB_WEIGHTS``, else
    ``<weights root>/deeplabv3_mnv2_dm05_tflite_weights.pt`` (the weights root follows
    ``$SIN_WEIGHTS_ROOT``). Not checked for existence: the caller says what is missing."""
    return resolve(path, "SIN_DEEPLAB_WEIGHTS", weights_root() / DEEPLAB_WEIGHTS_FILE)


def deeplab_tflite(path=None) -> Path:
    """The TFLite DeepLab model the port is checked against: ``path``, else
    ``$SIN_DEEPLAB_TFLITE``, else ``<weights root>/deeplabv3_257_mv_gpu.tflite``."""
    return resolve(path, "SIN_DEEPLAB_TFLITE", weights_root() / DEEPLAB_TFLITE_FILE)
