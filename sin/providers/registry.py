"""The provider registry: name -> :class:`ProviderEntry`, registration, spec strings, look-up.

A *provider function* is anything callable as ``fn(image, n_segments, **params) -> labels``: it
receives a validated ``(H, W, 3)`` float32 RGB image in [0, 1] and returns an integer ``(H, W)``
label map. Registering it (:func:`register_provider`) records what the toolkit needs to know
about it: connectivity, its size limit, its parameters' types and ranges, where its weights come
from and its output version. Its parameter defaults are read from its signature, written once.

Everything in the toolkit that takes a superpixel method (``so_saliency``, Bilateral Inception,
every benchmark, the CLIs) accepts the same things, through :func:`get_provider`:

* a registered name, optionally with parameters: ``"slic"``, ``"slic:compactness=20"``,
  ``"sin:weights=msrc21"`` (a weights tag, see :mod:`sin.providers.weights`);
* an import path ``"package.module:function"``, optionally with a declared version
  ``"package.module:function@2"`` and parameters ``":key=value,..."`` after it;
* a function ``f(image, n_segments, **params)``, or a :class:`~sin.providers.Provider`.

**User providers and the label cache.** The toolkit cannot fingerprint arbitrary code reliably
(closures of one factory, two lambdas in a file, code from a notebook, ``python -c`` or ``exec``,
a helper module the function imports), so it does not try: a user provider is cached across
processes only when it *declares its identity*, a ``version=`` (bumped when its output changes)
or an explicit ``code=`` list of modules at registration, or ``@version`` on the import path. An
undeclared one gets a fingerprint that holds for the current process only, and
:class:`~sin.providers.LabelCache` keeps its maps in memory, never on disk.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import threading
import uuid
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Callable

from ..fingerprint import file_sha256, source_digest  # noqa: F401  (file_sha256: older imports)
from .params import Param, parse_value
from .provider import Provider, SuperpixelCountWarning, check_max_pixels  # noqa: F401  (re-exported)
from .weights import WeightsInfo, WeightsTag  # noqa: F401  (re-exported)

__all__ = ["ProviderEntry", "ProviderSpec", "available_providers", "get_provider", "parse_provider_spec",
           "register_alias", "register_provider"]


# ---------------------------------------------------------------------------------- entries
@dataclass(frozen=True)
class ProviderEntry:
    """A registered superpixel method (see :func:`register_provider` for the fields)."""

    name: str
    fn: Callable
    connected: bool
    connectivity: str = "by construction"
    extra: bool = False
    description: str = ""
    version: str | None = None
    weights: WeightsInfo | None = None
    code: tuple[str, ...] = ()
    builtin: bool = False
    max_pixels: int | None = None
    resolve_params: Callable[[dict], dict] | None = None
    param_types: dict = field(default_factory=dict, compare=False, repr=False)
    defaults: dict = field(default_factory=dict, compare=False)
    accepts_any: bool = field(default=False, compare=False)

    def __post_init__(self):
        defaults, accepts_any = _signature_defaults(self.fn, self.name)
        object.__setattr__(self, "defaults", defaults)
        object.__setattr__(self, "accepts_any", accepts_any)
        undeclared = set(self.param_types) - set(defaults)
        if undeclared and not accepts_any:
            raise ValueError(f"provider {self.name!r}: declared parameter(s) {sorted(undeclared)} are not in "
                             f"the signature of {getattr(self.fn, '__qualname__', self.fn)}")

    @property
    def declared(self) -> dict:
        """Parameter name -> declaration (:class:`~sin.providers.params.Param`, or the
        :class:`WeightsInfo` for the weights parameter)."""
        types = self.param_types
        return {**types, self.weights.param: self.weights} if self.weights is not None else dict(types)

    @property
    def persistent(self) -> bool:
        """Its fingerprint means the same in every process: built in, or a declared identity."""
        return self.builtin or self.version is not None or bool(self.code)

    def code_identity(self) -> str | None:
        """What stands for the code in the fingerprint: nothing for a built-in provider (its
        explicit version does; a docstring edit re-computes nothing); the function's qualified name
        (plus the source digest of the declared ``code`` modules) for a user provider that declared
        its identity; else a token of this process and this function object."""
        if self.builtin:
            return None
        where = f"{getattr(self.fn, '__module__', '')}.{getattr(self.fn, '__qualname__', type(self.fn).__name__)}"
        if self.version is not None or self.code:
            return where + (":" + source_digest(self.code) if self.code else "")
        return f"process:{_PROCESS}:{_object_token(self.fn)}:{where}"


#: Older name of :class:`ProviderEntry` ("spec" now means the CLI text); kept for imports.
ProviderSpec = ProviderEntry

_PROCESS = uuid.uuid4().hex  # fingerprints of undeclared user code hold for this process only
_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STRONG: dict = {}  # callables that take no weak reference: id -> (object, token), kept alive
_COUNTER = itertools.count()
_TOKEN_LOCK = threading.Lock()


def _object_token(obj) -> int:
    """A number for ``obj`` that no other object gets in this process (``id`` can be reused)."""
    with _TOKEN_LOCK:
        try:
            if obj not in _TOKENS:
                _TOKENS[obj] = next(_COUNTER)
            return _TOKENS[obj]
        except TypeError:  # not weak-referenceable (or unhashable)
            held = _STRONG.get(id(obj))
            if held is None or held[0] is not obj:
                held = _STRONG[id(obj)] = (obj, next(_COUNTER))
            return held[1]


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


# ---------------------------------------------------------------------------------- registration
_REGISTRY: dict[str, ProviderEntry] = {}
_ALIASES: dict[str, tuple[str, dict]] = {}


def register_provider(name: str, fn: Callable | None = None, *, connected: bool,
                      connectivity: str | None = None, extra: bool = False, description: str = "",
                      version: str | None = None, weights: WeightsInfo | None = None, code: tuple[str, ...] = (),
                      max_pixels: int | None = None, params: dict | None = None,
                      resolve_params: Callable[[dict], dict] | None = None, overwrite: bool = False):
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
        The provider's output version: bump it whenever the output for some input changes (the
        built-in providers' golden-output tests fail when it is not bumped; comments and
        docstrings need no bump). It enters the fingerprint. **For a user provider it is the
        declaration of identity:** without ``version`` (or ``code``) its label maps are cached
        for the current process only.
    weights : WeightsInfo, optional
        Its weights: default file, tags, provenance (the sha256 of the file in use enters the
        fingerprint).
    code : tuple of str, optional
        For user providers: modules whose source the output depends on; their source digest
        enters the fingerprint (any edit, even a comment, then re-computes the maps).
    max_pixels : int or None, optional
        Largest image (in pixels) the method accepts by default (see :meth:`Provider.__call__`);
        ``None`` (default): no limit.
    params : dict, optional
        Parameter name -> declared type and range (:mod:`sin.providers.params`: ``Int``,
        ``Float``, ``Bool``, ``Choice``, ``Device``); values outside are refused with a
        ``ValueError`` when a provider is made. Built-in providers declare every parameter.
    resolve_params : callable, optional
        ``resolve_params(params) -> params`` as the fingerprint must see them, for parameters
        whose meaning depends on the machine (e.g. SIN's ``precision="auto"``).
    overwrite : bool, optional
        Replace an existing registration.

    Examples
    --------
    >>> from sin.providers.params import Float
    >>> @register_provider("quadrants", connected=True, version="1", params={"split": Float(0, 1, low_open=True)})
    ... def quadrants(image, n_segments, split=0.5):
    ...     h, w = image.shape[:2]
    ...     return (np.arange(h)[:, None] >= split * h) * 2 + (np.arange(w)[None] >= split * w)
    >>> get_provider("quadrants:split=0.3").fingerprint   # the same in every process (version="1")
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"provider name must be an identifier-like string, got {name!r}")
    connectivity = connectivity or ("by construction" if connected else "none")
    limit = check_max_pixels(max_pixels)
    if connectivity not in ("by construction", "post-processing", "none"):
        raise ValueError(f"connectivity must be 'by construction', 'post-processing' or 'none', got {connectivity!r}")
    if version is not None and (not isinstance(version, str) or not version):
        raise ValueError(f"provider {name!r}: version must be a non-empty string, got {version!r}")
    for key, decl in (params or {}).items():
        if not isinstance(decl, Param):
            raise ValueError(f"provider {name!r}: parameter {key!r} must be declared with sin.providers.params "
                             f"(Int, Float, Bool, Choice, Device), got {decl!r}")

    def _register(f: Callable) -> Callable:
        if not callable(f):
            raise ValueError(f"provider {name!r}: {f!r} is not callable")
        if (name in _REGISTRY or name in _ALIASES) and not overwrite and getattr(_REGISTRY.get(name), "fn", None) is not f:
            raise ValueError(f"provider {name!r} is already registered (pass overwrite=True)")
        builtin = (getattr(f, "__module__", "") or "").startswith("sin.")
        entry = ProviderEntry(name=name, fn=f, connected=connected, connectivity=connectivity, extra=extra,
                              description=description, version=version, weights=weights, code=tuple(code),
                              builtin=builtin, max_pixels=limit, resolve_params=resolve_params,
                              param_types=dict(params or {}))
        if builtin:
            missing = sorted(set(entry.defaults) - set(entry.declared))
            if missing or version is None:
                raise ValueError(f"built-in provider {name!r} must declare its version and every parameter "
                                 f"(undeclared: {missing})")
        _ALIASES.pop(name, None)
        _REGISTRY[name] = entry
        return f

    return _register(fn) if fn is not None else _register


def register_alias(alias: str, target: str, **params) -> None:
    """Keep ``alias`` resolvable as ``target`` with ``params`` (a ``DeprecationWarning`` says the
    new spelling); aliases are not listed by :func:`available_providers`."""
    if alias in _REGISTRY:
        raise ValueError(f"{alias!r} is a registered provider, not free for an alias")
    _ALIASES[alias] = (target, dict(params))


def lookup(name: str) -> ProviderEntry:
    """The registered entry ``name`` (``ValueError`` listing the registered names otherwise)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown superpixel provider {name!r}; available: {', '.join(available_providers())} "
                         "(or a package.module:function)")
    return _REGISTRY[name]


def pickle_state(provider: Provider):
    """``__reduce__`` of a :class:`Provider`: by name and parameters for a registered entry (the
    unpickling process looks the name up again, with the entry as a fallback where that process
    lacks a user registration); by entry (its function by reference) for anything else."""
    entry = provider.entry
    if _REGISTRY.get(entry.name) is entry:
        fallback = None
        if not entry.builtin:
            import pickle

            try:  # the fallback travels only where it can (a lambda in it cannot)
                pickle.dumps(entry)
                fallback = entry
            except Exception:
                fallback = None
        return _restore, (entry.name, provider.params, fallback)
    return Provider, (entry, provider.params)


def _restore(name: str, params: dict, fallback: ProviderEntry | None = None) -> Provider:
    entry = _REGISTRY.get(name) or fallback
    return Provider(entry if entry is not None else lookup(name), params)


def _entry_of_function(fn: Callable, version: str | None = None) -> ProviderEntry:
    for entry in _REGISTRY.values():  # a registered function keeps its declared metadata
        if entry.fn is fn and version is None:
            return entry
    name = getattr(fn, "__name__", type(fn).__name__)
    name = name if name.isidentifier() else "user"
    return ProviderEntry(name=name, fn=fn, connected=False, connectivity="none", extra=True, version=version,
                         description=f"user function {getattr(fn, '__module__', '?')}.{name}")


# ---------------------------------------------------------------------------------- spec strings
def _parse_params(text: str, where: str) -> dict:
    params = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ValueError(f"bad provider parameter {item!r} in {where!r}: expected key=value")
        params[key.strip()] = parse_value(value.strip())
    return params


def _import_module(head: str, text: str):
    """Import ``head`` for the spec ``text``; whatever the module does on import (raise, a syntax
    error, ``sys.exit``) becomes one ``ValueError`` line."""
    try:
        return importlib.import_module(head)
    except ImportError as exc:
        raise ValueError(f"provider {text!r}: cannot import {head!r} ({exc})") from None
    except (Exception, SystemExit) as exc:  # SyntaxError, errors and sys.exit() while importing it
        detail = f"exit code {exc.code}" if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
        raise ValueError(f"provider {text!r}: importing {head!r} failed ({' '.join(detail.split())})") from None


def parse_provider_spec(text: str) -> tuple[ProviderEntry, dict]:
    """Parse the CLI syntax ``NAME[:key=value,...]`` or ``package.module:function[@VERSION][:key=value,...]``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty provider specification {text!r}")
    head, _, rest = text.strip().partition(":")
    if "." in head:  # an import path
        attr, _, rest = rest.partition(":")
        attr, at, version = attr.partition("@")
        if not attr.strip():
            raise ValueError(f"provider {text!r}: an import path needs ':function' (package.module:function)")
        if at and not version.strip():
            raise ValueError(f"provider {text!r}: '@' must be followed by a version (package.module:function@2)")
        obj = _import_module(head, text)
        for part in attr.strip().split("."):
            if not hasattr(obj, part):
                raise ValueError(f"provider {text!r}: module {head!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        if isinstance(obj, Provider):
            return obj.entry, {**obj.params, **_parse_params(rest, text)}
        if isinstance(obj, ProviderEntry):
            return obj, _parse_params(rest, text)
        if not callable(obj):
            raise ValueError(f"provider {text!r}: {head}.{attr} is not callable")
        return _entry_of_function(obj, version.strip() or None), _parse_params(rest, text)
    if head in _ALIASES and head not in _REGISTRY:
        target, params = _ALIASES[head]
        new = target + ":" + ",".join(f"{k}={v}" for k, v in params.items())
        warnings.warn(f"provider {head!r} is deprecated: use {new!r}", DeprecationWarning, stacklevel=3)
        return lookup(target), {**params, **_parse_params(rest, text)}
    return lookup(head), _parse_params(rest, text)


def get_provider(provider, **params) -> Provider:
    """A :class:`Provider` from a name, ``"name:key=value,..."``, ``"pkg.mod:function"``, a
    function ``f(image, n_segments, **params)`` or a :class:`Provider`; ``params`` override.

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones), a parameter the method does not
        take, a value outside the parameter's declared range (naming provider, parameter and
        range), or an unusable function or import path.
    """
    if isinstance(provider, Provider):
        return provider.with_params(**params) if params else provider
    if isinstance(provider, ProviderEntry):
        return Provider(provider, params)
    if isinstance(provider, str):
        entry, parsed = parse_provider_spec(provider)
        return Provider(entry, {**parsed, **params})
    if callable(provider):
        return Provider(_entry_of_function(provider), params)
    raise ValueError(f"a superpixel provider is a name, 'package.module:function', a callable or a Provider; "
                     f"got {type(provider).__name__}")


def available_providers(include_extras: bool = True) -> list[str]:
    """Names of the registered providers (the paper's methods first); weights tags and
    deprecated aliases are not separate methods and are not listed."""
    items = sorted(_REGISTRY.values(), key=lambda p: (p.extra, p.name))
    return [p.name for p in items if include_extras or not p.extra]


def entries() -> list[ProviderEntry]:
    """The registered entries, in the order of :func:`available_providers`."""
    return [_REGISTRY[name] for name in available_providers()]
