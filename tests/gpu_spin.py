"""A GPU busy-wait for ordering tests: keep a stream busy so that work that does not wait for it runs first."""

from __future__ import annotations

from typing import Any

import numpy as np

#: one thread spinning on the GPU's global timer for the given nanoseconds
SPIN_SOURCE = r"""
extern "C" __global__ void spin_ns(unsigned long long nanoseconds) {
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < nanoseconds);
}
"""


def busy(cupy: Any, stream: Any, ms: float = 200.0) -> None:
    """Keep *stream* busy for *ms* milliseconds of GPU time (no compile or host wait in between once compiled)."""
    spin = cupy.RawKernel(SPIN_SOURCE, "spin_ns")
    spin((1,), (1,), (np.uint64(int(ms * 1e6)),), stream=stream)


def delayed_copy(cupy: Any, dst: Any, src: Any, stream: Any, milliseconds: float = 200.0) -> None:
    """On *stream*: busy-wait on the GPU for *milliseconds*, then copy *src* into *dst* (both async).

    A consumer that does not wait for *stream* reads *dst* before the copy lands.
    """
    busy(cupy, stream, milliseconds)
    with stream:
        dst[...] = src
