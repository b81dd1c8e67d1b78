"""The :class:`Provider` object: a superpixel method with its parameters, its output contract,
its size and count policies, its cache identity (:attr:`Provider.fingerprint`) and its pickling.

Make one with :func:`sin.providers.get_provider` (see :mod:`sin.providers.registry` for the
names, spec strings and user functions it accepts).

>>> import sin
>>> slic = sin.get_provider("slic", compactness=20)
>>> labels = slic(image, n_segments=600)   # (H, W) int32, labels 0..K-1
>>> slic.fingerprint                       # cache key: parameters + version (+ weights sha256)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..connectivity import check_superpixels, relabel_sequential
from ..fingerprint import digest, file_sha256
from ..image import as_float_rgb, check_n_segments
from .params import check_params, format_value

__all__ = ["Provider", "SuperpixelCountWarning", "check_max_pixels"]

_UNSET = object()


class SuperpixelCountWarning(UserWarning):
    """A provider returned a superpixel count far from the request (outside ``[K/2, 2K]``).

    Issued by :meth:`Provider.__call__`; the message names the provider and the likely reason
    (a constant or noisy image, an image thinner than one superpixel, or too few pixels for the
    request). Turn it into an error with ``warnings.simplefilter("error", SuperpixelCountWarning)``.
    """


def check_max_pixels(limit):
    """``limit`` if it is a valid size limit (an int >= 4, or ``None``), else ``ValueError``."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 4):
        raise ValueError(f"max_pixels must be an int >= 4 or None, got {limit!r}")
    return None if limit is None else int(limit)


def _megapixels(n: int) -> str:
    """``n`` pixels in words that stay exact for small limits (not "0.0 MP")."""
    return f"{n / 1e6:.1f} MP" if n >= 100_000 else f"{n} pixels"


class Provider:
    """A superpixel method with its parameters: callable, comparable, picklable and fingerprinted.

    Make one with :func:`~sin.providers.get_provider`. ``provider(image, n_segments)`` returns
    ``(H, W)`` int32 labels ``0..K-1``; :attr:`params` is the full parameter dict (defaults
    included), checked against the method's declared types and ranges when the provider is made;
    :attr:`fingerprint` a hex digest that changes whenever the output could change.
    """

    __slots__ = ("entry", "params")

    def __init__(self, entry, params: dict | None = None):
        params = dict(params or {})
        unknown = sorted(set(params) - set(entry.defaults))
        if unknown and not entry.accepts_any:
            allowed = ", ".join(entry.defaults) or "none"
            raise ValueError(f"provider {entry.name!r} has no parameter(s) {', '.join(unknown)} "
                             f"(its parameters: {allowed})")
        check_params(entry.name, entry.declared, params)
        self.entry = entry
        self.params = {**entry.defaults, **params}

    # ----------------------------------------------------------------- identity
    @property
    def spec(self):
        """The registry entry (older name of :attr:`entry`)."""
        return self.entry

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def connected(self) -> bool:
        return self.entry.connected

    @property
    def connectivity(self) -> str:
        return self.entry.connectivity

    @property
    def extra(self) -> bool:
        return self.entry.extra

    @property
    def description(self) -> str:
        return self.entry.description

    @property
    def defaults(self) -> dict:
        return dict(self.entry.defaults)

    @property
    def persistent(self) -> bool:
        """True when :attr:`fingerprint` means the same in every process (a built-in provider, or
        a user provider that declared its identity); :class:`~sin.providers.LabelCache` stores the
        maps of the others in memory only."""
        return self.entry.persistent

    def with_params(self, **params) -> Provider:
        """The same method with some parameters changed (checked like :func:`get_provider`'s)."""
        return Provider(self.entry, {**self.params, **params})

    @property
    def weights_tag(self):
        """The :class:`~sin.providers.WeightsTag` named by the weights parameter, or ``None``."""
        w = self.entry.weights
        return None if w is None else w.tag(self.params.get(w.param))

    @property
    def weights_file(self) -> Path | None:
        """The weights file that identifies this provider's weights (a tag's named file, e.g. a
        delta; the default file; the path given), ``None`` for methods without weights."""
        w = self.entry.weights
        return None if w is None else w.file(self.params.get(w.param))

    def weights_sha256(self) -> str | None:
        """sha256 of :attr:`weights_file`; ``"absent"`` when it does not exist (e.g. untrained)."""
        w = self.entry.weights
        if w is None:
            return None
        value = self.params.get(w.param)
        path = self.weights_file
        if path is None or not path.is_file():
            return f"absent:{value}" if value is not None else "absent"
        return file_sha256(path)

    def _key_name_version(self) -> tuple[str, str | None]:
        tag = self.weights_tag
        if tag is None:
            return self.entry.name, self.entry.version
        return f"{self.entry.name}_{tag.name}", tag.version or self.entry.version

    @property
    def version(self) -> str | None:
        """The output version in the fingerprint: the weights tag's where it declares one, else
        the method's (``None`` for a user provider that declared none)."""
        return self._key_name_version()[1]

    @property
    def fingerprint(self) -> str:
        """Hex digest (16 chars) of name, parameters, version and weights content.

        Computed on every access (the weights digest is memoised on the file's identity, see
        :func:`sin.fingerprint.file_sha256`), so new bytes in the weights file give a new key.
        A weights tag keys its maps as ``<name>_<tag>`` with the tag's version. A provider that
        did not declare its identity (see :func:`~sin.providers.register_provider`) gets a key
        that holds for this process only.
        """
        w = self.entry.weights
        params = self.entry.resolve_params(self.params) if self.entry.resolve_params else self.params
        params = {k: v for k, v in params.items() if w is None or k != w.param}
        name, version = self._key_name_version()
        key = {"name": name, "params": params, "version": version, "weights": self.weights_sha256()}
        code = self.entry.code_identity()
        if code is not None:
            key["code"] = code
        return digest(json.dumps(key, sort_keys=True, default=repr), 16)

    @property
    def tag(self) -> str:
        """Short, path-safe id: ``<name>-<fingerprint[:12]>`` (cache folder names, result files);
        ``<name>_<weights tag>-...`` for a weights tag."""
        return f"{self._key_name_version()[0]}-{self.fingerprint[:12]}"

    def spec_string(self) -> str:
        """``name[:key=value,...]`` with the non-default parameters (the CLI syntax)."""
        changed = {k: v for k, v in self.params.items()
                   if k not in self.entry.defaults or self.entry.defaults[k] != v}
        return self.name + (":" + ",".join(f"{k}={format_value(v)}" for k, v in changed.items()) if changed else "")

    def __repr__(self) -> str:
        return f"Provider({self.spec_string()!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Provider) and self.entry == other.entry and self.params == other.params

    def __hash__(self) -> int:
        return hash((self.name, json.dumps(self.params, sort_keys=True, default=repr)))

    def __reduce__(self):
        """Pickled by registry name and parameters (re-resolved from the registry on loading);
        a function that is not registered is pickled with its entry (the function by reference)."""
        from .registry import pickle_state

        return pickle_state(self)

    # ----------------------------------------------------------------- calling
    def check_request(self, image_shape, n_segments, *, max_pixels=_UNSET, downscale: bool = False) -> int:
        """Refuse (``ValueError``) what :meth:`__call__` would refuse for an image of
        ``image_shape`` without running the method; returns ``n_segments`` as an int."""
        k = check_n_segments(n_segments)
        limit = check_max_pixels(self.entry.max_pixels if max_pixels is _UNSET else max_pixels)
        h, w = tuple(image_shape)[:2]
        if limit is not None and h * w > limit and not downscale:
            raise ValueError(
                f"provider {self.name!r}: the image has {h}x{w} = {_megapixels(h * w)}, above its limit of "
                f"{_megapixels(limit)} (time and memory grow with the image); pass downscale=True to run it "
                f"on a reduced copy, downscale the image yourself (skimage.transform.rescale), or pass "
                f"max_pixels=None to run it at full size anyway")
        return k

    def __call__(self, image, n_segments: int = 600, *, channel_axis: int | None = -1,
                 check: bool | None = None, max_pixels=_UNSET, downscale: bool = False, **params) -> np.ndarray:
        """Superpixels of ``image``: ``(H, W)`` int32 labels ``0..K-1``.

        Parameters
        ----------
        image : array_like
            RGB, RGBA or grayscale; uint8 or float in [0, 1] (see :func:`sin.image.as_float_rgb`).
        n_segments : int
            Requested number of superpixels (methods differ in how closely they meet it; a count
            outside ``[K/2, 2K]`` issues a :class:`SuperpixelCountWarning` that says why).
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
        k = self.check_request(img.shape, n_segments, max_pixels=max_pixels, downscale=downscale)
        limit = self.entry.max_pixels if max_pixels is _UNSET else max_pixels
        h, w = img.shape[:2]
        if limit is not None and h * w > limit:
            return self._downscaled(img, k, limit, check)
        params = self.params
        if self.entry.weights is not None:  # a weights tag: its checked (merged) file
            params = {**params, self.entry.weights.param: self.entry.weights.resolve(params.get(self.entry.weights.param))}
        labels = self.entry.fn(img, k, **params)
        labels = _checked_labels(labels, img.shape[:2], self.name)
        labels = relabel_sequential(labels)
        if check if check is not None else not self.entry.builtin:
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
    if 0.5 * k <= count <= 2 * k:
        return
    h, w = img.shape[:2]
    side = (h * w / k) ** 0.5  # the side of a superpixel of the requested size
    if h * w < 4 * k:
        why = (f"the image has only {h * w} pixels for {k} superpixels ({h * w / k:.2g} pixels each): the request "
               f"cannot be met; ask for at most {max(1, h * w // 4)} (4 pixels each)")
    elif float(img.max() - img.min()) < 1e-3:
        why = "the image is constant: it has no structure to segment"
    elif min(h, w) < side:
        why = f"the image ({h}x{w}) is thinner than one superpixel of the requested size ({side:.1f} px)"
    elif float(np.abs(np.diff(img, axis=1)).mean()) > 0.15:
        why = "the image is dominated by pixel noise (colour differs between most neighbours)"
    else:
        why = "the method does not control its count closely on this image"
    warnings.warn(f"provider {name!r} returned {count} superpixels for n_segments={k} on a {h}x{w} image "
                  f"(outside [{k / 2:g}, {2 * k}]): {why}", SuperpixelCountWarning, stacklevel=3)


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
