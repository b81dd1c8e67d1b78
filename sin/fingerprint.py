"""One digest for everything the toolkit keys a cache or a run by: files, sources, arrays, configs.

Every function here is sha256; they differ only in what they feed it and how many hex digits
they keep. Cache keys built from them (provider fingerprints, label-map files, BI feature and run
folders) therefore change exactly when what they digest changes, and never because of a change
of hashing scheme in one corner of the code.

* :func:`file_sha256`: the full hex sha256 of a file's bytes (weights files, datasets). Memoised
  on the file's path, size, inode, modification *and* change time: ``cp -p`` / ``rsync -t`` can set
  the modification time back, but the kernel always moves the change time (``st_ctime``) when the
  bytes are written, so a replaced file is read again.
* :func:`config_digest`: canonical JSON (sorted keys) of a JSON-able object.
* :func:`array_digest` / :func:`arrays_digest`: arrays' shapes, dtypes and bytes.
* :func:`source_digest`: the source files of modules (used only where no explicit version exists).
* :func:`state_digest`: a torch module's parameters and buffers.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["array_digest", "arrays_digest", "config_digest", "digest", "file_sha256", "hasher", "source_digest",
           "state_digest"]

_MEMO: dict = {}
_LOCK = threading.Lock()


def hasher():
    """A fresh sha256 object (the toolkit's one algorithm)."""
    return hashlib.sha256()


def digest(data: bytes | str, length: int = 16) -> str:
    """First ``length`` hex digits of the sha256 of ``data`` (str is UTF-8 encoded)."""
    h = hasher()
    h.update(data.encode() if isinstance(data, str) else data)
    return h.hexdigest()[:length]


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes (memoised on path, size, inode, mtime and ctime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    with _LOCK:
        if key in _MEMO:
            return _MEMO[key]
    h = hasher()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    with _LOCK:
        _MEMO[key] = h.hexdigest()
    return _MEMO[key]


def config_digest(obj, length: int = 12) -> str:
    """``length`` hex digits of the canonical JSON of ``obj`` (sorted keys; other objects by ``str``)."""
    return digest(json.dumps(obj, sort_keys=True, default=str), length)


def array_digest(array, length: int = 32) -> str:
    """``length`` hex digits over an array's shape, dtype and bytes (C order)."""
    return arrays_digest([array], length)


def arrays_digest(arrays: Iterable, length: int = 32) -> str:
    """``length`` hex digits over a sequence of arrays (each one's shape, dtype and bytes, in
    order); one array gives its :func:`array_digest`."""
    h = hasher()
    for array in arrays:
        a = np.ascontiguousarray(array)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.data if a.size else b"")
    return h.hexdigest()[:length]


def source_digest(modules: Iterable[str], length: int = 64) -> str:
    """``length`` hex digits over the source files of ``modules`` (import names).

    For code without an explicit version only: every edit (a comment, a docstring) changes it.
    A module that cannot be imported or has no source file enters by its name.
    """
    h = hasher()
    for name in modules:
        h.update(name.encode())
        try:
            path = inspect.getsourcefile(importlib.import_module(name))
        except (ImportError, TypeError):
            path = None
        h.update(file_sha256(path).encode() if path and Path(path).is_file() else b"<no source>")
    return h.hexdigest()[:length]


def state_digest(module, length: int = 12) -> str:
    """``length`` hex digits of a torch module's state (every parameter and buffer: name, dtype,
    shape, values): keys caches by the weights actually in the network, whatever file (or random
    seed) they came from."""
    import torch  # only here: the rest of this module works without torch

    h = hasher()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:length]
