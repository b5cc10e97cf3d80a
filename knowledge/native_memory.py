"""Give freed heap memory back to the operating system after a large one-off job (glibc only)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


def _load_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _load_trim()


def release_freed_memory() -> bool:
    """Return the free pages of every malloc arena to the system; True when that was possible.

    An import embeds in worker threads, each with its own arena; what they free stays mapped
    to the process until trimmed, so a server that imported first would carry it while serving.
    """
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
