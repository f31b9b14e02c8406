"""NVDEC decode-only throughput when the streams are split over several processes (each with its own GIL).

PyNvVideoCodec's ``Decode`` holds the GIL while it decodes (session 7's GIL profile: 83 % of the GIL samples of
its raw loop were inside ``Decode``), so N decoding threads of one process take turns. This measures the same
decoders (``nvdec``: trtapps' source; ``nvdec_raw``: PyNvVideoCodec alone) with the N streams spread over K
spawned processes of N/K threads each, all starting together after their warm-up, to find how far NVDEC itself
goes on this GPU once the GIL is out of the way.

Usage (GPU machine)::

    python benchmarks/device/nvdec_processes.py --media A.mp4 B.mp4 --layouts 1x8 8x1 2x4 1x16 16x1 4x4 --json out
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1]))


def _child(conn: Any, ready: Any, go: Any, decoder: str, paths: list[str], first: int, threads: int, frames: int) -> None:
    try:
        from nvdec_decode import _WORKERS

        worker = _WORKERS[decoder]
        for p in paths:
            worker(Path(p), 8, 0)  # warm-up: context, decoder, kernels
        counts = [0] * threads
        errors: list[str] = []

        def run(i: int) -> None:
            try:
                counts[i] = worker(Path(paths[(first + i) % len(paths)]), frames, 0)
            except BaseException as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        ready.wait()
        go.wait()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        t1, cpu1 = time.perf_counter(), time.process_time()
        conn.send({"frames": sum(counts), "start": t0, "end": t1, "cpu": cpu1 - cpu0, "errors": errors})
    except BaseException as exc:
        conn.send({"frames": 0, "errors": [f"{type(exc).__name__}: {exc}"]})
    finally:
        conn.close()


def measure(decoder: str, paths: list[str], processes: int, threads: int, frames: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Barrier(processes + 1), ctx.Event()
    pipes, procs = [], []
    for k in range(processes):
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(sender, ready, go, decoder, paths, k * threads, threads, frames))
        proc.start()
        sender.close()
        pipes.append(receiver)
        procs.append(proc)
    ready.wait(timeout=120)
    go.set()
    results = [p.recv() for p in pipes]
    for proc in procs:
        proc.join(30)
    errors = [e for r in results for e in r["errors"]]
    total = sum(r["frames"] for r in results)
    wall = max(r.get("end", 0) for r in results) - min(r.get("start", 0) for r in results) if not errors else 0.0
    cpu = sum(r.get("cpu", 0.0) for r in results)
    return {"decoder": decoder, "processes": processes, "threads_per_process": threads,
            "streams": processes * threads, "frames": total, "seconds": round(wall, 3),
            "fps": round(total / wall, 1) if wall else None,
            "cpu_ms_per_frame": round(1000 * cpu / total, 4) if total else None, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", nargs="+", required=True)
    parser.add_argument("--layouts", nargs="+", default=["1x8", "8x1", "2x4", "1x16", "16x1", "4x4"],
                        help="PROCESSESxTHREADS")
    parser.add_argument("--decoders", nargs="+", default=["nvdec", "nvdec_raw"])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for layout in args.layouts:
        k, t = (int(v) for v in layout.split("x"))
        for decoder in args.decoders:
            row = measure(decoder, args.media, k, t, args.frames)
            rows.append(row)
            print(f"{decoder:<10} {k:>2} processes x {t:>2} threads = {k * t:>2} streams: {row['fps']} fps, "
                  f"CPU {row['cpu_ms_per_frame']} ms/frame {row['errors'] or ''}", flush=True)
            if args.json:
                args.json.write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
