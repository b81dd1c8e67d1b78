"""One interface for every superpixel method: provider objects and their registry.

A *provider function* is anything callable as ``fn(image, n_segments, **params) -> labels``: it
receives a validated ``(H, W, 3)`` float32 RGB image in [0, 1] and returns an integer ``(H, W)``
label map. Registering it (:func:`register_provider`) records what the toolkit needs to know
about it (connectivity, where its weights come from, its code version); its parameter defaults
are read from its signature, written once.

A :class:`Provider` is a method *with its parameters*: a name, the full parameter dict and a
:attr:`~Provider.fingerprint` that changes whenever the output could (parameters, the weights
file's sha256, the provider's code). Calling it validates the image, checks the output contract
and relabels to contiguous ``int32`` ``0..K-1``. Everything in the toolkit that takes a
superpixel method (``so_saliency``, Bilateral Inception, every benchmark, the CLIs) accepts the
same things, through :func:`get_provider`:

* a registered name, optionally with parameters: ``"slic"``, ``"slic:compactness=20"``;
* an import path ``"package.module:function"`` (optionally ``":key=value,..."`` after it);
* a function ``f(image, n_segments, **params)``, or a :class:`Provider`.

>>> import sin
>>> slic = sin.get_provider("slic", compactness=20)
>>> labels = slic(image, n_segments=600)
>>> slic.fingerprint          # cache key: parameters + code (+ weights sha256 for deep methods)
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..connectivity import check_superpixels, relabel_sequential
from ..fingerprint import digest, file_sha256, source_digest
from ..image import as_float_rgb, check_n_segments

__all__ = ["Provider", "ProviderSpec", "SuperpixelCountWarning", "WeightsInfo", "available_providers", "file_sha256",
           "get_provider", "parse_provider_spec", "provider_table", "register_provider"]


class SuperpixelCountWarning(UserWarning):
    """A provider returned a superpixel count far from the request (outside ``[K/2, 2K]``).

    Issued by :meth:`Provider.__call__` for images with at least ``4 K`` pixels (smaller images
    cannot hold K superpixels of a few pixels each). The message names the provider and the
    likely reason. Turn it into an error with ``warnings.simplefilter("error", SuperpixelCountWarning)``.
    """


#: Largest image (pixels) each built-in provider accepts by default, for providers whose
#: registration does not pass ``max_pixels`` itself. Why: ERS took 36 s at 2048x1536 and over
#: 300 s / 4.6 GB at 6000x4000 (issue 15), so it stops at 4 MP (~40 s); SLIC, SNIC and FH took
#: 45-90 s at 24 MP and stop at 12 MP. See :meth:`Provider.__call__` (``max_pixels``, ``downscale``).
DEFAULT_MAX_PIXELS = {"ers": 4_000_000, "slic": 12_000_000, "snic": 12_000_000, "fh": 12_000_000,
                      "seeds": 12_000_000, "lsc": 4_000_000, "ssn": 4_000_000}

_UNSET = object()


# ---------------------------------------------------------------------------------- hashing
def _code_identity(spec) -> str | None:
    """What stands for the provider's code in its fingerprint.

    Built-in providers carry an explicit ``version`` (bumped when their output changes; guarded by
    golden-output tests), so editing a comment or docstring re-computes nothing. A provider from
    outside this package is keyed by its source files (its declared ``code`` modules, else the
    module defining it) on top of its version.
    """
    if spec.builtin:
        return None
    modules = spec.code or ((getattr(spec.fn, "__module__", None) or "",))
    return source_digest(modules) + ":" + f"{getattr(spec.fn, '__module__', '')}.{getattr(spec.fn, '__qualname__', repr(spec.fn))}"


# ---------------------------------------------------------------------------------- registry entries
@dataclass(frozen=True)
class WeightsInfo:
    """Provenance of a provider's pretrained weights (as timm records pretrained configs).

    Attributes
    ----------
    param : str
        The provider's keyword that takes the weights file (``None`` there means :attr:`default`).
    default : callable
        ``default() -> Path``: the file used when the parameter is ``None``.
    source : str
        Where the weights come from (paper / repository / training command).
    licence : str
        Their licence.
    """

    param: str = "weights"
    default: Callable[[], Path] | None = None
    source: str = ""
    licence: str = ""

    def file(self, value) -> Path | None:
        """The weights file for parameter value ``value`` (``None``: the default file)."""
        if value is None:
            return Path(self.default()) if self.default is not None else None
        if isinstance(value, (str, Path)):
            return Path(value)
        return None


@dataclass(frozen=True)
class ProviderSpec:
    """A registered superpixel method (see :func:`register_provider` for the fields)."""

    name: str
    fn: Callable
    connected: bool
    connectivity: str = "by construction"
    extra: bool = False
    description: str = ""
    version: str = "1"
    weights: WeightsInfo | None = None
    code: tuple[str, ...] = ()
    builtin: bool = False
    max_pixels: int | None = None
    resolve_params: Callable[[dict], dict] | None = None
    defaults: dict = field(default_factory=dict, compare=False)
    accepts_any: bool = field(default=False, compare=False)

    def __post_init__(self):
        defaults, accepts_any = _signature_defaults(self.fn, self.name)
        object.__setattr__(self, "defaults", defaults)
        object.__setattr__(self, "accepts_any", accepts_any)


def _signature_defaults(fn: Callable, name: str) -> tuple[dict, bool]:
    """Keyword defaults of ``fn(image, n_segments, **params)``, read from its signature."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}, True
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        raise ValueError(f"provider {name!r}: {getattr(fn, '__qualname__', fn)}{sig} must take "
                         "(image, n_segments, **params)")
    defaults = {p.name: p.default for p in params[2:]
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty}
    required = [p.name for p in params[2:]
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty]
    if required:
        raise ValueError(f"provider {name!r}: parameters {required} need defaults (a provider is called "
                         "as fn(image, n_segments))")
    return defaults, any(p.kind == p.VAR_KEYWORD for p in params)


# ---------------------------------------------------------------------------------- provider objects
class Provider:
    """A superpixel method with its parameters: callable, comparable and fingerprinted.

    Make one with :func:`get_provider`. ``provider(image, n_segments)`` returns ``(H, W)`` int32
    labels ``0..K-1``; :attr:`params` is the full parameter dict (defaults included);
    :attr:`fingerprint` a hex digest that changes whenever the output could change.
    """

    __slots__ = ("spec", "params")

    def __init__(self, spec: ProviderSpec, params: dict | None = None):
        params = dict(params or {})
        unknown = sorted(set(params) - set(spec.defaults))
        if unknown and not spec.accepts_any:
            allowed = ", ".join(spec.defaults) or "none"
            raise ValueError(f"provider {spec.name!r} has no parameter(s) {', '.join(unknown)} "
                             f"(its parameters: {allowed})")
        self.spec = spec
        self.params = {**spec.defaults, **params}

    # ----------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def connected(self) -> bool:
        return self.spec.connected

    @property
    def connectivity(self) -> str:
        return self.spec.connectivity

    @property
    def extra(self) -> bool:
        return self.spec.extra

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def defaults(self) -> dict:
        return dict(self.spec.defaults)

    def with_params(self, **params) -> Provider:
        """The same method with some parameters changed."""
        return Provider(self.spec, {**self.params, **params})

    @property
    def weights_file(self) -> Path | None:
        """The weights file this provider loads (``None`` for methods without weights)."""
        w = self.spec.weights
        return None if w is None else w.file(self.params.get(w.param))

    def weights_sha256(self) -> str | None:
        """sha256 of :attr:`weights_file`; ``"absent"`` when it does not exist (e.g. untrained)."""
        w = self.spec.weights
        if w is None:
            return None
        value = self.params.get(w.param)
        path = self.weights_file
        if path is None or not path.is_file():
            return f"absent:{value}" if value is not None else "absent"
        return file_sha256(path)

    @property
    def fingerprint(self) -> str:
        """Hex digest (16 chars) of name, parameters, version and weights content.

        Computed on every access (the weights digest is memoised on the file's identity, see
        :func:`sin.fingerprint.file_sha256`), so new bytes in the weights file give a new key.
        """
        w = self.spec.weights
        params = self.spec.resolve_params(self.params) if self.spec.resolve_params else self.params
        params = {k: v for k, v in params.items() if w is None or k != w.param}
        key = {"name": self.name, "params": params, "version": self.spec.version, "weights": self.weights_sha256()}
        code = _code_identity(self.spec)
        if code is not None:
            key["code"] = code
        return digest(json.dumps(key, sort_keys=True, default=repr), 16)

    @property
    def tag(self) -> str:
        """Short, path-safe id: ``<name>-<fingerprint[:12]>`` (cache folder names, result files)."""
        return f"{self.name}-{self.fingerprint[:12]}"

    def spec_string(self) -> str:
        """``name[:key=value,...]`` with the non-default parameters (the CLI syntax)."""
        changed = {k: v for k, v in self.params.items()
                   if k not in self.spec.defaults or self.spec.defaults[k] != v}
        return self.name + (":" + ",".join(f"{k}={_format_value(v)}" for k, v in changed.items()) if changed else "")

    def __repr__(self) -> str:
        return f"Provider({self.spec_string()!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Provider) and self.spec == other.spec and self.params == other.params

    def __hash__(self) -> int:
        return hash((self.name, json.dumps(self.params, sort_keys=True, default=repr)))

    def __reduce__(self):  # picklable (worker processes) when the function is importable
        return (Provider, (self.spec, self.params))

    # ----------------------------------------------------------------- calling
    def __call__(self, image, n_segments: int = 600, *, channel_axis: int | None = -1,
                 check: bool | None = None, max_pixels=_UNSET, downscale: bool = False, **params) -> np.ndarray:
        """Superpixels of ``image``: ``(H, W)`` int32 labels ``0..K-1``.

        Parameters
        ----------
        image : array_like
            RGB, RGBA or grayscale; uint8 or float in [0, 1] (see :func:`sin.image.as_float_rgb`).
        n_segments : int
            Requested number of superpixels (methods differ in how closely they meet it; a count
            outside ``[K/2, 2K]`` on an image of at least ``4 K`` pixels issues a
            :class:`SuperpixelCountWarning` that says why).
        channel_axis : int or None
            Axis of the colour channels (``None``: grayscale).
        check : bool or None
            Verify that every region is 4-connected when the provider declares it. ``None``
            (default): for providers from outside this package only (the built-in ones are
            tested for it).
        max_pixels : int or None, optional
            Size policy: images with more pixels are refused (``ValueError``) unless ``downscale``.
            Default: the provider's registered limit (``python -m sin providers`` lists them; e.g.
            ERS 4 MP, SLIC/SNIC 12 MP); ``None`` lifts the limit (the run may take minutes and GBs).
        downscale : bool, optional
            Above ``max_pixels``, run the method on the image resized (anti-aliased) to at most
            ``max_pixels`` pixels and upsample the labels with nearest neighbour (a monotone index
            map: 4-connected regions stay 4-connected). Boundaries are then only as precise as the
            reduced image.
        **params
            Parameters for this call only (same as ``provider.with_params(**params)(image, ...)``).

        Raises
        ------
        ValueError
            Bad image or ``n_segments``; an image above ``max_pixels`` (without ``downscale``); or
            the provider broke the label contract (wrong shape or dtype, negative labels,
            disconnected regions it declared connected): the message names the provider.
        """
        if params:
            return self.with_params(**params)(image, n_segments, channel_axis=channel_axis, check=check,
                                              max_pixels=max_pixels, downscale=downscale)
        img = as_float_rgb(image, channel_axis=channel_axis)
        k = check_n_segments(n_segments)
        limit = self.spec.max_pixels if max_pixels is _UNSET else max_pixels
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 4):
            raise ValueError(f"max_pixels must be an int >= 4 or None, got {limit!r}")
        h, w = img.shape[:2]
        if limit is not None and h * w > limit:
            if not downscale:
                raise ValueError(
                    f"provider {self.name!r}: the image has {h}x{w} = {h * w / 1e6:.1f} MP, above its limit of "
                    f"{limit / 1e6:.1f} MP (time and memory grow with the image); pass downscale=True to run it "
                    f"on a reduced copy, downscale the image yourself (skimage.transform.rescale), or pass "
                    f"max_pixels=None to run it at full size anyway")
            return self._downscaled(img, k, limit, check)
        labels = self.spec.fn(img, k, **self.params)
        labels = _checked_labels(labels, img.shape[:2], self.name)
        labels = relabel_sequential(labels)
        if check if check is not None else not self.spec.builtin:
            try:
                check_superpixels(labels, img.shape[:2], connected=self.connected)
            except ValueError as exc:
                raise ValueError(f"provider {self.name!r} broke the label contract: {exc}") from None
        _warn_count(self.name, img, k, int(labels.max()) + 1)
        return labels

    def _downscaled(self, img: np.ndarray, k: int, limit: int, check) -> np.ndarray:
        from skimage.transform import resize

        h, w = img.shape[:2]
        s = (limit / (h * w)) ** 0.5
        hs, ws = max(1, min(h, int(h * s))), max(1, min(w, int(w * s)))
        small = resize(img, (hs, ws), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)
        labels = self(np.clip(small, 0, 1), min(k, hs * ws), check=check, max_pixels=None)
        # nearest neighbour through a monotone index map: every small pixel becomes a block of
        # whole rows x whole columns, so 4-adjacency (and connectivity) is kept
        rows = np.minimum((np.arange(h) * hs) // h, hs - 1)
        cols = np.minimum((np.arange(w) * ws) // w, ws - 1)
        return np.ascontiguousarray(labels[rows[:, None], cols[None, :]])


def _warn_count(name: str, img: np.ndarray, k: int, count: int) -> None:
    """The uniform count rule: warn (naming the provider and why) outside [K/2, 2K]."""
    h, w = img.shape[:2]
    if h * w < 4 * k or 0.5 * k <= count <= 2 * k:
        return
    side = (h * w / k) ** 0.5  # the side of a superpixel of the requested size
    if float(img.max() - img.min()) < 1e-3:
        why = "the image is constant: it has no structure to segment"
    elif min(h, w) < side:
        why = f"the image ({h}x{w}) is thinner than one superpixel of the requested size ({side:.1f} px)"
    elif float(np.abs(np.diff(img, axis=1)).mean()) > 0.15:
        why = "the image is dominated by pixel noise (colour differs between most neighbours)"
    else:
        why = "the method does not control its count closely on this image"
    warnings.warn(f"provider {name!r} returned {count} superpixels for n_segments={k} on a {h}x{w} image "
                  f"(outside [{k / 2:g}, {2 * k}]): {why}", SuperpixelCountWarning, stacklevel=3)


def _format_value(v) -> str:
    """A parameter value as the spec syntax reads it back (bare words stay bare: fp32, cuda)."""
    if isinstance(v, str) and v and _parse_value(v) == v and not any(c in v for c in ",=: "):
        return v
    return repr(v)


def _checked_labels(labels, shape, name: str) -> np.ndarray:
    if hasattr(labels, "detach"):  # a torch tensor
        labels = labels.detach().cpu().numpy()
    try:
        labels = np.asarray(labels)
    except Exception as exc:
        raise ValueError(f"provider {name!r} returned {type(labels).__name__}, not a label array ({exc})") from None
    if labels.shape != tuple(shape):
        raise ValueError(f"provider {name!r} returned labels of shape {labels.shape} for an image of "
                         f"{tuple(shape)} (the contract: one (H, W) integer label per pixel)")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"provider {name!r} returned {labels.dtype} labels; the contract is an integer "
                         "(H, W) label map")
    if labels.size and labels.min() < 0:
        raise ValueError(f"provider {name!r} returned negative labels (min {labels.min()})")
    return labels


# ---------------------------------------------------------------------------------- the registry
_REGISTRY: dict[str, ProviderSpec] = {}


def register_provider(name: str, fn: Callable | None = None, *, connected: bool,
                      connectivity: str | None = None, extra: bool = False, description: str = "",
                      version: str = "1", weights: WeightsInfo | None = None, code: tuple[str, ...] = (),
                      max_pixels=_UNSET, resolve_params: Callable[[dict], dict] | None = None,
                      overwrite: bool = False):
    """Register a superpixel method under ``name`` (usable as a decorator).

    Parameters
    ----------
    name : str
        Registry name (an identifier).
    fn : callable
        ``fn(image, n_segments, **params) -> (H, W) integer labels``; every parameter after
        ``n_segments`` needs a default (the defaults are read from here, once).
    connected : bool
        Every returned region is 4-connected (checked for providers from outside this package).
    connectivity : str, optional
        How: ``"by construction"``, ``"post-processing"`` or ``"none"`` (default from ``connected``).
    extra : bool, optional
        Not one of the SIN paper's methods (shown separately in tables).
    description : str, optional
        One line for ``python -m sin providers``.
    version : str, optional
        The provider's output version (enters the fingerprint, so cached maps are keyed by it).
        Bump it whenever the output for some input changes; the built-in providers' golden-output
        tests fail when it is not bumped. Editing comments or docstrings needs no bump.
    weights : WeightsInfo, optional
        Provenance of the provider's weights file (its sha256 enters the fingerprint).
    code : tuple of str, optional
        For providers from outside this package: modules whose source the output depends on
        (default: the module defining ``fn``); their source digest enters the fingerprint.
    resolve_params : callable, optional
        ``resolve_params(params) -> params`` as the fingerprint must see them, for parameters
        whose meaning depends on the machine (e.g. SIN's ``precision="auto"``).
    max_pixels : int or None, optional
        Largest image (in pixels) the method accepts by default (see :meth:`Provider.__call__`);
        ``None``: no limit. Default: :data:`DEFAULT_MAX_PIXELS` for built-in names, else ``None``.
    overwrite : bool, optional
        Replace an existing registration.

    Examples
    --------
    >>> @register_provider("quadrants", connected=True)
    ... def quadrants(image, n_segments):
    ...     h, w = image.shape[:2]
    ...     return (np.arange(h)[:, None] >= h // 2) * 2 + (np.arange(w)[None] >= w // 2)
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"provider name must be an identifier-like string, got {name!r}")
    connectivity = connectivity or ("by construction" if connected else "none")
    limit = DEFAULT_MAX_PIXELS.get(name) if max_pixels is _UNSET else max_pixels
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 4):
        raise ValueError(f"max_pixels must be an int >= 4 or None, got {max_pixels!r}")
    if connectivity not in ("by construction", "post-processing", "none"):
        raise ValueError(f"connectivity must be 'by construction', 'post-processing' or 'none', got {connectivity!r}")

    def _register(f: Callable) -> Callable:
        if not callable(f):
            raise ValueError(f"provider {name!r}: {f!r} is not callable")
        if name in _REGISTRY and not overwrite and _REGISTRY[name].fn is not f:
            raise ValueError(f"provider {name!r} is already registered (pass overwrite=True)")
        builtin = (getattr(f, "__module__", "") or "").startswith("sin.")
        _REGISTRY[name] = ProviderSpec(name=name, fn=f, connected=connected, connectivity=connectivity,
                                       extra=extra, description=description, version=str(version),
                                       weights=weights, code=tuple(code), builtin=builtin,
                                       max_pixels=None if limit is None else int(limit),
                                       resolve_params=resolve_params)
        return f

    return _register(fn) if fn is not None else _register


def _spec_of_function(fn: Callable) -> ProviderSpec:
    for spec in _REGISTRY.values():  # a registered function keeps its declared metadata
        if spec.fn is fn:
            return spec
    name = getattr(fn, "__name__", type(fn).__name__)
    name = name if name.isidentifier() else "user"
    return ProviderSpec(name=name, fn=fn, connected=False, connectivity="none", extra=True,
                        description=f"user function {getattr(fn, '__module__', '?')}.{name}")


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word: a string (e.g. a path or a device name)


def _parse_params(text: str, where: str) -> dict:
    params = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ValueError(f"bad provider parameter {item!r} in {where!r}: expected key=value")
        params[key.strip()] = _parse_value(value.strip())
    return params


def parse_provider_spec(text: str) -> tuple[ProviderSpec, dict]:
    """Parse the CLI syntax ``NAME[:key=value,...]`` or ``package.module:function[:key=value,...]``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty provider specification {text!r}")
    head, _, rest = text.strip().partition(":")
    if "." in head:  # an import path
        attr, _, rest = rest.partition(":")
        if not attr:
            raise ValueError(f"provider {text!r}: an import path needs ':function' (package.module:function)")
        try:
            module = importlib.import_module(head)
        except ImportError as exc:
            raise ValueError(f"provider {text!r}: cannot import {head!r} ({exc})") from None
        obj = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise ValueError(f"provider {text!r}: module {head!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        if isinstance(obj, Provider):
            return obj.spec, {**obj.params, **_parse_params(rest, text)}
        if isinstance(obj, ProviderSpec):
            return obj, _parse_params(rest, text)
        if not callable(obj):
            raise ValueError(f"provider {text!r}: {head}.{attr} is not callable")
        return _spec_of_function(obj), _parse_params(rest, text)
    if head not in _REGISTRY:
        raise ValueError(f"unknown superpixel provider {head!r}; available: {', '.join(available_providers())} "
                         "(or a package.module:function)")
    return _REGISTRY[head], _parse_params(rest, text)


def get_provider(provider, **params) -> Provider:
    """A :class:`Provider` from a name, ``"name:key=value,..."``, ``"pkg.mod:function"``, a
    function ``f(image, n_segments, **params)`` or a :class:`Provider`; ``params`` override.

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones), a parameter the method does not
        take, or an unusable function.
    """
    if isinstance(provider, Provider):
        return provider.with_params(**params) if params else provider
    if isinstance(provider, ProviderSpec):
        return Provider(provider, params)
    if isinstance(provider, str):
        spec, parsed = parse_provider_spec(provider)
        return Provider(spec, {**parsed, **params})
    if callable(provider):
        return Provider(_spec_of_function(provider), params)
    raise ValueError(f"a superpixel provider is a name, 'package.module:function', a callable or a Provider; "
                     f"got {type(provider).__name__}")


def available_providers(include_extras: bool = True) -> list[str]:
    """Names of the registered providers (the paper's methods first)."""
    items = sorted(_REGISTRY.values(), key=lambda p: (p.extra, p.name))
    return [p.name for p in items if include_extras or not p.extra]


def provider_table() -> str:
    """Markdown table of the registered providers, with weights provenance."""
    rows = ["| provider | 4-connected | how | extra | max image | weights (sha256) | source, licence | description |",
            "|---|---|---|---|---|---|---|---|"]
    for name in available_providers():
        spec = _REGISTRY[name]
        weights = provenance = ""
        if spec.weights is not None:
            prov = Provider(spec)
            path = prov.weights_file
            sha = prov.weights_sha256()
            weights = f"`{path.name if path else '?'}` ({sha[:12] if sha and not sha.startswith('absent') else 'absent'})"
            provenance = ", ".join(filter(None, [spec.weights.source, spec.weights.licence]))
        rows.append(f"| `{spec.name}` | {'yes' if spec.connected else 'no'} | {spec.connectivity} | "
                    f"{'yes' if spec.extra else ''} | "
                    f"{'' if spec.max_pixels is None else f'{spec.max_pixels / 1e6:g} MP'} | "
                    f"{weights} | {provenance} | {spec.description} |")
    return "\n".join(rows)
