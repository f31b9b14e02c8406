"""Soak runs: a small model over looping video sources for many minutes, watched for leaks and lost frames.

A thread samples every few seconds: frames out so far, frames/s since the last sample, the resident set size
(``/proc/self/status``) and, on a GPU backend, the GPU memory this process holds (``nvidia-smi``'s per-process
figure, so other work on the same GPU does not disturb the verdict; the whole device's ``cudaMemGetInfo`` when
``nvidia-smi`` cannot tell, marked ``gpu_scope``) and CuPy's pool. At the end
:func:`judge` gives the verdict the throughput issue asks for:

* **memory flat**: after the warm-up (allocators, caches and the first passes settle), the median of the last
  three samples is less than ``limit`` (2 %) above the median of the first three, for RSS and for device
  memory. A leak grows steadily, so it shows at the end; a transient peak is reported, not judged;
* **no frame lost**: every frame the sources yielded entered the pipeline, and frames in = frames out +
  counted drops; frames that failed are counted apart and fail the verdict too (a soak must run clean).

Where the C library is glibc, each sample also has glibc's own account of its heap (``mallinfo2``): the bytes
handed out (``heap_used_mib``, live objects and buffers wherever they are) and the free bytes it keeps in its
arenas (``heap_free_mib``). They are not judged; they tell why RSS grew: a leak grows the heap in use, while
fragmentation (large per-frame buffers freed and reallocated by several threads) grows the free bytes kept.

Nothing here grows with the run's length except the sample list (one small dict per sample), so the
measurement does not disturb what it measures.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import functools
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from trtapps.bench.core import host, versions
from trtapps.bench.levels import on_device
from trtapps.bench.resources import gpu_snapshot, process_gpu_mib, processes_gpu_mib, rss_mib
from trtapps.bench.sources import LoopingNvdecSource, LoopingVideoSource
from trtapps.metrics import RunSummary

#: growth after the warm-up above which memory is not flat
GROWTH_LIMIT = 0.02


@dataclass
class SoakConfig:
    """What to soak. ``warmup_s=None``: 10 % of the run, at least 10 s and at most 120 s."""

    model: str
    video: Path
    minutes: float
    backend: str = "auto"
    app: str = "yolo"
    streams: int = 1
    batch: int = 1
    interval_s: float = 5.0
    warmup_s: float | None = None
    limit: float = GROWTH_LIMIT
    #: ``opencv`` (host frames) or ``nvdec`` (device frames, :class:`~trtapps.bench.sources.LoopingNvdecSource`)
    decoder: str = "opencv"
    #: with ``nvdec``: ``source.decode_worker`` (``auto``, ``thread``, ``process``)
    decode_worker: str = "auto"

    @property
    def seconds(self) -> float:
        return 60.0 * self.minutes

    @property
    def warmup(self) -> float:
        if self.warmup_s is not None:
            return self.warmup_s
        return min(120.0, max(10.0, 0.1 * self.seconds))


def _window(values: list[float]) -> tuple[float, float]:
    """Medians of the first and of the last few values (three, fewer for short runs)."""
    k = max(1, min(3, len(values) // 3))
    return statistics.median(values[:k]), statistics.median(values[-k:])


def growth(samples: list[dict[str, Any]], key: str, warmup_s: float, limit: float) -> dict[str, Any]:
    """How much ``sample[key]`` grew after the warm-up: start and end medians, peak, relative growth, ok.

    Samples taken once the sources ended (``after_run``) are left out: the pipeline drains and frees its queues.
    """
    values = [s[key] for s in samples
              if s["t"] >= warmup_s and s.get(key) is not None and not s.get("after_run")]
    if len(values) < 2:
        return {"samples": len(values), "ok": False, "reason": "fewer than 2 samples after the warm-up"}
    start, end = _window(values)
    rel = (end - start) / start if start > 0 else 0.0
    return {
        "samples": len(values),
        "start_mib": round(start, 1),
        "end_mib": round(end, 1),
        "peak_mib": round(max(values), 1),
        "growth": round(rel, 4),
        "ok": rel < limit,
    }


def judge(
    samples: list[dict[str, Any]], warmup_s: float, limit: float, frames: dict[str, int], gpu: bool
) -> dict[str, Any]:
    """The verdict: memory flat after the warm-up and every frame accounted for."""
    rss = growth(samples, "rss_mib", warmup_s, limit)
    device = growth(samples, "gpu_used_mib", warmup_s, limit) if gpu else None
    balanced = frames["yielded"] == frames["in"] == frames["out"] + frames["dropped"]
    reasons = []
    if not rss["ok"]:
        reasons.append(rss.get("reason") or f"RSS grew {100 * rss['growth']:.2f} % (limit {100 * limit:g} %)")
    if device is not None and not device["ok"]:
        reasons.append(device.get("reason") or f"GPU memory grew {100 * device['growth']:.2f} % "
                       f"(limit {100 * limit:g} %)")
    if not balanced:
        reasons.append(f"frames yielded {frames['yielded']}, in {frames['in']}, out {frames['out']}, "
                       f"dropped {frames['dropped']}: some are unaccounted for")
    if frames["failed"]:
        reasons.append(f"{frames['failed']} frames failed")
    heap = None  # not judged: it says whether RSS grew as live memory or as free memory the allocator keeps
    if any(s.get("heap_used_mib") is not None for s in samples):
        heap = {key: growth(samples, f"heap_{key}_mib", warmup_s, limit) for key in ("used", "free")}
    return {
        "ok": not reasons,
        "reasons": reasons,
        "limit": limit,
        "warmup_s": warmup_s,
        "rss": rss,
        "gpu": device,
        "heap": heap,
        "frames": {**frames, "balanced": balanced},
    }


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.cache
def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        fn = ctypes.CDLL(None).mallinfo2  # glibc 2.33 and later
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows), or an older one
        return None
    fn.restype = _MallInfo2
    fn.argtypes = []
    return fn


def malloc_mib() -> dict[str, float] | None:
    """glibc's heap in MiB: ``heap_used_mib`` handed out (mmapped chunks included), ``heap_free_mib`` free but
    kept in its arenas; ``None`` where the C library is not glibc 2.33+."""
    fn = _mallinfo2()
    if fn is None:
        return None
    info = fn()
    mib = 1024.0 * 1024.0
    return {"heap_used_mib": round((info.uordblks + info.hblkhd) / mib, 1),
            "heap_free_mib": round(info.fordblks / mib, 1)}


class _Counter:
    """Results seen by the consumer, read by the sampler thread (int stores are atomic)."""

    def __init__(self) -> None:
        self.out = 0
        self.failed = 0
        self.first_error: str | None = None


def run_soak(config: SoakConfig, on_sample: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the soak and return its document (config, device, samples, verdict). Ctrl-C ends it early.

    Raises:
        UserError: the model, backend or video cannot be used.
        OSError: no ``/proc/self/status`` to read RSS from (not Linux).
    """
    from trtapps.pipeline import Pipeline

    rss_mib()  # fail now, not in the sampler thread, where /proc is missing
    app = {"type": config.app, "model": config.model, "batch_size": config.batch}
    pipe = Pipeline.from_objects(app=app, backend=config.backend)
    gpu = on_device(pipe)
    device = pipe.context.device if gpu else None
    stop = threading.Event()
    counter = _Counter()
    samples: list[dict[str, Any]] = []
    summary = RunSummary()
    interrupted = False
    start = time.perf_counter()
    sources: list[LoopingVideoSource | LoopingNvdecSource]
    if config.decoder == "nvdec":
        sources = [LoopingNvdecSource(config.video, deadline=start + config.seconds, stop=stop, name=f"stream{i}",
                                      device=device or 0, worker=config.decode_worker)
                   for i in range(config.streams)]
    else:
        sources = [LoopingVideoSource(config.video, deadline=start + config.seconds, stop=stop, name=f"stream{i}")
                   for i in range(config.streams)]

    def sample(after_run: bool = False) -> None:
        now = time.perf_counter() - start
        previous = samples[-1] if samples else None
        out = counter.out
        row: dict[str, Any] = {
            "t": round(now, 2),
            "frames": out,
            "fps": round((out - previous["frames"]) / (now - previous["t"]), 1)
            if previous is not None and now > previous["t"] else None,
            "rss_mib": round(rss_mib(), 1),
        }
        heap = malloc_mib()
        if heap is not None:
            row.update(heap)
        if device is not None:
            snap = gpu_snapshot(device)
            own = process_gpu_mib()  # this process only, when nvidia-smi can tell; else the whole device
            row["gpu_used_mib"] = round(own if own is not None else snap["device_used_mib"], 1)
            row["gpu_scope"] = "process" if own is not None else "device"
            row["cupy_pool_mib"] = round(snap["cupy_pool_held_mib"], 1)
            if config.decoder == "nvdec":
                row.update(_decoding_processes())
        if after_run or now >= config.seconds:
            row["after_run"] = True  # the sources have ended: the pipeline drains and frees its queues
        samples.append(row)
        if on_sample is not None:
            on_sample(row)

    def sampler() -> None:
        while not stop.wait(config.interval_s):
            sample()

    sample()
    thread = threading.Thread(target=sampler, name="trtapps-soak-sampler", daemon=True)
    thread.start()
    try:
        for result in pipe.iter_results(write=False, sources=sources, summary=summary):
            counter.out += 1
            if result.error is not None:
                counter.failed += 1
                counter.first_error = counter.first_error or f"{result.source} frame {result.index}: {result.error}"
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop.set()
        thread.join()
        sample(after_run=True)
        pipe_info = {"model": str(pipe.runner.model_path), "backend": pipe.runner.backend,
                     "batch": pipe.batch_size}
        pipe.close()
    frames = {
        "yielded": sum(s.yielded for s in sources),
        "in": summary.frames_in,
        "out": summary.frames_out,
        "dropped": summary.frames_dropped,
        "failed": counter.failed,
        "seen": counter.out,
    }
    verdict = judge(samples, config.warmup, config.limit, frames, gpu)
    if interrupted:
        verdict["ok"] = False
        verdict["reasons"].append("interrupted before the planned duration")
    if counter.first_error:
        verdict["first_error"] = counter.first_error
    return {
        "benchmark": "soak",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **pipe_info,
        "app": config.app,
        "device": _device(device),
        "host": host(),
        "versions": versions(),
        "config": {"minutes": config.minutes, "streams": config.streams, "video": str(config.video),
                   "interval_s": config.interval_s, "warmup_s": config.warmup, "limit": config.limit,
                   "decoder": config.decoder,
                   **({"decode_worker": config.decode_worker} if config.decoder == "nvdec" else {})},
        "seconds": round(time.perf_counter() - start, 1),
        "per_stream_frames": {s.name: s.yielded for s in sources},
        "passes": {s.name: s.passes for s in sources},
        "samples": samples,
        "verdict": verdict,
    }


def _decoding_processes() -> dict[str, Any]:
    """The NVDEC decoding processes now: how many, their GPU memory and RSS (reported, not judged: a process
    lives as long as its videos, so each pass of a looping video may start a new one)."""
    from trtapps.gpu.nvdec_worker import POOL

    pids = POOL.pids()
    rss = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            rss += rss_mib(Path(f"/proc/{pid}/status"))
    return {"decoding_processes": len(pids), "decoding_gpu_mib": round(sum(processes_gpu_mib(pids).values()), 1),
            "decoding_rss_mib": round(rss, 1)}


def _device(ordinal: int | None) -> dict[str, Any]:
    if ordinal is None:
        from trtapps.bench.resources import cpu_count, cpu_description

        return {"kind": "cpu", "name": cpu_description(), "cores": cpu_count()}
    from trtapps.gpu.device import gpu_info

    return {"kind": "gpu", **gpu_info(ordinal)}


def sample_line(row: dict[str, Any]) -> str:
    """One live line per sample: ``t=  65.0 s  frames 9,750  fps 150.2  RSS 512.3 MiB  GPU 1,024.0 MiB``."""
    fps = "–" if row["fps"] is None else f"{row['fps']:,.1f}"
    line = f"t={row['t']:8.1f} s  frames {row['frames']:>10,}  fps {fps:>9}  RSS {row['rss_mib']:>9,.1f} MiB"
    if "gpu_used_mib" in row:
        line += f"  GPU {row['gpu_used_mib']:>9,.1f} MiB (pool {row['cupy_pool_mib']:,.1f})"
    return line


def soak_table(doc: dict[str, Any], max_rows: int = 40) -> Table:
    """The samples as a table (evenly thinned to *max_rows*, the first and last always shown)."""
    samples = doc["samples"]
    gpu = any("gpu_used_mib" in s for s in samples)
    step = max(1, -(-len(samples) // max_rows))
    shown = samples[::step]
    if shown and shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    title = (f"soak · {Path(doc['model']).name} · {doc['backend']} · batch {doc['batch']} · "
             f"{doc['config']['streams']} stream(s) · {doc['seconds']:.0f} s")
    table = Table(title=title, header_style="bold")
    columns = ["time s", "frames", "fps", "RSS MiB"] + (["GPU MiB", "CuPy pool MiB"] if gpu else [])
    for col in columns:
        table.add_column(col, justify="right")
    warmup = doc["verdict"]["warmup_s"]
    for s in shown:
        cells = [f"{s['t']:.1f}", f"{s['frames']:,}", "–" if s["fps"] is None else f"{s['fps']:,.1f}",
                 f"{s['rss_mib']:,.1f}"]
        if gpu:
            cells += [f"{s['gpu_used_mib']:,.1f}", f"{s['cupy_pool_mib']:,.1f}"]
        table.add_row(*cells, style="dim" if s["t"] < warmup or s.get("after_run") else None)
    return table


def verdict_lines(doc: dict[str, Any]) -> list[str]:
    """The verdict in words: memory growth, frame accounting, PASS or FAIL with the reasons."""
    v = doc["verdict"]
    lines = []
    for name, g in (("RSS", v["rss"]), ("GPU memory", v["gpu"])):
        if g is None:
            continue
        if "growth" in g:
            lines.append(f"{name}: {g['start_mib']:,.1f} → {g['end_mib']:,.1f} MiB after the {v['warmup_s']:g} s "
                         f"warm-up ({100 * g['growth']:+.2f} %, limit {100 * v['limit']:g} %; peak "
                         f"{g['peak_mib']:,.1f} MiB)")
        else:
            lines.append(f"{name}: {g['reason']}")
    heap = v.get("heap")
    if heap and "growth" in heap["used"] and "start_mib" in heap["free"]:
        used, free = heap["used"], heap["free"]
        lines.append(f"malloc heap: in use {used['start_mib']:,.1f} → {used['end_mib']:,.1f} MiB "
                     f"({100 * used['growth']:+.2f} %), free but kept {free['start_mib']:,.1f} → "
                     f"{free['end_mib']:,.1f} MiB (not judged)")
        rss = v["rss"]
        if "growth" in rss and not rss["ok"] and used["ok"]:
            lines.append("note: the heap in use stayed flat, so RSS grew as free memory the allocator keeps "
                         "(fragmentation), not as live objects")
    f = v["frames"]
    lines.append(f"frames: yielded {f['yielded']:,}, in {f['in']:,}, out {f['out']:,}, dropped {f['dropped']:,}, "
                 f"failed {f['failed']:,}: {'balanced' if f['balanced'] else 'NOT balanced'}")
    idle = [name for name, n in doc.get("per_stream_frames", {}).items() if n == 0]
    if idle:  # not a lost frame (nothing was yielded), but the streams were not served side by side
        lines.append(f"note: {', '.join(idle)} yielded no frame: the pipeline read the streams one after another")
    lines.append("verdict: PASS" if v["ok"] else "verdict: FAIL: " + "; ".join(v["reasons"]))
    return lines
