"""NVDEC decoding in a worker process: each video's decoder runs under its own GIL.

Why. PyNvVideoCodec's ``Decode`` holds the GIL while it decodes a packet (session 7's GIL profile: 83 % of the GIL
samples of a bare decoding loop were inside ``Decode``). Eight decoding threads in the pipeline's process therefore
take turns with each other and with the pipeline's own threads: on the H100, 8 NVDEC streams through a YOLO pipeline
ran at 0.52–0.64 of the decode-only rate, and the same decoders spread over processes decoded 25–50 % faster than in
threads of one (``benchmarks/device/nvdec_processes.py``). With ``source.decode_worker: process`` a video's demuxer
and decoder run in a child process, ``python -m trtapps.gpu.nvdec_worker``, and the pipeline's process only receives
finished frames. Measured on the H100: decode-only about twice the in-process rate; in the YOLO pipeline 3-11 %
more without CUDA MPS (the GPU time-slices the processes' contexts), and under MPS 0.93-0.98 of min(decode only,
engine) against 0.56-0.87 with threads at 1, 8 and 16 streams (session 9). So ``decode_worker: auto``, the default,
takes worker processes exactly when the MPS control daemon is running (:func:`trtapps.gpu.nvdec.resolve_worker`).

How frames cross. The worker runs the same :class:`~trtapps.gpu.nvdec._DecodeSession` as the in-process source,
with a ring (:class:`SlabRing`) whose device buffers come in slabs the worker allocates with ``cudaMalloc`` and
exports once with ``cudaIpcGetMemHandle``; the pipeline's process maps each slab once (``cudaIpcOpenMemHandle``).
For each decoded picture the worker copies NVDEC's surface into a free slot and waits for the copy; it sends the
pictures over a socket pair in groups of up to :data:`FRAME_GROUP`, ``("frames", ((index, slab, slot, error),
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

End and failures. At the end of the file the worker sends ``("end", skipped, cpu_seconds)``, then waits until
the pipeline's process says ``("bye",)`` (sent once the source is closed and every frame from this worker is
gone, after the slabs were unmapped), frees its slabs and exits; it also exits when the socket closes (the
pipeline's process ended). Warnings of the decoding loop travel as ``("log", level, text)`` and are logged by the
source. A worker that dies or fails is reported in one line and ends the video; the frames it did not deliver are
counted as undelivered, as for a truncated file.
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
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from trtapps.gpu import nvdec
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


class _ForwardLog(logging.Handler):
    """Sends the decoding loop's log records to the pipeline's process."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__(logging.INFO)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self._send(("log", record.levelno, record.getMessage()))


class WorkerChannel:
    """The worker's end of the socket: credit, releases and the end of the conversation."""

    def __init__(self, conn: Connection, ring: SlabRing | None, credit: int) -> None:
        self.conn = conn
        self.ring = ring
        self.credit = credit
        self.stopped = False  # the pipeline's process wants no more frames
        self.bye = False  # ... and has unmapped the slabs: the worker may free them and exit

    def send(self, message: tuple[Any, ...]) -> None:
        self.conn.send(message)

    def pump(self, *, block: bool) -> None:
        """Handle what the pipeline's process sent; with *block*, wait for at least one message first."""
        wait: float | None = None if block else 0.0
        while True:
            try:
                if not self.conn.poll(wait):
                    return
                message = self.conn.recv()
            except (EOFError, OSError):  # the pipeline's process is gone
                self.stopped = self.bye = True
                return
            wait = 0.0
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


def run_worker(conn: Connection, nvc: Any | None = None, session_type: Any = None,
               ring_type: Callable[..., SlabRing] = SlabRing) -> None:
    """The worker's life: read the job, decode and send every picture, wait for ``bye``, free the slabs.

    *nvc* (the PyNvVideoCodec module), *session_type* and *ring_type* are for tests (stand-ins without a GPU).
    """
    job = conn.recv()
    channel = WorkerChannel(conn, None, int(job["ahead"]))
    ring = ring_type(int(job["device"]), channel.send, lambda: channel.pump(block=False))
    channel.ring = ring
    log = logging.getLogger(f"trtapps.gpu.nvdec_worker.{os.getpid()}")
    log.propagate = False
    log.setLevel(logging.INFO)
    forward = _ForwardLog(channel.send)
    log.addHandler(forward)
    start, stride = int(job["start_frame"]), int(job["stride"])
    last = job["last_index"]  # the last index the pipeline can want (max_frames), or None

    def wanted(index: int) -> bool:
        return frame_wanted(index, start, stride) and (last is None or index <= last)

    session: Any = None
    cpu0: float | None = None
    group: list[tuple[int, int, int, str | None]] = []

    def flush() -> None:
        if group:
            channel.send(("frames", tuple(group)))
            group.clear()

    try:
        session = (session_type or nvdec._DecodeSession)(
            nvc if nvc is not None else nvdec.import_pynvvideocodec(), Path(job["path"]), int(job["device"]), ring,
            wanted, int(job["max_bad_frames"]), log, job["presentation_end"])
        for index, image, error in session.events():
            if cpu0 is None:
                cpu0 = time.process_time()
            # messages are read when credit runs out or the ring has no free slot (SlabRing.refill), not after
            # every frame: a stop is noticed within AHEAD frames
            while channel.credit <= 0 and not channel.stopped:
                flush()  # what the pipeline waits for goes out before the worker waits for it
                channel.pump(block=True)
            if channel.stopped:
                break
            slab, slot = (-1, -1) if image is None else image
            group.append((index, slab, slot, error))
            channel.credit -= 1
            if len(group) >= FRAME_GROUP:
                flush()
            if last is not None and index >= last:
                break
        if not channel.stopped:
            flush()
            cpu = time.process_time() - cpu0 if cpu0 is not None else 0.0
            channel.send(("end", session.skipped, cpu))
    except BaseException as exc:  # reported in one line by the pipeline's process, which ends the video
        with contextlib.suppress(Exception):
            flush()  # the pictures decoded before the failure are delivered
            channel.send(("error", f"{type(exc).__name__}: {exc}".splitlines()[0]))
    finally:
        if session is not None:
            session.close()
        while not channel.bye:
            channel.pump(block=True)
        ring.close()
        log.removeHandler(forward)
        with contextlib.suppress(Exception):
            conn.close()


# ==============================================================================================================
# the pipeline's side
# ==============================================================================================================


class _Slab:
    __slots__ = ("pointer", "shape", "slot_bytes")

    def __init__(self, pointer: int, shape: tuple[int, int], slot_bytes: int) -> None:
        self.pointer, self.shape, self.slot_bytes = pointer, shape, slot_bytes


def launch_worker(device: int) -> tuple[Connection, Any]:
    """Start ``python -m trtapps.gpu.nvdec_worker`` with one end of a socket pair; returns our end and the
    process. The child imports the same ``trtapps`` as this process (its directory leads ``PYTHONPATH``)."""
    ours, theirs = socket.socketpair()
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trtapps.gpu.nvdec_worker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL, close_fds=True,
        )
    finally:
        theirs.close()
    return Connection(ours.detach()), proc


class WorkerSession:
    """The pipeline's end of one worker: the same interface as :class:`~trtapps.gpu.nvdec._DecodeSession` for
    :class:`~trtapps.gpu.nvdec.NvdecSource` (:meth:`events`, ``skipped``, :meth:`close`).

    Args:
        job: what the worker decodes (``path``, ``device``, ``start_frame``, ``stride``, ``last_index``,
            ``max_bad_frames``, ``presentation_end``); ``ahead`` is added.
        log: where the worker's warnings and failures are logged.
        name: the source's name, for messages.
        launch: starts the worker (tests run :func:`run_worker` in a thread instead).
    """

    def __init__(self, job: dict[str, Any], log: logging.Logger, name: str,
                 launch: Callable[[int], tuple[Connection, Any]] = launch_worker) -> None:
        self.device = int(job["device"])
        self.log, self.name = log, name
        #: pictures outside the presentation the worker skipped (known at the end)
        self.skipped = 0
        #: the worker's CPU seconds from its first picture to the end of the file (known at the end)
        self.worker_cpu = 0.0
        #: seconds spent mapping the worker's slabs (``cudaIpcOpenMemHandle``)
        self.map_seconds = 0.0
        self._slabs: dict[int, _Slab] = {}
        self._lock = threading.RLock()
        self._outstanding = 0  # frames handed out whose slots are not released yet
        self._released: list[tuple[int, int]] = []  # freed slots not yet sent back (RELEASE_STEP)
        self._closed = False
        self._gone = False  # bye sent (or the worker is dead): nothing more is sent
        self._received = 0
        self.conn, self.proc = launch(self.device)
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
                code = self.proc.poll() if self.proc is not None else None
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
                self.skipped, self.worker_cpu = int(message[1]), float(message[2])
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
        """Unmap the slabs and tell the worker it may free them and exit (no frame of it is alive)."""
        slabs, self._slabs = self._slabs, {}
        for entry in slabs.values():
            with contextlib.suppress(Exception):
                self._unmap(entry.pointer)
        self._send(("bye",))
        self._gone = True
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.proc is not None and self.proc.poll() is None:  # it exits now: collect its exit status
            threading.Thread(target=self.proc.wait, name="trtapps-nvdec-reaper", daemon=True).start()

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
        """Whether the worker process is still alive."""
        return self.proc is not None and self.proc.poll() is None

    def reap(self) -> None:
        """After :meth:`close`: wait for a worker that was told ``bye`` (it has nothing left to do); a worker whose
        frames are still alive somewhere is left running (it exits when they are gone, or with this process)."""
        with self._lock:
            done = self._gone
        if done and self.running():
            self.wait()

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int | None:
        """Wait for the worker to exit (after :meth:`close` and the last frame); kill it after *timeout*."""
        if self.proc is None:
            return None
        try:
            return int(self.proc.wait(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return int(self.proc.wait(5))


def main(argv: list[str] | None = None) -> int:
    """``python -m trtapps.gpu.nvdec_worker FD``: serve one video over the socket inherited as *FD*."""
    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(args[0]))
    run_worker(Connection(sock.detach()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
