"""Decode each image file once per process: a byte-bounded LRU cache of resized uint8 images.

A table runs many cells on the same task (methods x seeds x switches), and every cell used to
decode and resize the same JPEGs again, for fitting and again for scoring. :func:`cached_decode`
keeps the decoded, resized image as a (3, S, S) uint8 tensor (4x smaller than float) keyed by

    (resolved path, mtime_ns, file size, target size S),

so an edited or replaced file is decoded afresh, and the same file at two sizes is two entries.
After the first cell of a task no JPEG decoding or PIL resizing happens in a table's cell loop.

Budget: ``COFTAD_IMAGE_CACHE_BYTES`` (default 2 GiB, about 14,000 images at 224 px; ``0``
disables the cache). Least recently used entries are evicted first. Tensors stay on the CPU:
each detector moves its own batch to its device, and a CPU cache is shared by every device.
The cache is per process (worker processes each hold their own); it is thread-safe because
:func:`coftad_lib.images.images_to_tensor` decodes with a thread pool.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from .errors import COFTADInputError

ENV_VAR = "COFTAD_IMAGE_CACHE_BYTES"
DEFAULT_BUDGET_BYTES = 2 * 1024**3

Key = tuple[str, int, int, int]


class ImageCache:
    """LRU map from :data:`Key` to (3, S, S) uint8 tensors, bounded by ``budget_bytes``.

    Args:
        budget_bytes: total bytes of cached tensors; ``0`` stores nothing (every call decodes).
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = int(budget_bytes)
        self._entries: OrderedDict[Key, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> torch.Tensor | None:
        """The cached tensor (marked most recently used) or None."""
        with self._lock:
            t = self._entries.get(key)
            if t is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return t

    def put(self, key: Key, value: torch.Tensor) -> None:
        """Store ``value``, evicting least recently used entries to stay within the budget."""
        size = value.numel() * value.element_size()
        if size > self.budget_bytes:
            return  # larger than the whole budget (or cache disabled): do not store
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.numel() * old.element_size()
            self._entries[key] = value
            self._bytes += size
            while self._bytes > self.budget_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.numel() * evicted.element_size()

    def clear(self) -> None:
        """Drop every entry and reset the hit/miss counters."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.hits = self.misses = 0


def budget_from_env() -> int:
    """Byte budget from ``COFTAD_IMAGE_CACHE_BYTES`` (an int, ``0`` = off), default 2 GiB."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_BUDGET_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise COFTADInputError(f"{ENV_VAR}={raw!r}: expected a whole number of bytes (0 disables the cache)") from None
    return max(0, value)


_CACHE: ImageCache | None = None


def get_cache() -> ImageCache:
    """The process-wide cache, created on first use with :func:`budget_from_env`."""
    global _CACHE
    if _CACHE is None:
        _CACHE = ImageCache(budget_from_env())
    return _CACHE


def set_budget(budget_bytes: int) -> ImageCache:
    """Replace the process-wide cache by an empty one with this budget (``0`` = off); returns it."""
    global _CACHE
    _CACHE = ImageCache(budget_bytes)
    return _CACHE


def cache_key(path: str | os.PathLike, size: int) -> Key | None:
    """(resolved path, mtime_ns, bytes, size) of an existing file, or None when it cannot be stat'ed."""
    try:
        p = Path(path).resolve()
        st = p.stat()
    except OSError:
        return None  # let the decoder raise its own error naming the file
    return (str(p), st.st_mtime_ns, st.st_size, int(size))


def cached_decode(path: str | os.PathLike, size: int,
                  decode: Callable[[str | os.PathLike, int], torch.Tensor]) -> torch.Tensor:
    """(3, size, size) uint8 tensor of an image file: from the cache, or ``decode(path, size)`` once.

    The returned tensor is shared with the cache: callers must not write into it (converting
    to float, as :mod:`coftad_lib.images` does, makes a copy).
    """
    cache = get_cache()
    key = cache_key(path, size) if cache.budget_bytes > 0 else None
    if key is None:
        return decode(path, size)
    hit = cache.get(key)
    if hit is not None:
        return hit
    value = decode(path, size)
    cache.put(key, value)
    return value
