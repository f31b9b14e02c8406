"""Where a decoding process's host CPU goes: user and system CPU time per frame of NVDEC decode-only variants.

The throughput issue asks for ≤ 0.2 ms of host CPU per frame; the decoding workers alone spend 0.6-0.9 ms
(session 9). This splits that cost. Each variant runs in P spawned processes at once (one video each, all
starting together after a warm-up), each decoding ``--frames`` frames; per variant it prints the aggregate fps and
the user and system CPU milliseconds per frame (``os.times`` of the decoding processes over the timed window).
High user time with little system time while the GPU works points at a busy wait (a spin in the driver); system
time at ioctls and futexes.

Variants (``--variants``):

* ``demux``: PyNvVideoCodec's demuxer alone (packets read, nothing decoded): the floor of the file side.
* ``raw``: demuxer + ``Decode`` per packet, the surfaces not read (PyNvVideoCodec alone).
* ``raw_low`` / ``raw_zero``: the same with ``latency=DisplayDecodeLatencyType.LOW`` / ``ZERO``.
* ``source``: trtapps' ``NvdecSource`` decoding in the reading thread (copy into a ring buffer + wait): what a
  ``decode_worker: process`` worker does per frame, less the socket.
* ``threaded``: PyNvVideoCodec's ``ThreadedDecoder``, batches of 16.
* ``interleaved``: ``--streams`` trtapps sources in each process, one thread taking a frame from each in turn:
  whether fewer decoding processes, each serving several videos, spend less CPU per frame than one per video.

Each variant runs with ``TRTAPPS_CUDA_WAIT`` = each of ``--waits`` (``block``: trtapps' default, threads sleep
in CUDA waits; ``default``: CUDA's own heuristic, which spins when there are more cores than contexts), set on the
primary context before the first CUDA call.

Usage (GPU machine)::

    python benchmarks/device/decode_cpu.py --video face_tracker.mp4 --procs 1 8 --json "$OUT/decode_cpu.json"
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent))  # nvdec_decode (its decoders), also in a spawned child

VARIANTS = ("demux", "raw", "raw_low", "raw_zero", "source", "threaded", "interleaved")
WAITS = ("block", "default")


def _set_wait(wait: str, device: int) -> None:
    if wait == "default":
        return  # CUDA's heuristic: nothing set
    os.environ["TRTAPPS_CUDA_WAIT"] = wait
    from trtapps.gpu.device import configure_host_wait

    configure_host_wait(device)


def _decode(variant: str, path: str, frames: int, device: int, streams: int = 1) -> int:
    """Decode *frames* frames of *path* (from the start again at its end) the *variant*'s way; returns frames.
    The decoders are ``nvdec_decode.py``'s, so both benchmarks measure the same code."""
    from nvdec_decode import _decode_nvdec, _decode_nvdec_raw, _decode_nvdec_threaded

    if variant == "interleaved":
        return _interleaved(Path(path), frames, device, streams)
    if variant == "demux":
        return _demux(path, frames)
    if variant == "source":
        return _decode_nvdec(Path(path), frames, device)
    if variant == "threaded":
        return _decode_nvdec_threaded(Path(path), frames, device, buffer_size=32, batch=16)
    latency = variant.split("_")[1].upper() if variant in ("raw_low", "raw_zero") else None
    return _decode_nvdec_raw(Path(path), frames, device, latency=latency)


def _demux(path: str, frames: int) -> int:
    """PyNvVideoCodec's demuxer alone: *frames* packets read (from the start again at the end), none decoded."""
    import PyNvVideoCodec as nvc

    done = 0
    while done < frames:
        before = done
        for _ in nvc.CreateDemuxer(filename=path):
            done += 1
            if done >= frames:
                break
        if done == before:
            raise RuntimeError(f"demux: no packet in {path}")
    return done


def _interleaved(path: Path, frames: int, device: int, streams: int) -> int:
    """*streams* trtapps sources of *path* decoded by one thread, a frame from each in turn (each starts again at
    the end of the file) until *frames* frames in all."""
    from trtapps.gpu.nvdec import NvdecSource

    def frames_of() -> Any:
        while True:
            source = NvdecSource(path, device=device, worker="thread")
            yield from source
            source.close()

    iterators = [frames_of() for _ in range(streams)]
    done = 0
    while done < frames:
        for it in iterators:
            item = next(it)
            done += getattr(item, "pixel_format", None) == "nv12"
            del item
    return done


def _child(conn: Any, ready: Any, go: Any, variant: str, wait: str, path: str, frames: int, device: int,
           streams: int) -> None:
    try:
        _set_wait(wait, device)
        _decode(variant, path, 60, device, streams)  # warm-up: context, decoder
        ready.wait()
        go.wait()
        t0, c0 = time.perf_counter(), os.times()
        n = _decode(variant, path, frames, device, streams)
        t1, c1 = time.perf_counter(), os.times()
        conn.send({"frames": n, "wall_s": t1 - t0, "user_s": c1.user - c0.user, "sys_s": c1.system - c0.system})
    except BaseException as exc:  # reported, the other variants go on
        conn.send({"error": f"{type(exc).__name__}: {exc}"})


def measure(variant: str, wait: str, procs: int, path: str, frames: int, device: int, timeout: float,
            streams: int = 1) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Barrier(procs + 1), ctx.Event()
    pipes, children = [], []
    for _ in range(procs):
        mine, theirs = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(theirs, ready, go, variant, wait, path, frames, device, streams),
                            daemon=True)
        child.start()
        pipes.append(mine)
        children.append(child)
    row: dict[str, Any] = {"variant": variant, "wait": wait, "procs": procs}
    if variant == "interleaved":
        row["streams_per_process"] = streams
    try:
        ready.wait(timeout=timeout)
        go.set()
        results = [p.recv() if p.poll(timeout) else {"error": "timed out"} for p in pipes]
    except Exception as exc:  # a child died before the barrier
        results = [{"error": f"{type(exc).__name__}: {exc}"}]
    for child in children:
        child.join(5)
        if child.is_alive():
            child.kill()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        row["error"] = errors[0]
        return row
    total = sum(r["frames"] for r in results)
    row.update(
        frames=total,
        fps=round(total / max(r["wall_s"] for r in results), 1),
        user_ms_per_frame=round(1e3 * sum(r["user_s"] for r in results) / total, 4),
        sys_ms_per_frame=round(1e3 * sum(r["sys_s"] for r in results) / total, 4),
    )
    row["cpu_ms_per_frame"] = round(row["user_ms_per_frame"] + row["sys_ms_per_frame"], 4)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--frames", type=int, default=1200, help="frames per process")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--waits", nargs="+", choices=WAITS, default=list(WAITS))
    parser.add_argument("--streams", type=int, default=4, help="videos per process of the interleaved variant")
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--mps", action="store_true", help="run the decoding processes as clients of a CUDA MPS "
                        "daemon (started for this run unless one is running), as the pipeline's workers run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.mps:
        from trtapps.gpu import mps

        if mps.start_for_run() is None:
            print("no CUDA MPS daemon: see the warning above", file=sys.stderr)
            return 1
    rows = []
    print(f"{'variant':<10} {'wait':<8} {'procs':>5} {'fps':>9} {'user ms':>8} {'sys ms':>8} {'cpu ms':>8}")
    for procs in args.procs:
        for variant in args.variants:
            for wait in args.waits:
                row = measure(variant, wait, procs, args.video, args.frames, args.device, args.timeout,
                              args.streams)
                rows.append(row)
                if "error" in row:
                    print(f"{variant:<10} {wait:<8} {procs:>5} error: {row['error'][:120]}")
                else:
                    name = f"{variant[:7]}x{args.streams}" if variant == "interleaved" else variant
                    print(f"{name:<10} {wait:<8} {procs:>5} {row['fps']:>9.1f} {row['user_ms_per_frame']:>8.4f} "
                          f"{row['sys_ms_per_frame']:>8.4f} {row['cpu_ms_per_frame']:>8.4f}", flush=True)
                if args.json:
                    args.json.write_text(json.dumps({"benchmark": "decode_cpu", "video": Path(args.video).name,
                                                     "frames_per_process": args.frames, "mps": args.mps, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
