"""Decode-only throughput: NVDEC (PyNvVideoCodec) against OpenCV's FFmpeg, for 1, 8 and 16 streams.

Run on the GPU machine (PyNvVideoCodec installed, the shared media under ``.gpudata/media``)::

    python benchmarks/nvdec_decode.py --media .gpudata/media/face_tracker.mp4 .gpudata/media/MOT17-09.mp4 \\
        --streams 1 8 16 --frames 600 --json "$OUT/nvdec_decode.json"

Each stream is one thread with its own decoder, reading its file (stream ``i`` reads ``--media[i % n]``) from the
start again whenever it ends, until it has decoded ``--frames`` frames. Decoders:

* ``nvdec``: :class:`trtapps.gpu.nvdec.NvdecSource`, i.e. what a pipeline gets: NVDEC's surface copied into a ring
  buffer, ready on the device as an NV12 :class:`~trtapps.structures.Frame` (the frame is then dropped, so its
  buffer is reused). A new pass opens a new demuxer + decoder, as a looping file source does.
* ``nvdec_raw`` (``--raw``): PyNvVideoCodec's demuxer + decoder alone, surfaces not read (the figure
  ``../shared/device/README.md`` quotes: 2,819 fps for 8 streams of 1280×720 on the H100).
* ``opencv``: ``cv2.VideoCapture.read()`` to host BGR arrays (FFmpeg's own threads per capture).

Reported per decoder and stream count: aggregate frames per second (all streams' frames over the wall time of the
slowest), and host CPU time per frame (process CPU time over the run / frames: what decoding costs the host).
:func:`measure_decode` is the measurement, for the throughput benchmark to import.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DECODERS = ("nvdec", "nvdec_raw", "opencv")


def _decode_nvdec(path: Path, frames: int, device: int) -> int:
    from trtapps.gpu.nvdec import NvdecSource

    done = 0
    while done < frames:
        source = NvdecSource(path, max_frames=frames - done, device=device)
        before = done
        for item in source:
            if getattr(item, "pixel_format", None) == "nv12":
                done += 1
        source.close()
        if done == before:
            raise RuntimeError(f"{path}: NVDEC delivered no frame")
    return done


def _decode_nvdec_raw(path: Path, frames: int, device: int) -> int:
    import PyNvVideoCodec as nvc

    done = 0
    while done < frames:
        demuxer = nvc.CreateDemuxer(filename=str(path))
        decoder = nvc.CreateDecoder(gpuid=device, codec=demuxer.GetNvCodecId(), usedevicememory=True)
        before = done
        for packet in demuxer:
            done += len(decoder.Decode(packet))
            if done >= frames:
                break
        else:
            # end of stream: the pictures the decoder still holds (an error: the demuxer's last packet flushed it)
            with contextlib.suppress(Exception):
                done += len(decoder.Decode(nvc.PacketData()))
        del decoder, demuxer
        if done == before:
            raise RuntimeError(f"{path}: NVDEC delivered no frame")
    return min(done, frames)


def _decode_opencv(path: Path, frames: int, device: int) -> int:
    import cv2

    done = 0
    while done < frames:
        cap = cv2.VideoCapture(str(path))
        before = done
        while done < frames:
            ok, _ = cap.read()
            if not ok:
                break
            done += 1
        cap.release()
        if done == before:
            raise RuntimeError(f"{path}: OpenCV read no frame")
    return done


_WORKERS = {"nvdec": _decode_nvdec, "nvdec_raw": _decode_nvdec_raw, "opencv": _decode_opencv}


def measure_decode(
    paths: Sequence[str | Path], streams: int, frames: int, decoder: str = "nvdec", device: int = 0
) -> dict[str, Any]:
    """Decode *frames* frames in each of *streams* threads (one decoder each, files looped) and time it.

    Args:
        paths: the video files; stream ``i`` reads ``paths[i % len(paths)]``.
        streams: concurrent streams (threads).
        frames: frames each stream decodes (its file is read again from the start as often as needed).
        decoder: ``"nvdec"`` (the NVDEC source, frames ready on the device), ``"nvdec_raw"`` (PyNvVideoCodec
            alone) or ``"opencv"``.
        device: CUDA device of the NVDEC decoders.

    Returns:
        ``{"decoder", "streams", "frames_per_stream", "frames", "seconds", "fps", "cpu_ms_per_frame", "paths"}``;
        ``fps`` is the aggregate over all streams.

    Raises:
        RuntimeError: a stream failed (its first error is re-raised with the stream number).
    """
    if decoder not in _WORKERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    files = [Path(p) for p in paths]
    worker = _WORKERS[decoder]
    # one untimed pass per file first: CUDA context, NVDEC session and kernel set-up are not throughput
    for path in files:
        worker(path, 8, device)
    counts = [0] * streams
    errors: list[BaseException | None] = [None] * streams
    start_line = threading.Barrier(streams + 1)

    def run(i: int) -> None:
        try:
            start_line.wait()
            counts[i] = worker(files[i % len(files)], frames, device)
        except BaseException as exc:  # reported after the join
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,), name=f"decode{i}") for i in range(streams)]
    for t in threads:
        t.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    start_line.wait()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for i, error in enumerate(errors):
        if error is not None:
            raise RuntimeError(f"stream {i} ({decoder}) failed: {type(error).__name__}: {error}") from error
    total = sum(counts)
    return {
        "decoder": decoder,
        "streams": streams,
        "frames_per_stream": frames,
        "frames": total,
        "seconds": wall,
        "fps": total / wall if wall > 0 else 0.0,
        "cpu_ms_per_frame": 1000.0 * cpu / total if total else 0.0,
        "paths": [str(p) for p in files],
    }


def _versions() -> dict[str, Any]:
    import cv2

    out: dict[str, Any] = {"opencv": cv2.__version__}
    try:
        import PyNvVideoCodec

        out["pynvvideocodec"] = getattr(PyNvVideoCodec, "__version__", "?")
    except Exception as exc:  # reported in the JSON, the NVDEC rows then fail visibly
        out["pynvvideocodec"] = f"unavailable: {type(exc).__name__}: {exc}"
    try:
        import cupy

        out["cupy"] = cupy.__version__
    except ImportError:
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", nargs="+", type=Path, required=True, help="video files (streams cycle through them)")
    parser.add_argument("--streams", nargs="+", type=int, default=[1, 8, 16], help="stream counts to measure")
    parser.add_argument("--frames", type=int, default=600, help="frames each stream decodes (files are looped)")
    parser.add_argument("--decoders", nargs="+", choices=DECODERS, default=["nvdec", "opencv"])
    parser.add_argument("--raw", action="store_true", help="also measure PyNvVideoCodec alone (nvdec_raw)")
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    decoders = list(dict.fromkeys([*args.decoders, *(["nvdec_raw"] if args.raw else [])]))
    device_name = "?"
    if any(d.startswith("nvdec") for d in decoders):
        from trtapps.gpu.device import describe, gpu_info

        device_name = describe(gpu_info(args.device))
    rows = []
    print(f"device: {device_name}")
    print(f"{'decoder':<10} {'streams':>7} {'frames':>8} {'seconds':>8} {'fps':>9} {'cpu ms/frame':>13}")
    for streams in args.streams:
        for decoder in decoders:
            row = measure_decode(args.media, streams, args.frames, decoder, args.device)
            rows.append(row)
            print(f"{decoder:<10} {streams:>7} {row['frames']:>8} {row['seconds']:>8.2f} {row['fps']:>9.1f} "
                  f"{row['cpu_ms_per_frame']:>13.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {"device": device_name, "versions": _versions(), "frames_per_stream": args.frames, "results": rows}
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
