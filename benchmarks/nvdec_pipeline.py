"""N H.264 streams decoded by NVDEC through one YOLO pipeline, against what limits it (issue 7's done-when).

In one run, for each stream count N:

* **decode only**: N NVDEC sources (the same source class and ``decode_worker`` the pipeline uses) read on N
  threads, frames dropped on arrival;
* **engine only**: the runner alone at the pipeline's batch size, input already on the device (level (i));
* **pipeline**: N ``video`` sources with ``decoder: nvdec`` through ``Pipeline.iter_results`` (NV12 frames read
  by the preprocessing kernel, inference, decode/NMS, results on the host);

for each ``source.decode_worker`` (``process``: decoding processes, at most ``--decode-processes`` shared by the
streams; ``thread``: decoding in the source's reader thread), and prints the pipeline's aggregate fps over ``min(decode only, engine only)`` (target
≥ 0.90), the host CPU time per frame of the pipeline's process and of the decoding processes (both over the
measured window, the benchmark's own sampling threads left out; target ≤ 0.2 ms), and how much device memory the run took beyond the warm-up (worker contexts included).

The pipeline is timed from its first batch of results to its last result (before session 8 the window also held
the generator's teardown after the last result, ``teardown_s`` now); the decode-only figure from the moment every
stream has delivered a frame to the last frame (start-up excluded from both).

Usage (GPU machine): ``python benchmarks/nvdec_pipeline.py --model M.onnx --video clip.mp4 --json out.json``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _free_device_memory() -> int:
    import cupy

    return int(cupy.cuda.runtime.memGetInfo()[0])


def thread_cpu_ns(tid: str, pid: int | str = "self") -> int:
    """CPU nanoseconds of thread *tid* of process *pid* (default: this one): ``schedstat``'s run time (exact), else
    ``stat``'s utime + stime (clock ticks, 10 ms: a thread's share is rounded down by up to a tick)."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class ThreadCpu:
    """CPU seconds of this process's threads by kind over a window (``/proc/self/task/*/schedstat``, sampled every
    0.1 s by a thread of its own: a thread that ends inside the window keeps what was last sampled, one that starts
    inside it counts from zero)."""

    KINDS = (("trtapps-reader", "readers"), ("trtapps-worker", "inference"), ("MainThread", "main"))

    def __init__(self) -> None:
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._kind: dict[int, str] = {}
        self._comm: dict[int, str] = {}  # the OS name of each thread Python does not know (ONNX Runtime's, CUDA's)
        #: after :meth:`stop`: seconds of the ``other`` threads by name (Python's, else the OS name in parentheses)
        self.other_by_name: dict[str, float] = {}
        self._stop = threading.Event()
        self._started = False
        self._sample()  # the threads alive at the start count from here
        self._started = True
        self._thread = threading.Thread(target=self._run, name="cpu-monitor", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        for entry in os.listdir("/proc/self/task"):
            try:
                ticks = thread_cpu_ns(entry)
            except OSError:  # the thread ended
                continue
            tid = int(entry)
            self._first.setdefault(tid, ticks if not self._started else 0)
            self._last[tid] = ticks
            name = names.get(tid, "")
            kind = next((k for prefix, k in self.KINDS if name.startswith(prefix)), "other")
            self._kind[tid] = "monitor" if name.startswith("cpu-monitor") else kind
            if kind == "other" and tid not in self._comm:
                try:
                    comm = Path(f"/proc/self/task/{entry}/comm").read_text().strip()
                except OSError:
                    comm = "?"
                self._comm[tid] = name or f"({comm})"

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def stop(self) -> dict[str, float]:
        """Seconds per kind (``other``: threads not started by trtapps, e.g. ONNX Runtime's and CUDA's;
        ``monitor``: the benchmark's own sampling threads, which the caller takes out of the process's CPU)."""
        self._stop.set()
        self._thread.join()
        self._sample()
        out: dict[str, float] = {}
        self.other_by_name = {}
        for tid, last in self._last.items():
            kind = self._kind[tid]
            seconds = (last - self._first[tid]) / 1e9
            out[kind] = out.get(kind, 0.0) + seconds
            if kind == "other":
                name = self._comm.get(tid, "?")
                self.other_by_name[name] = self.other_by_name.get(name, 0.0) + seconds
        return out


def _worker_pids() -> list[int]:
    """This process's NVDEC decoding processes (children running ``trtapps.gpu.nvdec_worker``), whatever code
    tree started them (one process per video, or a pool)."""
    me, pids = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) != me:
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"nvdec_worker" in f.read():
                    pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _process_cpu_ns(pid: int) -> int:
    """CPU nanoseconds of process *pid*: the sum over its threads (:func:`thread_cpu_ns`; one that ended while
    being read counts nothing)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += thread_cpu_ns(tid, pid)
    return total


class WorkerCpu:
    """CPU seconds of the decoding processes over a window: those running when it starts, sampled every 0.1 s
    (a process that exits inside the window keeps what was last sampled). The same measure for every code tree,
    over the same window as the pipeline's own CPU."""

    def __init__(self) -> None:
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        for pid in _worker_pids():
            with contextlib.suppress(OSError):
                self._first[pid] = self._last[pid] = _process_cpu_ns(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-monitor-workers", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        for pid in self._first:
            with contextlib.suppress(OSError):
                self._last[pid] = _process_cpu_ns(pid)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def stop(self) -> tuple[float, int]:
        """``(seconds, processes)``."""
        self._stop.set()
        self._thread.join()
        self._sample()
        return sum(self._last[p] - self._first[p] for p in self._first) / 1e9, len(self._first)


def _start_spy(spy: Path | None, spy_bin: str, name: str) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling this process's on-CPU threads (Python frames) into *spy*/*name*, and each decoding
    process's (native frames too: most of their time is in PyNvVideoCodec and the driver) into
    *spy*/``worker_<pid>_``*name*; nothing without *spy*."""
    if spy is None:
        return []
    spy.mkdir(parents=True, exist_ok=True)
    common = [spy_bin, "record", "--threads", "--format", "raw"]
    spies = [subprocess.Popen([*common, "--nonblocking", "--rate", "500", "--pid", str(os.getpid()), "-o",
                               str(spy / name)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    # native frames need the process paused per sample (py-spy refuses --nonblocking with --native)
    spies.extend(subprocess.Popen([*common, "--native", "--rate", "200", "--pid", str(pid), "-o",
                                   str(spy / f"worker_{pid}_{name}")], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for pid in _worker_pids())
    return spies


def _stop_spy(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    for spy in spies:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()


def pipeline_fps(model: str, video: str, streams: int, batch: int, frames: int, worker: str,
                 backend: Any = "onnxruntime_cuda", spy: Path | None = None, spy_bin: str = "py-spy",
                 processes: int | None = None) -> dict[str, Any]:
    from trtapps.pipeline import Pipeline

    source = {"type": "video", "path": video, "decoder": "nvdec", "max_frames": frames, "decode_worker": worker}
    if processes is not None:
        source["decode_processes"] = processes
    app = {"type": "yolo", "model": model, "batch_size": batch}
    with Pipeline.from_objects(app=app, source=[source] * streams, backend=backend) as pipe:
        # warm-up: every batch size the measured run can meet has been seen once (cuDNN picks algorithms per shape)
        list(pipe.iter_results(write=False, sources=pipe.build_sources()))
        free_before = min_free = _free_device_memory()
        sources = pipe.build_sources()
        assert all(type(s).__name__ == "NvdecSource" for s in sources), "NVDEC was not used"
        assert all(s.wait_ready() for s in sources), "a decoding worker did not start"  # all start together
        count, first_t, first_cpu, first_n = 0, 0.0, 0.0, 0
        last_t = last_cpu = 0.0
        failed = 0
        sampler: list[subprocess.Popen[bytes]] = []
        for result in pipe.iter_results(write=False, sources=sources):
            count += 1
            failed += result.error is not None
            if count == batch:  # the first batch is out: the steady window starts
                sampler = _start_spy(spy, spy_bin, f"pipeline_{streams}_{worker}.txt")
                by_thread, by_worker = ThreadCpu(), WorkerCpu()
                first_t, first_cpu, first_n = time.perf_counter(), time.process_time(), count
            if count % 256 == 0:
                min_free = min(min_free, _free_device_memory())
            last_t, last_cpu = time.perf_counter(), time.process_time()
        worker_cpu, worker_processes = by_worker.stop()
        thread_cpu = by_thread.stop()
        monitor_cpu = thread_cpu.pop("monitor", 0.0)
        _stop_spy(sampler)
        # the window ends with the last result: the generator's teardown after it (threads joined, sources
        # closed, memory freed) is not throughput, and reported apart
        teardown = time.perf_counter() - last_t
        elapsed = last_t - first_t
        cpu = last_cpu - first_cpu - monitor_cpu
        map_seconds = sum(s.worker_map_seconds for s in sources)
        used = sorted({s.worker for s in sources})  # what decode_worker auto resolved to
        for s in sources:
            s.close()
    n = count - first_n
    return {"streams": streams, "decode_worker": worker, "decode_worker_used": ",".join(used), "frames": count, "failed": failed,
            "fps": round(n / elapsed, 1), "cpu_ms_per_frame": round(1000 * cpu / n, 4),
            "cpu_ms_per_frame_by_thread": {k: round(1000 * v / n, 4) for k, v in sorted(thread_cpu.items())},
            "cpu_ms_per_frame_other_threads": {k: round(1000 * v / n, 4)
                                               for k, v in sorted(by_thread.other_by_name.items()) if v > 0},
            "worker_cpu_ms_per_frame": round(1000 * worker_cpu / n, 4), "worker_processes": worker_processes,
            "slab_mapping_ms": round(1000 * map_seconds, 1), "teardown_s": round(teardown, 3),
            "device_memory_growth_mib": round((free_before - min_free) / 2**20, 1)}


def decode_only_fps(video: str, streams: int, worker: str, probe_idle: float | None = None,
                    processes: int | None = None) -> dict[str, Any]:
    """N NVDEC sources read to the end on N threads, frames dropped on arrival; timed from the moment every stream
    has delivered its first frame (worker start-up excluded, as the pipeline's window excludes it) to the last
    frame. With *probe_idle*, a GilProbe runs alongside and ``gil_left`` is its rate over the idle rate."""
    import threading

    from trtapps.gpu.nvdec import NvdecSource

    for source in (NvdecSource(video, worker=worker, max_frames=8),):  # warm-up: CUDA, NVDEC, a worker's start
        list(source)
        source.close()
    extra = {} if processes is None else {"processes": processes}
    sources = [NvdecSource(video, worker=worker, **extra) for _ in range(streams)]
    assert all(s.wait_ready() for s in sources), "a decoding worker did not start"  # all start together
    stamps: list[list[float]] = [[] for _ in range(streams)]

    def read(i: int) -> None:
        for frame in sources[i]:
            stamps[i].append(time.perf_counter())
            del frame

    threads = [threading.Thread(target=read, args=(i,)) for i in range(streams)]
    probe = GilProbe() if probe_idle else None
    by_worker = WorkerCpu()
    cpu0 = time.process_time()
    if probe is not None:
        probe.__enter__()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if probe is not None:
        probe.__exit__()
    cpu = time.process_time() - cpu0
    worker_cpu, _ = by_worker.stop()
    start = max(s[0] for s in stamps)
    end = max(s[-1] for s in stamps)
    n = sum(1 for s in stamps for t in s if t > start)
    total = sum(len(s) for s in stamps)
    for source in sources:
        source.close()
    return {"fps": n / (end - start), "frames": total, "cpu_ms_per_frame": 1000 * cpu / total,
            "worker_cpu_ms_per_frame": 1000 * worker_cpu / total,
            "gil_left": probe.rate / probe_idle if probe is not None and probe_idle else None}


class GilProbe:
    """A pure-Python loop on its own thread: how many iterations per second it gets while something else runs.

    Compared with the same loop's rate on an idle interpreter, it tells how much of the GIL the other work
    leaves to Python threads (decoders that hold the GIL while they wait for the hardware starve the pipeline's
    Python threads; ones that release it leave the probe near its idle rate).
    """

    def __init__(self) -> None:
        import threading

        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        while not self._stop.is_set():
            for _ in range(1000):
                self.count += 1
            time.sleep(0)

    def __enter__(self) -> GilProbe:
        self.start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.rate = self.count / (time.perf_counter() - self.start)


def idle_probe_rate(seconds: float = 1.0) -> float:
    with GilProbe() as probe:
        time.sleep(seconds)
    return probe.rate


def engine_fps(model: str, video: str, batch: int) -> float:
    from trtapps.bench.levels import runner_only
    from trtapps.pipeline import Pipeline

    cap = cv2.VideoCapture(video)
    frames = [cap.read()[1] for _ in range(batch)]
    cap.release()
    with Pipeline.from_objects(app={"type": "yolo", "model": model, "batch_size": batch},
                               backend="onnxruntime_cuda") as pipe:
        return float(runner_only(pipe, frames, batch, iters=50, budget_s=20.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", required=True, help="an H.264 file; every stream reads it")
    parser.add_argument("--streams", default="8,16")
    parser.add_argument("--workers", default="process,thread",
                        help="source.decode_worker values to measure (process: a decoding process per stream; "
                        "auto: process while the CUDA MPS daemon runs, else thread)")
    parser.add_argument("--decode-processes", type=int, default=None,
                        help="source.decode_processes (default: the source's own default)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=0, help="frames per stream (0: the whole file)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cuda-graph", action="store_true", help="the pipeline's runner replays CUDA graphs")
    parser.add_argument("--cuda-mps", choices=("off", "start"), default="off",
                        help="start: what a pipeline file's cuda_mps: start does, before anything touches CUDA")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for the run, in seconds (Python's default: 0.005)")
    parser.add_argument("--spy", type=Path, default=None,
                        help="a folder: py-spy samples the pipeline's process over each timed pipeline window "
                        "(on-CPU threads; its start-up takes a little of the window's CPU time)")
    parser.add_argument("--spy-bin", default="py-spy", help="the py-spy program")
    args = parser.parse_args()
    if args.cuda_mps == "start":
        from trtapps.gpu.mps import start_for_run

        start_for_run()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)

    from trtapps.bench.core import versions
    from trtapps.gpu.device import gpu_info
    from trtapps.gpu.mps import control_pipe

    total = int(cv2.VideoCapture(args.video).get(cv2.CAP_PROP_FRAME_COUNT))
    per_stream = args.frames or total
    engine = engine_fps(args.model, args.video, args.batch)
    rows = []
    idle = idle_probe_rate()
    for n in (int(s) for s in args.streams.split(",")):
        for worker in args.workers.split(","):
            decode = decode_only_fps(args.video, n, worker, probe_idle=idle, processes=args.decode_processes)
            backend = {"type": "onnxruntime_cuda", "cuda_graph": True} if args.cuda_graph else "onnxruntime_cuda"
            pipe = pipeline_fps(args.model, args.video, n, args.batch, per_stream, worker, backend,
                                spy=args.spy, spy_bin=args.spy_bin, processes=args.decode_processes)
            bound = min(decode["fps"], engine)
            rows.append({**pipe, "decode_only_fps": round(decode["fps"], 1), "engine_only_fps": round(engine, 1),
                         "decode_only_cpu_ms_per_frame": round(decode["cpu_ms_per_frame"], 4),
                         "decode_only_worker_cpu_ms_per_frame": round(decode["worker_cpu_ms_per_frame"], 4),
                         "gil_left_while_decoding": round(decode["gil_left"], 3),
                         "ratio": round(pipe["fps"] / bound, 3),
                         "limited_by": "decode" if decode["fps"] < engine else "engine"})
            print(rows[-1], flush=True)
    info = gpu_info(0)
    doc = {"benchmark": "nvdec_pipeline", "model": Path(args.model).name, "video": Path(args.video).name,
           "batch": args.batch, "frames_per_stream": per_stream, "device": info, "versions": versions(),
           "switch_interval_s": sys.getswitchinterval(), "cuda_graph": args.cuda_graph,
           "cuda_mps_control_pipe": control_pipe(), "rows": rows,
           "targets": {"ratio": 0.90, "cpu_ms_per_frame": 0.2},
           "notes": "cpu_ms_per_frame: the pipeline's process over the timed window, the benchmark's sampling threads "
                    "left out; worker_cpu_ms_per_frame: the decoding processes running at the window's start, "
                    "over the same window (per-thread schedstat, sampled every 0.1 s)"}
    mps = f"CUDA MPS daemon at {doc['cuda_mps_control_pipe']}" if doc["cuda_mps_control_pipe"] else "no CUDA MPS"
    print(f"device: {info.get('name')} · {doc['model']} batch {args.batch} · {doc['video']} × N (NVDEC) · {mps}")
    print(f"{'N':>3} {'worker':>14} {'pipeline fps':>13} {'decode-only':>12} {'engine-only':>12} {'ratio':>6} "
          f"{'CPU ms/frame':>13} {'+ workers':>10} {'GPU MiB':>8}")
    for r in rows:
        worker = r["decode_worker"] if r["decode_worker"] != "auto" else f"auto→{r['decode_worker_used']}"
        print(f"{r['streams']:>3} {worker:>14} {r['fps']:>13.1f} {r['decode_only_fps']:>12.1f} "
              f"{r['engine_only_fps']:>12.1f} {r['ratio']:>6.3f} {r['cpu_ms_per_frame']:>13.4f} "
              f"{r['worker_cpu_ms_per_frame']:>10.4f} {r['device_memory_growth_mib']:>8.1f}")
    for r in rows:
        split = ", ".join(f"{k} {v:.4f}" for k, v in r["cpu_ms_per_frame_by_thread"].items())
        print(f"{r['streams']:>3} streams ({r['decode_worker']}): the pipeline's CPU ms/frame by thread: {split}")
    for r in rows:
        print(f"{r['streams']:>3} streams ({r['decode_worker']}): a pure-Python thread kept "
              f"{r['gil_left_while_decoding']:.0%} of its idle loop rate while NVDEC decoded")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
