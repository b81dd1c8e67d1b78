"""Where a provider's weights come from: the default file, named files (tags) and their sha256.

As torchvision's ``Weights`` enums and timm's pretrained tags, a method has one name and its
weight variants are *tags* of it: ``sin:weights=msrc21`` is SIN with the weights fine-tuned on
MSRC-21, not another method. A tag names a file and records its sha256 (checked on every use: a
corrupted or replaced download is refused) and its provenance. Adding one is one line::

    SIN_WEIGHTS.add_tag("msrc21", "sin_msrc21_delta.pt", "be5ec466...", source="...")

The provider's weights parameter then takes a tag name, a path to a file, or ``None`` (the
default file). :class:`WeightsInfo` is given to :func:`~sin.providers.register_provider`; the
sha256 of the file in use enters the provider's fingerprint, so label maps follow the bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..fingerprint import file_sha256

__all__ = ["WeightsInfo", "WeightsTag"]


@dataclass(frozen=True)
class WeightsTag:
    """A named weights file of a provider.

    Attributes
    ----------
    name : str
        The tag (``sin:weights=<name>``).
    file : callable
        ``file() -> Path``: where the file is (a function, so that a moved package still finds it).
    sha256 : str
        The file's recorded sha256; any other content is refused.
    source, licence, description : str
        Provenance and a line for ``python -m sin providers``.
    version : str or None
        The output version of the provider *with these weights* where it differs from the
        provider's own (the label maps of ``<provider>_<tag>`` are keyed by it); ``None``: the
        provider's version.
    prepare : callable, optional
        ``prepare(path, sha256) -> path``: the file the provider function loads (e.g. a delta
        merged into a full weights file); default: the file itself.
    """

    name: str
    file: Callable[[], Path]
    sha256: str
    source: str = ""
    licence: str = ""
    description: str = ""
    version: str | None = None
    prepare: Callable[[Path, str], Path] | None = None

    def checked_file(self) -> Path:
        """The tag's file after checking its sha256 (``FileNotFoundError`` / ``ValueError``)."""
        path = Path(self.file())
        if not path.is_file():
            raise FileNotFoundError(f"weights {self.name!r}: file not found: {path}")
        sha = file_sha256(path)
        if sha != self.sha256:
            raise ValueError(f"weights {self.name!r}: {path} has sha256 {sha[:16]}..., the registry records "
                             f"{self.sha256[:16]}...: a corrupted or replaced weights file")
        return path

    def resolve(self) -> Path:
        """What the provider function loads: the checked file, prepared (e.g. merged) if needed."""
        path = self.checked_file()
        return Path(self.prepare(path, self.sha256)) if self.prepare is not None else path


@dataclass(frozen=True)
class WeightsInfo:
    """Provenance of a provider's weights (as timm records pretrained configs).

    Attributes
    ----------
    param : str
        The provider's keyword that takes the weights (``None`` there means :attr:`default`).
    default : callable
        ``default() -> Path``: the file used when the parameter is ``None``.
    source : str
        Where the default weights come from (paper / repository / training command).
    licence : str
        Their licence.
    words : tuple of str
        Values of the parameter that are neither tags nor paths, handled by the provider itself
        (SIN: ``"untrained"``).
    tags : dict
        Tag name -> :class:`WeightsTag` (see :meth:`add_tag`).
    """

    param: str = "weights"
    default: Callable[[], Path] | None = None
    source: str = ""
    licence: str = ""
    words: tuple = ()
    tags: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def add_tag(self, name: str, filename, sha256: str, *, source: str = "", licence: str = "",
                description: str = "", version: str | None = None, prepare=None, folder=None) -> WeightsTag:
        """Register the weights tag ``name``: ``filename`` (next to the default file, or in
        ``folder``) with its recorded ``sha256``; returns the :class:`WeightsTag`."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"a weights tag is an identifier-like name, got {name!r}")
        if not (isinstance(sha256, str) and len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)):
            raise ValueError(f"weights tag {name!r}: sha256 must be 64 lowercase hex digits, got {sha256!r}")
        tag = WeightsTag(name=name, file=_TagFile(self.default, folder, filename), sha256=sha256, source=source,
                         licence=licence, description=description, version=version, prepare=prepare)
        self.tags[name] = tag
        return tag

    def tag(self, value) -> WeightsTag | None:
        """The :class:`WeightsTag` that the parameter value ``value`` names, if any."""
        return self.tags.get(value) if isinstance(value, str) else None

    def file(self, value) -> Path | None:
        """The weights file for parameter value ``value`` (``None``: the default file; a tag: its
        file; a path: itself). This is the file whose sha256 identifies the weights."""
        if value is None:
            return Path(self.default()) if self.default is not None else None
        tag = self.tag(value)
        if tag is not None:
            return Path(tag.file())
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        return None

    def resolve(self, value):
        """The value to hand to the provider function: a tag becomes its checked (and prepared)
        file as a string; ``None``, words and paths are passed on as they are."""
        tag = self.tag(value)
        return str(tag.resolve()) if tag is not None else value

    # a declared parameter (see sin.providers.params.check_params)
    help = "which weights the method loads"

    def describe(self) -> str:
        tags = f"a weights tag ({', '.join(self.tags)}), " if self.tags else ""
        words = "".join(f"{w!r}, " for w in self.words)
        return f"{tags}{words}a path to a weights file, or None (the default file)"

    def problem(self, value) -> str | None:
        if value is None or isinstance(value, os.PathLike):
            return None
        if not isinstance(value, str):
            return f"not a tag or path ({type(value).__name__})"
        if not value.strip():
            return "an empty name"
        return None


@dataclass(frozen=True)
class _TagFile:
    """``file()`` of a tag: ``folder / filename``, ``folder`` defaulting to the default file's
    folder (a picklable callable, resolved when asked: the package may have moved)."""

    default: Callable[[], Path] | None
    folder: object
    filename: object

    def __call__(self) -> Path:
        if self.folder is not None:
            return Path(self.folder) / self.filename
        if self.default is None or Path(self.filename).is_absolute():
            return Path(self.filename)
        return Path(self.default()).parent / self.filename
