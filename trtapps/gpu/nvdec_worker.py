"""NVDEC decoding in worker processes: decoders run under GILs of their own, several videos to a process.

Why processes. PyNvVideoCodec's ``Decode`` holds the GIL while it decodes a packet (session 7's GIL profile: 83 %
of the GIL samples of a bare decoding loop were inside ``Decode``). Eight decoding threads in the pipeline's process
therefore take turns with each other and with the pipeline's own threads: on the H100, 8 NVDEC streams through a
YOLO pipeline ran at 0.52–0.64 of the decode-only rate, and the same decoders spread over processes decoded 25–50 %
faster than in threads of one (``benchmarks/device/nvdec_processes.py``). With ``source.decode_worker: process``
the videos' demuxers and decoders run in child processes and the pipeline's process only receives finished
frames. Under CUDA MPS that runs at the engine's rate (0.93-0.98 of min(decode only, engine) against 0.56-0.87 with
threads, session 9); without MPS the GPU time-slices the processes' contexts. So ``decode_worker: auto``, the
default, takes worker processes exactly when the MPS control daemon is running
(:func:`trtapps.gpu.nvdec.resolve_worker`).

Why several videos to a process. Each decoding process costs CPU per frame in the driver that grows with the
number of processes (system time in ioctls: 0.22 ms per frame in one process, 0.71 in each of 16, session 12), a
CUDA context (~0.6 GB of GPU memory) and a second to start. So the videos of a run share at most
``source.decode_processes`` processes per GPU (default :data:`DECODE_PROCESSES`, 2; :class:`WorkerPool`), and a
process decodes its videos in turn, one picture each (:func:`serve`, :class:`VideoTask`). Measured on the H100
(YOLOv8n, 16 × 720p H.264, MPS, CUDA graphs; each comparison on one machine): 4 processes spent 0.35-0.37 ms of
CPU per frame where 16 spent 0.68-0.77 (0.71 with the session 11 code), and 2 spent 0.24, while the pipeline ran
at the engine's rate with each (decode only 9,621, 6,687 and 9,978 frames/s with 4, 2 and 16).

Processes and videos. :class:`WorkerProcess` starts ``python -c`` running :func:`main` of this very ``trtapps``
with a control socket. Each video gets a socket pair of its own; its worker end travels over the control socket
(``SCM_RIGHTS``), and from then on the video talks to its process over its own socket exactly as if the process
were its alone. A process left without videos is retired: its control socket is closed and it exits once its last
video is done; the next video starts a new one.

How frames cross. The worker runs the same :class:`~trtapps.gpu.nvdec._DecodeSession` as the in-process source,
with a ring (:class:`SlabRing`) whose device buffers come in slabs the worker allocates with ``cudaMalloc`` and
exports once with ``cudaIpcGetMemHandle``; the pipeline's process maps each slab once (``cudaIpcOpenMemHandle``).
For each decoded picture the worker copies NVDEC's surface into a free slot and waits for the copy; it sends the
pictures over the video's socket in groups of up to :data:`FRAME_GROUP`, ``("frames", ((index, slab, slot, error),
...))`` (pickled tuples of a few dozen bytes each), and always before it waits for credit. The pipeline's
process wraps the slot in a CuPy array whose owner is a lease; when the last view of the frame is gone the lease
gives the slot back, and every :data:`RELEASE_STEP` slots go back to the worker in one ``("release", ((slab, slot),
...))`` for reuse. A decoded frame never visits host memory, and nothing is copied twice. With grouping both ways
the 16-stream pipeline's process used 0.17 and 0.27 ms of CPU per frame on two H100 machines, against 0.28 on the
two that ran without it (session 10; different machines, so not a like-for-like comparison).

Flow control. The worker may be at most ``ahead`` frames ahead of what the pipeline's process has received:
the receiver grants credit as it takes frames (``("credit", n)``), so a worker never decodes far past a pipeline
that is busy. The worker reads what the pipeline sent only when its credit runs out or its ring has no free slot
(:attr:`SlabRing.refill`). Slots are allocated when none is free: their number follows the frames alive in the
pipeline (which the pipeline bounds) plus ``ahead`` plus the releases not yet sent.

End and failures. At the end of the file the worker sends ``("end", skipped)``, retires the decoder, and keeps
the video's slabs until the pipeline's process says ``("bye",)`` (sent once the source is closed and every frame
of the video is gone, after the slabs were unmapped); then it frees them and forgets the video. A closed socket
(the pipeline's process ended) counts as ``bye``. Warnings of the decoding loop travel as ``("log", level,
text)`` and are logged by the source. A video that fails (its file, its decoder, a copy) is reported in one line
and ends alone; the process goes on with its other videos. A process that dies ends each of its videos with one
line; the frames it did not deliver are counted as undelivered, as for a truncated file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing import connection
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from trtapps.gpu import nvdec
from trtapps.gpu.device import HOST_WAIT_ENV
from trtapps.sources import frame_wanted

logger = logging.getLogger("trtapps.gpu.nvdec")

#: frames a worker may decode past what the pipeline's process has received
AHEAD = 16
#: credit is granted in steps of this many received frames
CREDIT_STEP = 8
#: decoded pictures sent per message at most: the pipeline's reader thread then wakes, reads and takes the GIL once
#: per group instead of once per picture (a group is sent early whenever the worker is about to wait for credit, so
#: it never holds back what the pipeline is waiting for; NVDEC sources are files, for which a few frames' delay
#: does not matter)
FRAME_GROUP = 4
#: freed slots go back to the worker in messages of this many: one message per frame cost the pipeline's process a
#: send and the worker a receive per frame; holding back up to this many - 1 slots only makes the worker's ring
#: that much larger (it allocates a slot when none is free, it never waits for one)
RELEASE_STEP = 4
#: slots of a size's first slab (one ``cudaMalloc`` and one IPC mapping each); each further slab of that size has
#: twice as many as the one before, up to :data:`MAX_SLOTS_PER_SLAB`, so a stream needs few mappings (mapping a
#: slab, ``cudaIpcOpenMemHandle``, takes milliseconds and holds the GIL: with a new slab every 8 frames, the
#: 8-stream pipeline's readers spent 28 % of their GIL time there)
SLOTS_PER_SLAB = 8
MAX_SLOTS_PER_SLAB = 64
#: slot sizes are rounded up to this many bytes (so every slot starts aligned for the kernels)
SLOT_ALIGN = 512
#: seconds a worker is given to exit after ``bye`` before it is killed at close
EXIT_TIMEOUT = 10.0
#: environment variable: how the decoding processes wait for the GPU (a ``TRTAPPS_CUDA_WAIT`` value), when it
#: should differ from the pipeline's process
WORKER_WAIT_ENV = "TRTAPPS_NVDEC_WAIT"


def nv12_bytes(height: int, width: int) -> int:
    """Bytes of one NV12 frame slot, aligned."""
    raw = height * 3 // 2 * width
    return -(-raw // SLOT_ALIGN) * SLOT_ALIGN


# ==============================================================================================================
# worker side
# ==============================================================================================================


class SlabRing:
    """The worker's frame buffers: slabs of NV12 slots (:data:`SLOTS_PER_SLAB`, then twice as many each time),
    each slab exported through CUDA IPC.

    The decoding loop's :class:`~trtapps.gpu.nvdec.FrameRing` (:meth:`target`): a picture is a ``(slab, slot)``
    pair, which is all the pipeline's process needs to find it. A slot is free again only when the pipeline's
    process says so (:meth:`release`).

    Args:
        device: CUDA device ordinal.
        announce: called with ``("slab", slab_id, ipc_handle, height, width, slots, slot_bytes)`` before a new
            slab's first slot is handed out.
        refill: called when no slot of a size is free, before a new slab is allocated (the worker reads the
            releases the pipeline's process sent meanwhile: they are read when needed, not after every frame).
    """

    def __init__(self, device: int, announce: Callable[[tuple[Any, ...]], None],
                 refill: Callable[[], None] | None = None) -> None:
        self.device = device
        self.announce = announce
        self.refill = refill
        self._free: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._slabs: list[tuple[int, int, tuple[int, int]]] = []  # (pointer, slot bytes, (height, width))
        #: slots handed out and not yet released
        self.in_use = 0

    # -- CUDA calls (separate, so the bookkeeping can be exercised without a GPU) -----------------------------------
    def _allocate(self, nbytes: int) -> tuple[int, bytes]:
        from cupy.cuda import runtime

        with self._on_device():
            pointer = int(runtime.malloc(nbytes))
            return pointer, bytes(runtime.ipcGetMemHandle(pointer))

    def _free_memory(self, pointer: int) -> None:
        from cupy.cuda import runtime

        with self._on_device():
            runtime.free(pointer)

    def _on_device(self) -> Any:
        import cupy

        return cupy.cuda.Device(self.device)

    # -- bookkeeping ------------------------------------------------------------------------------------------------
    def target(self, height: int, width: int) -> tuple[int, tuple[int, int]]:
        """``(device address, (slab, slot))`` of a free ``(height * 3 / 2, width)`` NV12 slot (a new slab when
        none is free)."""
        key = (int(height), int(width))
        free = self._free.setdefault(key, [])
        if not free and self.refill is not None:
            self.refill()
        if not free:
            slot_bytes = nv12_bytes(*key)
            earlier = sum(1 for _, _, k in self._slabs if k == key)
            slots = min(SLOTS_PER_SLAB << earlier, MAX_SLOTS_PER_SLAB)
            pointer, handle = self._allocate(slot_bytes * slots)
            slab = len(self._slabs)
            self._slabs.append((pointer, slot_bytes, key))
            self.announce(("slab", slab, handle, key[0], key[1], slots, slot_bytes))
            free.extend((slab, slot) for slot in reversed(range(slots)))
        slab, slot = free.pop()
        pointer, slot_bytes, _ = self._slabs[slab]
        self.in_use += 1
        return pointer + slot * slot_bytes, (slab, slot)

    def release(self, slab: int, slot: int) -> None:
        """The pipeline's process is done with this slot."""
        key = self._slabs[slab][2]
        self._free.setdefault(key, []).append((slab, slot))
        self.in_use -= 1

    def close(self) -> None:
        """Free every slab (the pipeline's process has unmapped them)."""
        slabs, self._slabs = self._slabs, []
        self._free.clear()
        for pointer, _, _ in slabs:
            with contextlib.suppress(Exception):  # the driver frees what is left at exit anyway
                self._free_memory(pointer)


class RemoteLog:
    """The decoding loop's logger in a worker: records at INFO and above travel to the pipeline's process as
    ``("log", level, text)``, where the source logs them (debug records stay here: nobody reads them)."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        self._send = send

    def log(self, level: int, msg: str, *args: Any) -> None:
        if level >= logging.INFO:
            with contextlib.suppress(Exception):
                self._send(("log", level, msg % args if args else msg))

    def debug(self, msg: str, *args: Any) -> None:
        self.log(logging.DEBUG, msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        self.log(logging.INFO, msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self.log(logging.WARNING, msg, *args)

    def error(self, msg: str, *args: Any) -> None:
        self.log(logging.ERROR, msg, *args)


class WorkerChannel:
    """The worker's end of one video's socket: credit, releases and the end of the conversation."""

    def __init__(self, conn: Connection, ring: SlabRing | None, credit: int) -> None:
        self.conn = conn
        self.ring = ring
        self.credit = credit
        self.stopped = False  # the pipeline's process wants no more frames
        self.bye = False  # ... and has unmapped the slabs: the worker may free them and forget the video

    def send(self, message: tuple[Any, ...]) -> None:
        self.conn.send(message)

    def pump(self) -> None:
        """Handle what the pipeline's process sent so far (without waiting)."""
        while True:
            try:
                if not self.conn.poll(0.0):
                    return
                message = self.conn.recv()
            except (EOFError, OSError):  # the pipeline's process is gone
                self.stopped = self.bye = True
                return
            kind = message[0]
            if kind == "release" and self.ring is not None:
                for slab, slot in message[1]:
                    self.ring.release(slab, slot)
            elif kind == "credit":
                self.credit += message[1]
            elif kind == "stop":
                self.stopped = True
            elif kind == "bye":
                self.stopped = self.bye = True
                return


class VideoTask:
    """One video a worker process decodes: its socket, credit, ring and decoding loop, advanced one picture per
    :meth:`step` so that one thread can serve several videos in turn.

    States: decoding (pictures go out while the pipeline grants credit), draining (the end, a stop or a failure
    was sent; the slabs stay until the pipeline's process says ``bye``), done (slabs freed, socket closed).

    *nvc* (the PyNvVideoCodec module), *session_type* and *ring_type* are for tests (stand-ins without a GPU).
    """

    def __init__(self, conn: Connection, nvc: Any | None = None, session_type: Any = None,
                 ring_type: Callable[..., SlabRing] = SlabRing) -> None:
        self.channel = WorkerChannel(conn, None, 0)
        self.done = False
        self.draining = False
        self.group: list[tuple[int, int, int, str | None]] = []
        self.session: Any = None
        self.ring: SlabRing | None = None
        self._events: Iterator[Any] | None = None
        try:
            job = conn.recv()
            self.channel.credit = int(job["ahead"])
            self.ring = ring_type(int(job["device"]), self.channel.send, self.channel.pump)
            self.channel.ring = self.ring
            start, stride = int(job["start_frame"]), int(job["stride"])
            self.last = job["last_index"]  # the last index the pipeline can want (max_frames), or None

            def wanted(index: int) -> bool:
                return frame_wanted(index, start, stride) and (self.last is None or index <= self.last)

            self.session = (session_type or nvdec._DecodeSession)(
                nvc if nvc is not None else nvdec.import_pynvvideocodec(), Path(job["path"]), int(job["device"]),
                self.ring, wanted, int(job["max_bad_frames"]), RemoteLog(self.channel.send), job["presentation_end"])
            self._events = self.session.events()
        except BaseException as exc:  # reported in one line by the pipeline's process, which ends the video
            self._fail(exc)

    @property
    def conn(self) -> Connection:
        return self.channel.conn

    def flush(self) -> None:
        """Send the pictures held back for a full group."""
        if self.group and not self.draining:
            self.channel.send(("frames", tuple(self.group)))
            self.group.clear()

    def step(self) -> bool:
        """Deliver the next picture, or move on at the end; ``False`` when the video waits for the pipeline's
        process (credit, or ``bye``) and has nothing to do until its socket says something."""
        if self.done:
            return False
        if self.draining:
            self.channel.pump()
            if self.channel.bye:
                self._finish()
                return True
            return False
        if self.channel.credit <= 0 and not self.channel.stopped:
            # messages are read when credit runs out or the ring has no free slot (SlabRing.refill), not after
            # every frame: a stop is noticed within AHEAD frames
            self.flush()  # what the pipeline waits for goes out before the worker waits for it
            self.channel.pump()
            if self.channel.credit <= 0 and not self.channel.stopped:
                return False
        if self.channel.stopped:
            self._drain()
            return True
        assert self._events is not None
        try:
            index, image, error = next(self._events)
            slab, slot = (-1, -1) if image is None else image
            self.group.append((index, slab, slot, error))
            self.channel.credit -= 1
            if len(self.group) >= FRAME_GROUP:
                self.flush()
            if self.last is not None and index >= self.last:
                raise StopIteration
        except StopIteration:
            self.flush()
            self.channel.send(("end", self.session.skipped))
            self._drain()
        except BaseException as exc:
            self._fail(exc)
        return True

    def _fail(self, exc: BaseException) -> None:
        with contextlib.suppress(Exception):
            self.flush()  # the pictures decoded before the failure are delivered
            self.channel.send(("error", f"{type(exc).__name__}: {exc}".splitlines()[0]))
        self._drain()

    def _drain(self) -> None:
        """No more pictures: retire the decoder now, free the slabs once the pipeline's process says ``bye``."""
        self.draining = True
        self._events = None
        if self.session is not None:
            self.session.close()
            self.session = None

    def _finish(self) -> None:
        self.done = True
        if self.ring is not None:
            self.ring.close()
        with contextlib.suppress(Exception):
            self.channel.conn.close()


def serve(tasks: list[VideoTask], control: socket.socket | None = None,
          task: Callable[[Connection], VideoTask] = VideoTask) -> None:
    """A worker process's loop: one picture of each video in turn, until every video is done and (with
    *control*) the pipeline's process has closed the control socket. Videos arrive on *control* as socket file
    descriptors (one byte each, with the descriptor attached); *task* makes a :class:`VideoTask` of each."""
    accepting = control is not None
    try:
        while tasks or accepting:
            if accepting and control is not None and connection.wait([control], 0):
                accepting = _accept(control, tasks, task)
            progressed = False
            for video in tasks:
                progressed = video.step() or progressed
            if any(video.done for video in tasks):
                tasks = [video for video in tasks if not video.done]
            if not progressed:
                for video in tasks:
                    video.flush()
                waiting: list[Any] = [video.conn for video in tasks]
                if accepting:
                    waiting.append(control)
                if waiting:
                    connection.wait(waiting)
    finally:
        if control is not None:
            control.close()


def _accept(control: socket.socket, tasks: list[VideoTask], task: Callable[[Connection], VideoTask]) -> bool:
    """Take the videos the pipeline's process sent; ``False`` once it has closed the control socket."""
    try:
        data, fds, _, _ = socket.recv_fds(control, 64, 64)
    except OSError:
        return False
    tasks.extend(task(Connection(fd)) for fd in fds)
    return bool(data)


def run_worker(conn: Connection, nvc: Any | None = None, session_type: Any = None,
               ring_type: Callable[..., SlabRing] = SlabRing) -> None:
    """Serve the one video on *conn* to its end (:class:`VideoTask`; tests run this on a thread)."""
    serve([VideoTask(conn, nvc, session_type, ring_type)])


# ==============================================================================================================
# the pipeline's side
# ==============================================================================================================


class _Slab:
    __slots__ = ("pointer", "shape", "slot_bytes")

    def __init__(self, pointer: int, shape: tuple[int, int], slot_bytes: int) -> None:
        self.pointer, self.shape, self.slot_bytes = pointer, shape, slot_bytes


#: what a decoding process runs: :func:`main` of the very ``trtapps`` this process imported. Not ``python -m``,
#: which puts the working directory first on ``sys.path``: a ``trtapps`` folder there (another checkout, another
#: version) would be imported instead, speak another protocol and hang the video (it did, in A/B runs of old code
#: trees, session 12).
_WORKER_MAIN = ("import sys; sys.path[0] = sys.argv[1]; from trtapps.gpu.nvdec_worker import main; "
                "sys.exit(main(sys.argv[2:]))")


class WorkerProcess:
    """One decoding process (:data:`_WORKER_MAIN`) and the control socket it receives its videos on."""

    def __init__(self, device: int) -> None:
        self.device = device
        #: videos given to this process and not yet finished (see :class:`WorkerPool`)
        self.videos = 0
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[2])
        try:
            self.proc: Any = subprocess.Popen(
                [sys.executable, "-c", _WORKER_MAIN, package_root, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.control = ours

    def add_video(self) -> Connection:
        """A new socket to this process for one video (its other end travels over the control socket)."""
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self.control, [b"v"], [theirs.fileno()])
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return Connection(ours.detach())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def retire(self) -> None:
        """No video left: closing the control socket lets the process exit; its exit status is collected."""
        with contextlib.suppress(OSError):
            self.control.close()
        if self.alive():
            threading.Thread(target=self.proc.wait, name="trtapps-nvdec-reaper", daemon=True).start()


class WorkerPool:
    """The decoding processes of this process, shared by its NVDEC videos.

    A video asking for a worker with a limit of *processes* gets a new process while fewer than that many are
    running on its device, and otherwise shares the one serving the fewest videos. A process that has no video
    left is retired (it exits), so a pipeline whose videos all ended leaves no process behind, and the next videos
    start fresh ones. Fewer processes cost less CPU per frame: on the H100, 16 videos decoded at 1.20 ms of CPU per
    frame in 16 processes and 0.71 in 4, at 3,770 and 3,314 frames/s (``benchmarks/device/decode_cpu.py``,
    session 12).

    Args:
        spawn: starts a process for a device (tests serve the videos on threads instead).
    """

    def __init__(self, spawn: Callable[[int], WorkerProcess] = WorkerProcess) -> None:
        self._spawn = spawn
        self._lock = threading.Lock()
        self._processes: list[WorkerProcess] = []

    def attach(self, device: int, processes: int) -> tuple[Connection, WorkerLease]:
        """A socket to a decoding process for one video on *device*, and the lease that gives it back."""
        with self._lock:
            self._processes = [p for p in self._processes if p.alive()]
            mine = [p for p in self._processes if p.device == device]
            if len(mine) < max(1, processes):
                process = self._spawn(device)
                self._processes.append(process)
            else:
                process = min(mine, key=lambda p: p.videos)
            try:
                conn = process.add_video()
            except OSError:  # it died after alive() said otherwise: a new process takes the video
                self._processes.remove(process)
                process = self._spawn(device)
                self._processes.append(process)
                conn = process.add_video()
            process.videos += 1
        return conn, WorkerLease(self, process)

    def _detach(self, process: WorkerProcess) -> bool:
        """One video of *process* is finished; ``True`` when that was its last (it is retired)."""
        with self._lock:
            process.videos -= 1
            if process.videos > 0:
                return False
            if process in self._processes:
                self._processes.remove(process)
        process.retire()
        return True

    def pids(self) -> list[int]:
        """The process ids of the decoding processes running now (benchmarks read their CPU time)."""
        with self._lock:
            return [int(p.proc.pid) for p in self._processes if p.alive()]


class WorkerLease:
    """One video's share of a :class:`WorkerProcess`: its exit status, and the hand-back when the video is done."""

    def __init__(self, pool: WorkerPool, process: WorkerProcess) -> None:
        self.pool, self.process = pool, process
        self.released = False
        self.retired = False  # this video was the process's last: the process exits

    def poll(self) -> int | None:
        """The process's exit status, or ``None`` while it runs."""
        code = self.process.proc.poll()
        return None if code is None else int(code)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.retired = self.pool._detach(self.process)

    def running(self) -> bool:
        """Whether this video still holds the process: not released, or released last and the process has not
        exited yet."""
        return (not self.released or self.retired) and self.poll() is None

    def wait(self, timeout: float) -> int | None:
        """After the release: wait for the process to exit when this video was its last (kill it after
        *timeout*); ``None`` when the process goes on serving other videos."""
        if self.released and not self.retired:
            return None
        proc = self.process.proc
        try:
            return int(proc.wait(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            return int(proc.wait(5))


#: the decoding processes of this process (all pipelines and devices)
POOL = WorkerPool()
#: decoding processes per device at most, unless a source says otherwise (``source.decode_processes``). Two, from
#: session 13's sweep on the H100 (16 streams, YOLOv8n, MPS, each comparison on one machine): at 1080p two processes
#: decoded 4,486 frames/s where four decoded 4,584, for 0.31 ms of decoding CPU per frame against 0.41; at 720p
#: 6,687 against 9,621 frames/s, for 0.24 ms against 0.36 (session 12). Either is above the ONNX Runtime engine's
#: ~3,000 frames/s; one process falls below it at 1080p (3,217 decode only). Faster engines may want more.
DECODE_PROCESSES = 2


def launch_worker(device: int, processes: int = DECODE_PROCESSES) -> tuple[Connection, WorkerLease]:
    """A socket to one of :data:`POOL`'s decoding processes for a new video, and its lease."""
    return POOL.attach(device, processes)


class WorkerSession:
    """The pipeline's end of one worker: the same interface as :class:`~trtapps.gpu.nvdec._DecodeSession` for
    :class:`~trtapps.gpu.nvdec.NvdecSource` (:meth:`events`, ``skipped``, :meth:`close`).

    Args:
        job: what the worker decodes (``path``, ``device``, ``start_frame``, ``stride``, ``last_index``,
            ``max_bad_frames``, ``presentation_end``); ``ahead`` is added.
        log: where the worker's warnings and failures are logged.
        name: the source's name, for messages.
        processes: decoding processes on this device at most (:class:`WorkerPool`).
        launch: ``launch(device, processes) -> (socket, lease)`` (:func:`launch_worker`; tests serve the video on
            a thread instead).
    """

    def __init__(self, job: dict[str, Any], log: logging.Logger, name: str, processes: int = DECODE_PROCESSES,
                 launch: Callable[[int, int], tuple[Connection, Any]] = launch_worker) -> None:
        self.device = int(job["device"])
        self.log, self.name = log, name
        #: pictures outside the presentation the worker skipped (known at the end)
        self.skipped = 0
        #: seconds spent mapping the worker's slabs (``cudaIpcOpenMemHandle``)
        self.map_seconds = 0.0
        self._slabs: dict[int, _Slab] = {}
        self._lock = threading.RLock()
        self._outstanding = 0  # frames handed out whose slots are not released yet
        self._released: list[tuple[int, int]] = []  # freed slots not yet sent back (RELEASE_STEP)
        self._closed = False
        self._gone = False  # bye sent (or the worker is dead): nothing more is sent
        self._received = 0
        self.conn, self.lease = launch(self.device, processes)
        self._send({**job, "ahead": AHEAD})

    # -- CUDA calls --------------------------------------------------------------------------------------------------
    def _open(self, handle: bytes) -> int:
        import cupy
        from cupy.cuda import runtime

        with cupy.cuda.Device(self.device):
            return int(runtime.ipcOpenMemHandle(handle, runtime.cudaIpcMemLazyEnablePeerAccess))

    def _unmap(self, pointer: int) -> None:
        import cupy
        from cupy.cuda import runtime

        with cupy.cuda.Device(self.device):
            runtime.ipcCloseMemHandle(pointer)

    def _array(self, pointer: int, shape: tuple[int, int], owner: Any) -> Any:
        return nvdec.nv12_view(pointer, shape[0], shape[1], owner, self.device)

    # -- messages ---------------------------------------------------------------------------------------------------
    def _send(self, message: Any) -> None:
        with self._lock:
            if self._gone:
                return
            try:
                self.conn.send(message)
            except OSError:  # the worker is gone; what it held is freed with it
                self._gone = True

    def events(self) -> Iterator[tuple[int, Any, str | None]]:
        """Every picture the worker decodes, in display order: ``(index, NV12 device array or None, error)``."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                code = self.lease.poll()
                self.log.error("%s: the NVDEC worker process ended unexpectedly (exit code %s); ending the video "
                               "here (set source.decode_worker: thread to decode in this process)", self.name, code)
                self._gone = True
                return
            kind = message[0]
            if kind == "frames":
                for index, slab, slot, error in message[1]:
                    self._received += 1
                    if self._received % CREDIT_STEP == 0:
                        self._send(("credit", CREDIT_STEP))
                    yield index, (None if slab < 0 else self._frame(slab, slot)), error
            elif kind == "slab":
                _, slab, handle, height, width, _slots, slot_bytes = message
                start = time.perf_counter()
                self._slabs[slab] = _Slab(self._open(handle), (height, width), slot_bytes)
                self.map_seconds += time.perf_counter() - start
            elif kind == "log":
                self.log.log(message[1], "%s", message[2])
            elif kind == "end":
                self.skipped = int(message[1])
                return
            elif kind == "error":
                self.log.error("%s: the NVDEC worker process failed (%s); ending the video here", self.name,
                               message[1])
                return

    def _frame(self, slab: int, slot: int) -> Any:
        entry = self._slabs[slab]
        with self._lock:
            self._outstanding += 1
        return self._array(entry.pointer + slot * entry.slot_bytes, entry.shape, nvdec.Lease(self, slab, slot))

    def _release(self, slab: int, slot: int) -> None:
        with self._lock:
            self._outstanding -= 1
            self._released.append((slab, slot))
            if len(self._released) >= RELEASE_STEP:
                self._send(("release", tuple(self._released)))
                self._released.clear()
            if self._closed and self._outstanding == 0:
                self._finish()

    def _finish(self) -> None:
        """Unmap the slabs and tell the worker it may free them (no frame of it is alive); the video's share of
        the process goes back to the pool (a process left without videos exits)."""
        slabs, self._slabs = self._slabs, {}
        for entry in slabs.values():
            with contextlib.suppress(Exception):
                self._unmap(entry.pointer)
        self._send(("bye",))
        self._gone = True
        with contextlib.suppress(Exception):
            self.conn.close()
        self.lease.release()

    def __del__(self) -> None:
        # never iterated or never closed: let the worker go (no frame of it can be alive: frames reference us)
        with contextlib.suppress(Exception):
            self.close()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Whether the worker has something to say (its first frame, usually) within *timeout* seconds: it is up
        and decoding. Benchmarks use this to start timing when every worker runs."""
        try:
            return bool(self.conn.poll(timeout))
        except OSError:
            return True  # closed: nothing to wait for

    def close(self) -> None:
        """No more frames are wanted: the worker stops; it exits once every frame it delivered is gone."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._send(("stop",))
            if self._outstanding == 0:
                self._finish()

    def running(self) -> bool:
        """Whether this video still holds its decoding process (:meth:`WorkerLease.running`)."""
        return bool(self.lease.running())

    def reap(self) -> None:
        """After :meth:`close`: wait for the process of a video that was told ``bye``, when this video was the
        process's last; a video whose frames are still alive somewhere keeps its process (it is let go when they
        are gone, or the process ends with this one)."""
        with self._lock:
            done = self._gone
        if done and self.running():
            self.wait()

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int | None:
        """After the last frame: wait for the process to exit when this video was its last (kill it after
        *timeout*); ``None`` when it goes on serving other videos."""
        return self.lease.wait(timeout)


def main(argv: list[str] | None = None) -> int:
    """``main([FD])`` (:data:`_WORKER_MAIN`): decode the videos sent over the control socket inherited as *FD*
    until it is closed and they are done."""
    args = sys.argv[1:] if argv is None else argv
    wait = os.environ.get(WORKER_WAIT_ENV, "").strip()
    if wait:  # before this process's first CUDA call: the decoding processes' own way of waiting
        os.environ[HOST_WAIT_ENV] = wait
    serve([], socket.socket(fileno=int(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
