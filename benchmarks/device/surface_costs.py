"""Host cost of each per-picture step of trtapps' NVDEC decoding loop, in microseconds per call.

The decoding processes spend 0.44-0.8 ms of CPU per frame, of which about a third is trtapps' own Python around
PyNvVideoCodec's ``Decode`` (session 10's native profile). This times each step of that Python on real decoded
surfaces, so the trimming goes where the time is: reading a surface's planes (``frame.cuda()``, the CUDA array
interfaces, :func:`~trtapps.gpu.nvdec.surface_layout`, ``GetPtrToPlane`` where PyNvVideoCodec has it), its
timestamp, entering the device and stream contexts, the copy, the event wait, a CuPy view over a slot, and the
pickled message a worker sends per group of pictures. Each step runs ``--repeat`` times on the same surface and
the median per surface is printed. It also prints what a decoded surface offers (its attributes, and whether its
planes are contiguous).

Usage (GPU machine): ``python benchmarks/device/surface_costs.py --video face_tracker.mp4 --json OUT.json``
"""

from __future__ import annotations

import argparse
import json
import pickle
import socket
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--surfaces", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import cupy
    import PyNvVideoCodec as nvc
    from cupy.cuda import runtime

    from trtapps.gpu import nvdec
    from trtapps.gpu.device import configure_host_wait

    configure_host_wait(0)
    stream = cupy.cuda.Stream(non_blocking=True)
    event = cupy.cuda.Event(block=True, disable_timing=True)
    demuxer = nvc.CreateDemuxer(filename=args.video)
    decoder = nvc.CreateDecoder(gpuid=0, codec=demuxer.GetNvCodecId(), cudastream=int(stream.ptr),
                                usedevicememory=True)
    target = cupy.empty(1 << 24, dtype=cupy.uint8)
    a, b = socket.socketpair()
    send, recv = Connection(a.detach()), Connection(b.detach())
    group = tuple((i, 0, i, None) for i in range(4))

    def per_call(fn: Any) -> float:
        t0 = time.perf_counter_ns()
        for _ in range(args.repeat):
            fn()
        return (time.perf_counter_ns() - t0) / args.repeat / 1e3

    def enter_device() -> None:
        with cupy.cuda.Device(0):
            pass

    def enter_stream() -> None:
        with stream:
            pass

    steps: dict[str, list[float]] = {}
    info: dict[str, Any] = {}
    seen = 0
    packets = iter(demuxer)
    t_decode: list[float] = []
    while seen < args.surfaces:
        packet = next(packets)
        t0 = time.perf_counter_ns()
        surfaces = decoder.Decode(packet)
        t_decode.append((time.perf_counter_ns() - t0) / 1e3)
        for surface in surfaces:
            seen += 1
            if not info:
                info["attributes"] = sorted(n for n in dir(surface) if not n.startswith("__"))
                layout = nvdec.surface_layout(surface)
                info["layout"] = repr(layout)
                info["contiguous"] = layout.contiguous
                if hasattr(surface, "GetPtrToPlane"):
                    info["GetPtrToPlane(0) == luma"] = int(surface.GetPtrToPlane(0)) == layout.luma
                info["cuda()"] = [dict(v.__cuda_array_interface__) for v in surface.cuda()]
                for name in ("shape", "strides", "format", "timestamp"):
                    value = getattr(surface, name, None)
                    info[name] = repr(value() if callable(value) else value)
            layout = nvdec.surface_layout(surface)
            timings = {
                "frame.cuda()": per_call(surface.cuda),
                "cuda() + interfaces": per_call(lambda s=surface: [v.__cuda_array_interface__ for v in s.cuda()]),
                "surface_layout": per_call(lambda s=surface: nvdec.surface_layout(s)),
                "surface_pts": per_call(lambda s=surface: nvdec.surface_pts(s)),
                "format attribute": per_call(lambda s=surface: s.format),
                "with Device": per_call(enter_device),
                "with stream": per_call(enter_stream),
                "memcpy2DAsync": per_call(lambda lay=layout: runtime.memcpy2DAsync(
                    int(target.data.ptr), lay.width, lay.luma, lay.luma_pitch, lay.width, lay.height * 3 // 2,
                    runtime.memcpyDeviceToDevice, int(stream.ptr))),
                "event record + wait": per_call(lambda: (event.record(stream), event.synchronize())),
                "nv12_view": per_call(lambda: nvdec.nv12_view(int(target.data.ptr), 720, 1280, None, 0)),
                "pickle group of 4": per_call(lambda: pickle.dumps(("frames", group))),
                "send + recv group of 4": per_call(lambda: (send.send(("frames", group)), recv.recv())),
            }
            if hasattr(surface, "GetPtrToPlane"):
                timings["GetPtrToPlane(0)"] = per_call(lambda s=surface: s.GetPtrToPlane(0))
            for name, value in timings.items():
                steps.setdefault(name, []).append(value)
    stream.synchronize()
    rows = {name: round(statistics.median(values), 2) for name, values in steps.items()}
    rows["Decode (per packet, median)"] = round(statistics.median(t_decode), 1)
    for name, value in rows.items():
        print(f"{name:<32} {value:>9.2f} us")
    print(json.dumps({k: v for k, v in info.items() if k != "attributes"}, default=str))
    print("attributes:", " ".join(info.get("attributes", [])))
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "surface_costs", "video": Path(args.video).name,
                                         "surfaces": seen, "repeat": args.repeat, "us_per_call": rows,
                                         "surface": info}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
