"""How fast the frame-staging CUDA calls are, alone and from many threads (an investigation tool for the GPU machine).

1. One 1280×720 BGR frame (2.76 MB) copied host→device 200 times from three kinds of host memory: trtapps'
   ``PinnedBuffer`` (``cudaHostAlloc`` through cuda-python), CuPy's ``cupyx.empty_pinned`` and ordinary pageable
   NumPy memory; the host time of one ``cuMemcpyHtoDAsync`` call (median) and the copy rate until the stream is
   done. An async copy from pinned memory should return in microseconds.
2. The per-frame calls of the stager (copy, record, wait) from 1, 2, 4 and 8 threads at once, each thread with its
   own stream and pinned buffer: frames per second and the host time per call, to see the driver's contention.
Writes JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from trtapps.gpu.driver import copy_to_device, record_event, wait_event  # noqa: E402
from trtapps.gpu.memory import PinnedBuffer  # noqa: E402

NBYTES = 1280 * 720 * 3


def one_kind(cp: Any, name: str, host: np.ndarray, ptr: int, iters: int = 200) -> dict[str, Any]:
    stream = cp.cuda.Stream(non_blocking=True)
    target = cp.empty(NBYTES, cp.uint8)
    host[...] = 7
    copy_to_device(int(target.data.ptr), ptr, NBYTES, stream)
    stream.synchronize()
    calls = []
    start = time.perf_counter()
    for _ in range(iters):
        t = time.perf_counter()
        copy_to_device(int(target.data.ptr), ptr, NBYTES, stream)
        calls.append(time.perf_counter() - t)
    stream.synchronize()
    wall = time.perf_counter() - start
    attrs = cp.cuda.runtime.pointerGetAttributes(ptr)
    return {
        "memory": name,
        "pointer_type": int(attrs.type),
        "call_us_median": 1e6 * statistics.median(calls),
        "call_us_p90": 1e6 * sorted(calls)[int(0.9 * len(calls))],
        "GB_s": NBYTES * iters / wall / 1e9,
    }


def threads_run(cp: Any, threads: int, frames_per_thread: int = 300) -> dict[str, Any]:
    device = cp.cuda.Device().id
    barrier = threading.Barrier(threads + 1)
    times: dict[str, list[float]] = {"copy": [], "record": [], "wait": []}
    lock = threading.Lock()

    def work() -> None:
        cp.cuda.Device(device).use()
        stream = cp.cuda.Stream(non_blocking=True)
        other = cp.cuda.Stream(non_blocking=True)
        pinned = PinnedBuffer(NBYTES)
        target = cp.empty(NBYTES, cp.uint8)
        event = cp.cuda.Event(block=False, disable_timing=True)
        local: dict[str, list[float]] = {"copy": [], "record": [], "wait": []}
        barrier.wait()
        for _ in range(frames_per_thread):
            t0 = time.perf_counter()
            copy_to_device(int(target.data.ptr), pinned.ptr, NBYTES, stream)
            t1 = time.perf_counter()
            record_event(event, stream)
            t2 = time.perf_counter()
            wait_event(other, event)
            t3 = time.perf_counter()
            local["copy"].append(t1 - t0)
            local["record"].append(t2 - t1)
            local["wait"].append(t3 - t2)
            event.synchronize()  # the pinned buffer is reused: wait for its DMA, as the stager does
        stream.synchronize()
        other.synchronize()
        with lock:
            for k, v in local.items():
                times[k].extend(v)
        pinned.free()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    return {
        "threads": threads,
        "frames_s": threads * frames_per_thread / wall,
        **{f"{k}_us_median": 1e6 * statistics.median(v) for k, v in times.items()},
        **{f"{k}_us_p90": 1e6 * sorted(v)[int(0.9 * len(v))] for k, v in times.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import cupy as cp
    import cupyx

    rows = []
    ours = PinnedBuffer(NBYTES)
    rows.append(one_kind(cp, "trtapps PinnedBuffer (cuda-python cudaHostAlloc)", ours.bytes, ours.ptr))
    theirs = cupyx.empty_pinned((NBYTES,), np.uint8)
    rows.append(one_kind(cp, "cupyx.empty_pinned", theirs, int(theirs.ctypes.data)))
    pageable = np.empty(NBYTES, np.uint8)
    rows.append(one_kind(cp, "pageable numpy", pageable, int(pageable.ctypes.data)))
    for row in rows:
        print(f"{row['memory']:<52} type {row['pointer_type']}  call {row['call_us_median']:8.1f} us "
              f"(p90 {row['call_us_p90']:8.1f})  {row['GB_s']:6.1f} GB/s")
    contention = [threads_run(cp, n) for n in (1, 2, 4, 8)]
    for row in contention:
        print(f"{row['threads']} threads: {row['frames_s']:8.0f} frames/s  copy {row['copy_us_median']:7.1f} us "
              f"(p90 {row['copy_us_p90']:7.1f})  record {row['record_us_median']:6.1f} (p90 {row['record_us_p90']:6.1f})"
              f"  wait {row['wait_us_median']:6.1f} (p90 {row['wait_us_p90']:6.1f})")
    if args.json:
        args.json.write_text(json.dumps({"copies": rows, "threads": contention}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
