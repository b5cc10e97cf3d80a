"""How many threads the MiniLM embedder may use: CPUs, machine load, and numpy's OpenBLAS thread count."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def machine_oversubscribed(cpus: int) -> bool:
    """Whether the 1-minute load average is at least twice the CPU count.

    The margin keeps this embedder's own worker threads (at most one per CPU)
    from tripping it.
    """
    try:
        return os.getloadavg()[0] >= 2 * cpus
    except (AttributeError, OSError):
        return False


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class BlasThreads:
    """Temporarily run numpy's OpenBLAS single-threaded (process-wide).

    Used while several embedding batches run in parallel threads, and on an
    oversubscribed machine, to avoid more threads than cores.  Reference-counted, so overlapping batch jobs
    restore the original thread count only when the last one finishes.  Only
    numpy's bundled OpenBLAS is recognised (found through /proc/self/maps);
    with any other BLAS ``available`` is False and batches run one at a time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0
        self._funcs: tuple[Any, Any] | None = None
        self._probed = False

    def _probe(self) -> tuple[Any, Any] | None:
        if not self._probed:
            self._probed = True
            self._funcs = find_openblas_thread_functions()
        return self._funcs

    @property
    def available(self) -> bool:
        """Whether the BLAS thread count can be changed."""
        with self._lock:
            return self._probe() is not None

    def configured_threads(self) -> int:
        """BLAS threads outside our single-threaded sections (1 if unknown).

        Honours OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, which OpenBLAS reads
        at start-up: with 1 there, batches also run one at a time.
        """
        with self._lock:
            funcs = self._probe()
            if funcs is None:
                return 1
            return self._saved if self._users else int(funcs[1]())

    @contextmanager
    def single_threaded(self) -> Iterator[None]:
        """Context in which BLAS calls use one thread."""
        with self._lock:
            funcs = self._probe()
            if funcs is not None and self._users == 0:
                self._saved = int(funcs[1]())
                funcs[0](1)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if funcs is not None and self._users == 0:
                    funcs[0](self._saved)


def find_openblas_thread_functions() -> tuple[Any, Any] | None:
    """``(set_num_threads, get_num_threads)`` of the loaded OpenBLAS, if any."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_", ""):
            for suffix in ("64_", "_64", ""):
                setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    return setter, getter
    return None


BLAS = BlasThreads()
