"""Decode-only throughput: NVDEC (PyNvVideoCodec) against OpenCV's FFmpeg, for 1, 8 and 16 streams.

Run on the GPU machine (PyNvVideoCodec installed, the shared media under ``.gpudata/media``)::

    python benchmarks/nvdec_decode.py --media .gpudata/media/face_tracker.mp4 .gpudata/media/MOT17-09.mp4 \\
        --streams 1 8 16 --frames 600 --raw --threaded --json "$OUT/nvdec_decode.json"

Each stream is one thread with its own decoder, reading its file (stream ``i`` reads ``--media[i % n]``) from the
start again whenever it ends, until it has decoded ``--frames`` frames. Decoders:

* ``nvdec``: :class:`trtapps.gpu.nvdec.NvdecSource` decoding in the reading thread (``worker="thread"``): NVDEC's
  surface copied into a ring buffer, ready on the device as an NV12 :class:`~trtapps.structures.Frame` (the frame
  is then dropped, so its buffer is reused). A new pass opens a new demuxer + decoder, as a looping file source
  does. (The default, a decoding process per source, is measured by ``nvdec_pipeline.py``, which keeps its
  start-up out of the timed window.)
* ``nvdec_raw`` (``--raw``): PyNvVideoCodec's demuxer + decoder alone, surfaces not read (the figure
  ``../shared/device/README.md`` quotes: 2,819 fps for 8 streams of 1280×720 on the H100). Python calls
  ``Decode`` once per packet.
* ``nvdec_threaded`` (``--threaded``): PyNvVideoCodec's ``ThreadedDecoder``: demuxing and decoding run on a C++
  thread of the library that fills a buffer of ``--threaded-buffer`` NV12 frames on the device; the stream's Python
  thread only takes batches of ``--threaded-batch`` frames (``get_batch_frames``) and drops them unread (a frame is
  valid until the next call). An empty batch is the end of the file; a new pass creates a new ``ThreadedDecoder``,
  as the other NVDEC modes open a new decoder. Each measurement of this mode runs in a child process with a time
  limit (``--timeout``), so that a missing class, a failing constructor, a crash or a hang in the library becomes an
  error in the JSON while the other modes go on.
* ``opencv``: ``cv2.VideoCapture.read()`` to host BGR arrays (FFmpeg's own threads per capture).

Reported per decoder and stream count: aggregate frames per second (all streams' frames over the wall time of the
slowest), and host CPU time per frame (process CPU time over the run / frames: what decoding costs the host). Then,
unless ``--no-gil-probe``, the same measurement is repeated with ``nvdec_pipeline.GilProbe`` (a pure-Python loop
on its own thread) running over the timed window: ``gil_left_while_decoding`` is its loop rate over its rate on an
idle interpreter (1.0: the decoders leave Python threads the GIL; near 0: they hold it), ``fps_with_gil_probe`` the
decode rate while the probe competed. The probe pass is separate so that ``fps`` and ``cpu_ms_per_frame`` stay free
of the probe's own CPU time and comparable with earlier runs. A mode that fails is listed under ``errors`` in the
JSON (the exit status is then 1); the JSON is rewritten after every measurement.
:func:`measure_decode` is the measurement, for the throughput benchmark to import.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
if str(Path(__file__).resolve().parent) not in sys.path:  # nvdec_pipeline (GilProbe), also in a spawned child
    sys.path.insert(0, str(Path(__file__).resolve().parent))

DECODERS = ("nvdec", "nvdec_raw", "nvdec_threaded", "opencv")
#: the modes measured in a child process (see the module docstring)
ISOLATED = frozenset({"nvdec_threaded"})


def _decode_nvdec(path: Path, frames: int, device: int) -> int:
    from trtapps.gpu.nvdec import NvdecSource

    done = 0
    while done < frames:
        source = NvdecSource(path, max_frames=frames - done, device=device, worker="thread")
        before = done
        for item in source:
            if getattr(item, "pixel_format", None) == "nv12":
                done += 1
        source.close()
        if done == before:
            raise RuntimeError(f"{path}: NVDEC delivered no frame")
    return done


def _decode_nvdec_raw(path: Path, frames: int, device: int, latency: str | None = None) -> int:
    """PyNvVideoCodec's demuxer + decoder alone; *latency*: a ``DisplayDecodeLatencyType`` name (``LOW``,
    ``ZERO``) for ``CreateDecoder``, or its default."""
    import PyNvVideoCodec as nvc

    options = {} if latency is None else {"latency": getattr(nvc.DisplayDecodeLatencyType, latency)}
    done = 0
    while done < frames:
        demuxer = nvc.CreateDemuxer(filename=str(path))
        decoder = nvc.CreateDecoder(gpuid=device, codec=demuxer.GetNvCodecId(), usedevicememory=True, **options)
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


def _decode_nvdec_threaded(
    path: Path, frames: int, device: int, buffer_size: int = 32, batch: int = 8, passes: list[Any] | None = None
) -> int:
    import PyNvVideoCodec as nvc

    done = 0
    while done < frames:
        # context and stream 0 (the defaults), as nvdec_raw's CreateDecoder leaves them: the library takes the
        # device's context itself (the binary imports cuDevicePrimaryCtxRetain) and decodes on stream 0
        decoder = nvc.ThreadedDecoder(
            str(path), buffer_size=buffer_size, gpu_id=device, cuda_context=0, cuda_stream=0,
            use_device_memory=True, output_color_type=nvc.OutputColorType.NATIVE,
        )
        before, ended, expected = done, "enough", None
        try:
            with contextlib.suppress(Exception):  # the container's frame count, for the pass log only
                expected = len(decoder)
            while done < frames:
                # the list is dropped at once: its frames are views of the decoder's buffer, valid until the next call
                got = len(decoder.get_batch_frames(min(batch, frames - done)))
                if got == 0:
                    ended = "eos"
                    break
                done += got
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to report
                decoder.end()
            raise
        decoder.end()  # stops the library's thread (a pass that stops before the end of the file leaves it running)
        del decoder
        if passes is not None:
            passes.append((path.name, done - before, expected, ended))
        if done == before:
            raise RuntimeError(f"{path}: ThreadedDecoder delivered no frame")
    return done


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


_WORKERS: dict[str, Callable[..., int]] = {
    "nvdec": _decode_nvdec,
    "nvdec_raw": _decode_nvdec_raw,
    "nvdec_threaded": _decode_nvdec_threaded,
    "opencv": _decode_opencv,
}


def measure_decode(
    paths: Sequence[str | Path],
    streams: int,
    frames: int,
    decoder: str = "nvdec",
    device: int = 0,
    *,
    gil_probe_idle: float | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Decode *frames* frames in each of *streams* threads (one decoder each, files looped) and time it.

    Args:
        paths: the video files; stream ``i`` reads ``paths[i % len(paths)]``.
        streams: concurrent streams (threads).
        frames: frames each stream decodes (its file is read again from the start as often as needed).
        decoder: ``"nvdec"`` (the NVDEC source, frames ready on the device), ``"nvdec_raw"`` (PyNvVideoCodec's
            decoder fed packet by packet), ``"nvdec_threaded"`` (PyNvVideoCodec's ThreadedDecoder) or ``"opencv"``.
        device: CUDA device of the NVDEC decoders.
        gil_probe_idle: when given (the probe's idle rate, :func:`nvdec_pipeline.idle_probe_rate`), a
            ``nvdec_pipeline.GilProbe`` runs over the timed window and the result carries ``gil_probe_rate`` and
            ``gil_left_while_decoding`` (its rate over *gil_probe_idle*); its CPU time is then in
            ``cpu_ms_per_frame``.
        options: keyword arguments of the decoder's worker (``nvdec_threaded``: ``buffer_size``, ``batch``,
            ``passes``).

    Returns:
        ``{"decoder", "streams", "frames_per_stream", "frames", "seconds", "fps", "cpu_ms_per_frame", "paths"}``;
        ``fps`` is the aggregate over all streams.

    Raises:
        RuntimeError: a stream failed (its first error is re-raised with the stream number).
    """
    if decoder not in _WORKERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    files = [Path(p) for p in paths]
    worker = functools.partial(_WORKERS[decoder], **(options or {}))
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
    probe: Any = None
    with contextlib.ExitStack() as window:
        if gil_probe_idle is not None:
            from nvdec_pipeline import GilProbe

            probe = window.enter_context(GilProbe())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        start_line.wait()
        for t in threads:
            t.join()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for i, error in enumerate(errors):
        if error is not None:
            raise RuntimeError(f"stream {i} ({decoder}) failed: {type(error).__name__}: {error}") from error
    total = sum(counts)
    result = {
        "decoder": decoder,
        "streams": streams,
        "frames_per_stream": frames,
        "frames": total,
        "seconds": wall,
        "fps": total / wall if wall > 0 else 0.0,
        "cpu_ms_per_frame": 1000.0 * cpu / total if total else 0.0,
        "paths": [str(p) for p in files],
    }
    if probe is not None and gil_probe_idle:
        result["gil_probe_rate"] = probe.rate
        result["gil_left_while_decoding"] = probe.rate / gil_probe_idle
    return result


def measure_row(
    paths: Sequence[str | Path],
    streams: int,
    frames: int,
    decoder: str,
    device: int = 0,
    *,
    gil_probe: bool = True,
    idle: float | None = None,
    threaded_buffer: int = 32,
    threaded_batch: int = 8,
) -> dict[str, Any]:
    """One row of the table: :func:`measure_decode` without the probe, then (*gil_probe*) again with it.

    *idle* is the probe's idle rate (measured here when ``None``). The row is :func:`measure_decode`'s dict plus,
    with the probe, ``gil_left_while_decoding``, ``gil_probe_rate``, ``gil_probe_idle_rate``, ``fps_with_gil_probe``
    and ``cpu_ms_per_frame_with_gil_probe`` (probe's CPU included); for ``nvdec_threaded`` also
    ``threaded_buffer_size``, ``threaded_batch`` and ``threaded_passes`` (per file: the container's frame count and
    the frame counts of the passes that ended at the end of the file).
    """
    passes: list[Any] = []
    options: dict[str, Any] | None = None
    if decoder == "nvdec_threaded":
        options = {"buffer_size": threaded_buffer, "batch": threaded_batch, "passes": passes}
    row = measure_decode(paths, streams, frames, decoder, device, options=options)
    if gil_probe:
        if idle is None:
            from nvdec_pipeline import idle_probe_rate

            idle = idle_probe_rate()
        probed = measure_decode(paths, streams, frames, decoder, device, gil_probe_idle=idle, options=options)
        row.update(
            gil_left_while_decoding=probed["gil_left_while_decoding"],
            gil_probe_rate=probed["gil_probe_rate"],
            gil_probe_idle_rate=idle,
            fps_with_gil_probe=probed["fps"],
            cpu_ms_per_frame_with_gil_probe=probed["cpu_ms_per_frame"],
        )
    if options is not None:
        summary: dict[str, Any] = {}
        for name, count, expected, ended in passes:
            entry = summary.setdefault(name, {"container_frames": expected, "passes": 0, "eos_pass_frames": []})
            entry["passes"] += 1
            if ended == "eos" and count not in entry["eos_pass_frames"]:
                entry["eos_pass_frames"].append(count)
        row.update(threaded_buffer_size=threaded_buffer, threaded_batch=threaded_batch, threaded_passes=summary)
    return row


class ChildMeasurementError(RuntimeError):
    """A measurement failed in the child process (the message is the child's ``Type: message``)."""


def _row_in_child(conn: Any, kwargs: dict[str, Any]) -> None:
    try:
        conn.send(("ok", measure_row(**kwargs)))
    except BaseException as exc:  # sent to the parent, which records it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def measure_row_isolated(timeout: float, **kwargs: Any) -> dict[str, Any]:
    """:func:`measure_row` in a spawned child process, killed after *timeout* seconds.

    The row gains ``child_exitcode`` (0 when the child ended by itself within 30 s of sending it; negative: the
    signal that ended it, ``-9`` when it had to be killed).

    Raises:
        TimeoutError: no row within *timeout* seconds.
        ChildMeasurementError: the measurement failed in the child, or the child died without a row.
    """
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_row_in_child, args=(sender, kwargs), name=f"measure-{kwargs.get('decoder')}")
    proc.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            raise TimeoutError(f"no result within {timeout:.0f} s (child process killed)")
        try:
            status, payload = receiver.recv()
        except EOFError:
            proc.join(10)
            raise ChildMeasurementError(f"child process died without a result (exit code {proc.exitcode})") from None
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join(10)
        receiver.close()
    if status != "ok":
        raise ChildMeasurementError(payload)
    payload["child_exitcode"] = proc.exitcode
    return dict(payload)


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


def _cell(row: dict[str, Any], key: str, fmt: str, width: int) -> str:
    value = row.get(key)
    return f"{value:>{width}{fmt}}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", nargs="+", type=Path, required=True, help="video files (streams cycle through them)")
    parser.add_argument("--streams", nargs="+", type=int, default=[1, 8, 16], help="stream counts to measure")
    parser.add_argument("--frames", type=int, default=600, help="frames each stream decodes (files are looped)")
    parser.add_argument("--decoders", nargs="+", choices=DECODERS, default=["nvdec", "opencv"])
    parser.add_argument("--raw", action="store_true", help="also measure PyNvVideoCodec alone (nvdec_raw)")
    parser.add_argument("--threaded", action="store_true",
                        help="also measure PyNvVideoCodec's ThreadedDecoder (nvdec_threaded)")
    parser.add_argument("--threaded-buffer", type=int, default=32, help="ThreadedDecoder buffer_size (frames)")
    parser.add_argument("--threaded-batch", type=int, default=8, help="frames per get_batch_frames call")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds a child-process measurement (nvdec_threaded) may take before it is killed")
    parser.add_argument("--no-gil-probe", action="store_true", help="skip the second, GIL-probed pass")
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here (rewritten after every measurement)")
    args = parser.parse_args(argv)
    if not 1 <= args.threaded_batch <= args.threaded_buffer:
        parser.error("--threaded-batch must be between 1 and --threaded-buffer")
    extra = [*(["nvdec_raw"] if args.raw else []), *(["nvdec_threaded"] if args.threaded else [])]
    decoders = list(dict.fromkeys([*args.decoders, *extra]))
    device_name = "?"
    if any(d.startswith("nvdec") for d in decoders):
        try:
            from trtapps.gpu.device import describe, gpu_info

            device_name = describe(gpu_info(args.device))
        except Exception as exc:  # the NVDEC rows then fail and say why
            device_name = f"unavailable: {type(exc).__name__}: {exc}"
    gil_probe = not args.no_gil_probe
    idle: float | None = None
    if gil_probe:
        from nvdec_pipeline import idle_probe_rate

        idle = idle_probe_rate()
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    given_up: dict[str, str] = {}  # decoder → why its later stream counts are skipped (a time-out)

    def write_json() -> None:
        if not args.json:
            return
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "device": device_name,
            "versions": _versions(),
            "frames_per_stream": args.frames,
            "results": rows,
            "errors": errors,
            "gil_probe": None if not gil_probe else {
                "idle_rate": idle,
                "what": "nvdec_pipeline.GilProbe over the timed window of a second pass: gil_left_while_decoding "
                        "= its loop rate / its idle rate",
            },
            "threaded": {"buffer_size": args.threaded_buffer, "batch": args.threaded_batch}
            if "nvdec_threaded" in decoders else None,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"device: {device_name}")
    if idle is not None:
        print(f"GIL probe idle rate: {idle:,.0f} loop iterations/s")
    print(f"{'decoder':<14} {'streams':>7} {'frames':>8} {'seconds':>8} {'fps':>9} {'cpu ms/frame':>13} "
          f"{'fps w/ probe':>12} {'GIL left':>8}")
    for streams in args.streams:
        for decoder in decoders:
            if decoder in given_up:
                errors.append({"decoder": decoder, "streams": streams, "error": f"skipped: {given_up[decoder]}"})
                continue
            kwargs: dict[str, Any] = {
                "paths": [str(p) for p in args.media], "streams": streams, "frames": args.frames,
                "decoder": decoder, "device": args.device, "gil_probe": gil_probe,
                "threaded_buffer": args.threaded_buffer, "threaded_batch": args.threaded_batch,
            }
            try:
                if decoder in ISOLATED:
                    row = measure_row_isolated(args.timeout, **kwargs)  # the child measures its own idle rate
                else:
                    row = measure_row(**kwargs, idle=idle)
            except Exception as exc:  # recorded; the other modes go on
                message = str(exc) if isinstance(exc, ChildMeasurementError) else f"{type(exc).__name__}: {exc}"
                errors.append({"decoder": decoder, "streams": streams, "error": message})
                if isinstance(exc, TimeoutError):
                    given_up[decoder] = f"timed out at {streams} streams"
                print(f"{decoder:<14} {streams:>7} FAILED: {message}")
                write_json()
                continue
            rows.append(row)
            print(f"{decoder:<14} {streams:>7} {row['frames']:>8} {row['seconds']:>8.2f} {row['fps']:>9.1f} "
                  f"{row['cpu_ms_per_frame']:>13.3f} {_cell(row, 'fps_with_gil_probe', '.1f', 12)} "
                  f"{_cell(row, 'gil_left_while_decoding', '.0%', 8)}")
            write_json()
    if args.json:
        write_json()
        print(f"wrote {args.json}")
    if errors:
        print(f"{len(errors)} measurement(s) failed or skipped (see 'errors' in the JSON)")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
