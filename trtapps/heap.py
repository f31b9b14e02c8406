"""Keep the C heap from holding on to freed frame-sized buffers during long runs (glibc only).

Why: a run moves megabytes per frame through buffers that many threads allocate and free (OpenCV and ONNX Runtime
internals, CPU preprocessing, the reader, copy and worker threads, each with its own malloc arena). glibc serves
large requests from ``mmap`` only above a threshold that it *raises* each time such a block is freed (up to
32 MiB), so after the first frames every frame-sized buffer comes from the arenas, and what is freed there stays
mapped and fragments: the 4-stream GPU soak's RSS grew 8.6 % in 9 minutes while the heap in use stayed flat, and
a 4-stream CPU soak 7.4 % in 2 minutes (``benchmarks/results/soak.md``). Fixing the threshold (``mallopt
M_MMAP_THRESHOLD``, which also stops its adjustment) gives every block of 128 KiB or more its own mapping, returned
to the OS when freed: RSS then follows the memory really in use (the same CPU soak: +0.9 %). The price is a page
fault per 4 KiB page of each such block, small next to decoding or inferring a frame.

``TRTAPPS_MALLOC_MMAP_THRESHOLD`` sets the threshold in bytes (default 131072; 0 leaves glibc's behaviour alone).
A threshold the user already gave glibc (``MALLOC_MMAP_THRESHOLD_``) is respected. Elsewhere than glibc (musl,
macOS, Windows) nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading

from trtapps.errors import ConfigError

log = logging.getLogger("trtapps")

#: environment variable with the threshold in bytes (0: leave glibc's dynamic threshold)
THRESHOLD_ENV = "TRTAPPS_MALLOC_MMAP_THRESHOLD"
#: default threshold: blocks from 128 KiB up (a 640×640 RGB image is 1.2 MB) get their own mapping
DEFAULT_THRESHOLD = 128 * 1024
#: glibc's own variable; when set, glibc already uses it and we leave it alone
GLIBC_ENV = "MALLOC_MMAP_THRESHOLD_"
_M_MMAP_THRESHOLD = -3  # <malloc.h>

_lock = threading.Lock()
_applied: int | None = None


def mmap_threshold(value: str | None = None) -> int:
    """The threshold from *value*, else ``TRTAPPS_MALLOC_MMAP_THRESHOLD``, else the default; 0 means leave alone.

    Raises:
        ConfigError: not a whole number of bytes ≥ 0 (the message names the variable and the fix).
    """
    raw = value if value is not None else os.environ.get(THRESHOLD_ENV, "")
    if not raw.strip():
        return DEFAULT_THRESHOLD
    try:
        number = int(raw)
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigError(f"{THRESHOLD_ENV}={raw!r} is not a number of bytes; set it to the size from which heap "
                          "blocks get their own mapping, e.g. 131072 (0 leaves glibc's default)")
    return number


def limit_heap_retention() -> int | None:
    """Apply the threshold once per process (thread-safe); the threshold in force, or ``None`` when untouched."""
    global _applied
    with _lock:
        if _applied is not None:
            return _applied
        threshold = mmap_threshold()
        if threshold == 0 or os.environ.get(GLIBC_ENV):
            return None
        name = ctypes.util.find_library("c")
        try:
            mallopt = ctypes.CDLL(name).mallopt if name else None
        except (OSError, AttributeError):
            mallopt = None
        if mallopt is None:
            return None
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        if mallopt(_M_MMAP_THRESHOLD, threshold) != 1:
            log.warning("mallopt(M_MMAP_THRESHOLD, %d) was refused; long runs may see RSS creep", threshold)
            return None
        _applied = threshold
        return threshold
