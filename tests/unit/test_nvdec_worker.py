"""NVDEC decoding in a worker process (:mod:`trtapps.gpu.nvdec_worker`), without a GPU.

The worker's loop and the pipeline's end talk over a real socket pair with the real protocol; only the CUDA calls
are replaced: slabs are host arrays registered under a fake IPC handle, and the worker runs in a thread with the
scripted PyNvVideoCodec of ``tests/nvdec_fakes.py``. Checked: every picture arrives in display order with its
pixels, failures in place; a slot is reused only after the pipeline's process released it (frames kept alive keep
their pixels); the worker stays at most ``AHEAD`` frames ahead of a consumer that does not read; an early stop
(``max_frames``), a failing worker and a dead worker end the video with one logged line; after the source is
closed and its last frame dropped, the slabs are unmapped, ``bye`` is sent and the worker frees everything and
exits. Several videos sharing one decoding process (:class:`nw.WorkerPool`, :func:`nw.serve` on a thread with the
real control socket and descriptor passing) each arrive whole, a stalled or failing video does not hold up the
others, and a process left without videos exits. One test starts the real decoding subprocess: without
PyNvVideoCodec it reports that in one line and exits cleanly, also when the working directory holds another
``trtapps``. The GPU test (tests/gpu/test_nvdec.py) runs real NVDEC workers.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import trtapps.gpu.nvdec as nvdec
import trtapps.gpu.nvdec_worker as nw
from nvdec_fakes import CpuSession, install_fake_nvdec, make_packets  # tests/nvdec_fakes.py
from trtapps.stages import FrameFailure

#: host stand-ins for device memory shared through CUDA IPC: base address → buffer, handle → base address
_BUFFERS: dict[int, np.ndarray] = {}
_HANDLES: dict[bytes, int] = {}
_UNMAPPED: list[int] = []


class HostSlabRing(nw.SlabRing):
    def _allocate(self, nbytes: int) -> tuple[int, bytes]:
        buffer = np.full(nbytes, 255, np.uint8)
        pointer = int(buffer.ctypes.data)
        _BUFFERS[pointer] = buffer
        handle = f"slab@{pointer}".encode()
        _HANDLES[handle] = pointer
        return pointer, handle

    def _free_memory(self, pointer: int) -> None:
        del _BUFFERS[pointer]

    def _on_device(self) -> Any:
        import contextlib

        return contextlib.nullcontext()


def _host_view(address: int, shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    for base, buffer in _BUFFERS.items():
        if base <= address < base + buffer.size:
            offset = address - base
            return buffer[offset : offset + height * 3 // 2 * width].reshape(height * 3 // 2, width)
    raise AssertionError(f"no slab holds address {address:#x}")


class Leased(np.ndarray):
    """A host view that keeps its lease alive (as the CuPy array's memory owner does on the GPU)."""

    lease: Any = None


class HostWorkerSession(nw.WorkerSession):
    #: kinds of the messages every session received (the protocol's traffic)
    received: ClassVar[list[str]] = []

    def events(self) -> Any:
        recv = self.conn.recv

        def counting() -> Any:
            message = recv()
            HostWorkerSession.received.append(message[0])
            return message

        self.conn.recv = counting  # type: ignore[method-assign]
        return super().events()

    def _open(self, handle: bytes) -> int:
        return _HANDLES[handle]

    def _unmap(self, pointer: int) -> None:
        _UNMAPPED.append(pointer)

    def _array(self, pointer: int, shape: tuple[int, int], owner: Any) -> Any:
        view = _host_view(pointer, shape).view(Leased)
        view.lease = owner
        return view


class WorkerCpuSession(CpuSession):
    """The decoding loop with its "copy" written into the worker's ring (every pixel = the picture's pts)."""

    def _copy(self, surface: Any) -> Any:
        address, picture = self.ring.target(4, 4)
        _host_view(address, (4, 4))[...] = surface.timestamp % 256
        return picture


class ThreadWorker:
    """The worker "process": :func:`run_worker` on a thread, with the scripted PyNvVideoCodec."""

    def __init__(self, nvc: Any, session_type: type = WorkerCpuSession) -> None:
        self.nvc, self.session_type = nvc, session_type
        self.thread: threading.Thread | None = None
        self.ring: HostSlabRing | None = None

    def _ring(self, device: int, announce: Any, refill: Any) -> HostSlabRing:
        self.ring = HostSlabRing(device, announce, refill)
        return self.ring

    def launch(self, device: int, processes: int = 1) -> tuple[Connection, Any]:
        ours, theirs = socket.socketpair()
        self.thread = threading.Thread(
            target=nw.run_worker, args=(Connection(theirs.detach()),),
            kwargs={"nvc": self.nvc, "session_type": self.session_type, "ring_type": self._ring}, daemon=True)
        self.thread.start()
        return Connection(ours.detach()), self

    # the WorkerLease interface
    def poll(self) -> int | None:
        return None if self.thread is not None and self.thread.is_alive() else 0

    def release(self) -> None:
        pass

    def running(self) -> bool:
        return self.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not exit"
        return 0


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``make(packets, session_type=…, **nvc) -> (clip, ThreadWorker)``; NvdecSource(worker="process") then
    decodes in the thread worker."""
    make_fake = install_fake_nvdec(monkeypatch, tmp_path)
    _BUFFERS.clear()
    _HANDLES.clear()
    _UNMAPPED.clear()
    HostWorkerSession.received = []

    def make(packets: list[Any], session_type: type = WorkerCpuSession, **kwargs: Any) -> tuple[Path, ThreadWorker]:
        clip, fake = make_fake(packets, **kwargs)
        worker = ThreadWorker(fake, session_type)
        monkeypatch.setattr(nw, "WorkerSession", lambda job, log, name, processes: HostWorkerSession(
            job, log, name, processes, launch=worker.launch))
        return clip, worker

    return make


def _pixel(frame: Any) -> int:
    return int(frame.image[0, 0])


def _records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_every_picture_arrives_in_order_and_the_worker_frees_everything_at_the_end(worker_env: Any) -> None:
    clip, worker = worker_env(make_packets(40), frames_in_header=40)
    source = nvdec.NvdecSource(clip, worker="process")
    frames = list(source)
    assert [f.index for f in frames] == list(range(40))
    assert [_pixel(f) for f in frames] == list(range(40))
    assert all(f.pixel_format == "nv12" and (f.height, f.width) == (4, 4) for f in frames)
    assert source.undelivered == 0
    # 40 frames alive at once: the worker had to allocate slabs of 8, 16 and 32; none is unmapped while frames live
    assert sorted(b.size // nw.nv12_bytes(4, 4) for b in _BUFFERS.values()) == [8, 16, 32]
    assert _UNMAPPED == []
    del frames
    gc.collect()
    worker.wait(5)  # the last frame went: slabs unmapped, bye sent, the worker freed its slabs and ended
    assert sorted(_UNMAPPED) == sorted(_HANDLES.values())
    assert _BUFFERS == {}
    source.close()


def test_pictures_travel_in_groups_and_slots_come_back_in_groups(worker_env: Any) -> None:
    # one message per picture cost the pipeline's reader a wake-up, two reads and the GIL per frame
    clip, worker = worker_env(make_packets(64), frames_in_header=64)
    source = nvdec.NvdecSource(clip, worker="process")
    assert [f.index for f in source] == list(range(64))
    groups = HostWorkerSession.received.count("frames")
    assert 64 // nw.FRAME_GROUP <= groups <= 64 // nw.FRAME_GROUP + 8, HostWorkerSession.received
    gc.collect()
    worker.wait(5)
    source.close()


def test_a_failing_worker_still_delivers_the_pictures_it_decoded(worker_env: Any, caplog: Any) -> None:
    class FailsAtTen(WorkerCpuSession):
        def _copy(self, surface: Any) -> Any:
            if surface.timestamp == 10:
                raise MemoryError("out of device memory")
            return super()._copy(surface)

    clip, worker = worker_env(make_packets(30), session_type=FailsAtTen)
    with caplog.at_level(logging.ERROR):
        frames = list(nvdec.NvdecSource(clip, worker="process"))
    assert [f.index for f in frames] == list(range(10))  # none held back in an unsent group
    assert _records(caplog, "out of device memory")
    del frames
    gc.collect()
    worker.wait(5)


def test_slots_are_reused_only_after_release_and_kept_frames_keep_their_pixels(worker_env: Any) -> None:
    clip, worker = worker_env(make_packets(120))
    kept = []
    for frame in nvdec.NvdecSource(clip, worker="process"):
        if frame.index % 30 == 0:
            kept.append(frame)
        del frame
    assert [_pixel(f) for f in kept] == [0, 30, 60, 90]  # not overwritten by the 100+ frames decoded later
    # frames dropped as they came gave their slots back: slots for what was alive at once, not for 120 frames
    slots = sum(b.size // nw.nv12_bytes(4, 4) for b in _BUFFERS.values())
    assert slots <= 2 * (nw.AHEAD + nw.RELEASE_STEP + len(kept) + 4), slots
    del kept
    gc.collect()
    worker.wait(5)


def test_the_worker_stays_at_most_ahead_frames_in_front_of_a_slow_reader(worker_env: Any) -> None:
    clip, worker = worker_env(make_packets(200))
    source = nvdec.NvdecSource(clip, worker="process")
    items = iter(source)
    first = next(items)  # the worker is running; now the reader stops reading
    time.sleep(0.3)
    assert worker.ring is not None
    # frames sent but not received ≤ AHEAD, plus the one received; the decoder's reordering delay holds 1-2 more
    assert nw.AHEAD <= worker.ring.in_use <= nw.AHEAD + 1 + 3, worker.ring.in_use
    rest = list(items)
    assert [f.index for f in [first, *rest]] == list(range(200))
    del first, rest
    gc.collect()
    worker.wait(5)


def test_max_frames_stops_the_worker_early(worker_env: Any) -> None:
    clip, worker = worker_env(make_packets(100), frames_in_header=100)
    source = nvdec.NvdecSource(clip, worker="process", start_frame=2, stride=3, max_frames=4)
    assert [f.index for f in source] == [2, 5, 8, 11]
    gc.collect()
    worker.wait(5)
    source.close()


def test_undecodable_packets_and_forwarded_warnings(worker_env: Any, caplog: pytest.LogCaptureFixture) -> None:
    clip, worker = worker_env(make_packets(20, fail=tuple(range(5, 20))), frames_in_header=20)
    caplog.set_level(logging.INFO)
    source = nvdec.NvdecSource(clip, worker="process", max_bad_frames=3)
    items = list(source)
    assert [i.index for i in items] == list(range(len(items)))
    failures = [i for i in items if isinstance(i, FrameFailure)]
    assert len(failures) == 4
    assert all("could not be decoded by NVDEC" in f.error for f in failures)
    # logged in the worker, logged again here by the source's logger
    assert len([r for r in _records(caplog, "4 packets in a row failed") if r.name == "trtapps.gpu.nvdec"]) == 1
    assert source.undelivered == 20 - len(items)
    del items, failures
    gc.collect()
    worker.wait(5)


class _FailingSession(WorkerCpuSession):
    def _copy(self, surface: Any) -> Any:
        if surface.timestamp == 7:
            raise MemoryError("out of device memory")
        return super()._copy(surface)


def test_a_failing_worker_ends_the_video_with_one_line(worker_env: Any, caplog: pytest.LogCaptureFixture) -> None:
    clip, worker = worker_env(make_packets(20), session_type=_FailingSession, frames_in_header=20)
    caplog.set_level(logging.INFO)
    source = nvdec.NvdecSource(clip, worker="process")
    frames = list(source)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert len(frames) < 20
    errors = _records(caplog, "the NVDEC worker process failed")
    assert len(errors) == 1
    assert "MemoryError: out of device memory" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage()
    assert source.undelivered == 20 - len(frames)
    del frames
    gc.collect()
    worker.wait(5)


class _GoneProcess:
    """The lease of a worker that died: exit status 1."""

    def poll(self) -> int:
        return 1

    def release(self) -> None:
        pass

    def running(self) -> bool:
        return False


def test_a_dead_worker_ends_the_video_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    def launch(device: int, processes: int) -> tuple[Connection, Any]:
        ours, theirs = socket.socketpair()

        def die() -> None:  # reads the job, sends one unrelated log line and dies without a word
            conn = Connection(theirs.detach())
            conn.recv()
            conn.send(("log", logging.WARNING, "about to vanish"))
            conn.close()

        threading.Thread(target=die, daemon=True).start()
        return Connection(ours.detach()), _GoneProcess()

    caplog.set_level(logging.INFO)
    session = HostWorkerSession({"device": 0}, logging.getLogger("test"), "clip.mp4", 1, launch=launch)
    assert list(session.events()) == []
    assert len(_records(caplog, "about to vanish")) == 1
    errors = _records(caplog, "the NVDEC worker process ended unexpectedly")
    assert len(errors) == 1
    assert "decode_worker: thread" in errors[0].getMessage()
    assert "exit code 1" in errors[0].getMessage()
    session.close()


def test_the_real_worker_subprocess_reports_its_failure_in_one_line_and_exits(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real decoding subprocess and socket protocol; the job fails (no PyNvVideoCodec here, and the file does
    # not exist anyway), which the worker reports before it exits cleanly. The working directory holds a decoy
    # trtapps package: `python -m` would import it (sys.path[0] is the working directory) and hang the video
    decoy = tmp_path / "cwd" / "trtapps"
    (decoy / "gpu").mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the decoy trtapps was imported')\n")
    monkeypatch.chdir(decoy.parent)
    caplog.set_level(logging.INFO)
    job = {"path": str(tmp_path / "absent.mp4"), "device": 0, "start_frame": 0, "stride": 1, "last_index": None,
           "max_bad_frames": 8, "presentation_end": None}
    session = nw.WorkerSession(job, logging.getLogger("test"), "absent.mp4")
    assert list(session.events()) == []
    errors = _records(caplog, "the NVDEC worker process failed")
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]
    assert "\n" not in errors[0].getMessage()
    session.close()
    assert session.wait(60) == 0


def test_nv12_view_keeps_its_lease_until_the_last_view_dies() -> None:
    # needs CuPy (not a GPU: nothing is read); CI has no CuPy and skips this with the reason
    pytest.importorskip("cupy", reason="CuPy is not installed")
    released: list[tuple[str, int]] = []

    class Owner:
        def _release(self, key: str, value: int) -> None:
            released.append((key, value))

    array = nvdec.nv12_view(0x7F0000000000, 4, 6, nvdec.Lease(Owner(), "slab", 3), 0)
    assert array.shape == (6, 6)
    assert array.flags.c_contiguous
    assert int(array.data.ptr) == 0x7F0000000000
    view = array[1:]
    del array
    gc.collect()
    assert released == []  # a view still uses the memory
    del view
    gc.collect()
    assert released == [("slab", 3)]


@pytest.fixture
def mps_pipes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty folder as ``$CUDA_MPS_PIPE_DIRECTORY`` (no MPS daemon until a test makes its ``control`` pipe)."""
    folder = tmp_path / "mps"
    folder.mkdir()
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(folder))
    return folder


def test_decode_worker_auto_takes_processes_only_under_mps(mps_pipes: Path) -> None:
    assert nvdec.resolve_worker("thread") == ("thread", "decode_worker thread")
    assert nvdec.resolve_worker("process")[0] == "process"
    worker, why = nvdec.resolve_worker("auto")
    assert worker == "thread"
    assert "no CUDA MPS daemon" in why
    os.mkfifo(mps_pipes / "control")
    worker, why = nvdec.resolve_worker("auto")
    assert worker == "process"
    assert str(mps_pipes / "control") in why
    with pytest.raises(ValueError, match="worker must be one of"):
        nvdec.resolve_worker("fork")


def test_a_source_left_at_auto_decodes_in_a_worker_process_under_mps(
        worker_env: Any, mps_pipes: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(nvdec, "DEFAULT_WORKER", "auto")  # the fakes pin thread; this test wants the real default
    os.mkfifo(mps_pipes / "control")
    clip, worker = worker_env(make_packets(12))
    caplog.set_level(logging.INFO)
    source = nvdec.NvdecSource(clip)
    assert source.worker == "process"
    assert source.describe()["decoder"] == "nvdec"
    assert (source.describe()["decode_worker"], source.describe()["decode_worker_asked"]) == ("process", "auto")
    assert [f.index for f in source] == list(range(12))
    assert _records(caplog, "in a worker process (decode_worker auto: the CUDA MPS daemon is running")
    gc.collect()
    worker.wait(5)
    source.close()


def test_a_run_with_many_in_process_nvdec_videos_and_no_mps_says_how_to_get_worker_processes(
        mps_pipes: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from conftest import shared_path  # tests/conftest.py
    from trtapps.pipeline import Pipeline

    make = install_fake_nvdec(monkeypatch, tmp_path)
    monkeypatch.setattr(nvdec, "DEFAULT_WORKER", "auto")  # the fakes pin thread; the hint is about auto
    clip, _ = make(make_packets(4))
    left_at_auto = [nvdec.NvdecSource(clip, source_id=i) for i in range(nvdec.MPS_HINT_STREAMS)]
    assert {s.worker for s in left_at_auto} == {"thread"}  # no MPS daemon (mps_pipes is empty)
    hint = nvdec.mps_hint(left_at_auto)
    assert hint is not None
    assert hint.startswith(f"{nvdec.MPS_HINT_STREAMS} videos decode with NVDEC in this process")
    assert "nvidia-cuda-mps-control -d" in hint
    assert nvdec.mps_hint(left_at_auto[:-1]) is None  # fewer streams: the GIL matters little
    chosen = [nvdec.NvdecSource(clip, worker="thread") for _ in range(nvdec.MPS_HINT_STREAMS)]
    assert nvdec.mps_hint(chosen) is None  # decode_worker: thread was asked for: no advice
    app = {"type": "yolo", "model": str(shared_path("models/yolox_nano.onnx"))}
    with caplog.at_level(logging.WARNING), Pipeline.from_objects(app=app, source=left_at_auto,
                                                                 backend="onnxruntime") as pipe:
        pipe.build_sources()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [hint]
    for source in left_at_auto + chosen:
        source.close()


# -- worker processes shared by several videos ----------------------------------------------------------------------


class ThreadProcess(nw.WorkerProcess):
    """A decoding "process" that is :func:`nw.serve` on a thread: the real control socket, descriptor passing and
    round-robin loop; only the process is a thread (its exit status 0 once the loop has returned)."""

    def __init__(self, device: int, nvc: Any, session_type: type = WorkerCpuSession) -> None:
        self.device, self.videos, self.served = device, 0, 0
        self.control, theirs = socket.socketpair()

        def task(conn: Connection) -> nw.VideoTask:
            self.served += 1
            return nw.VideoTask(conn, nvc, session_type, HostSlabRing)

        self.thread = threading.Thread(target=nw.serve, args=([], theirs), kwargs={"task": task}, daemon=True)
        self.thread.start()
        self.proc = self
        self.pid = id(self)

    def poll(self) -> int | None:
        return None if self.thread.is_alive() else 0

    def wait(self, timeout: float | None = None) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker loop did not end"
        return 0

    def kill(self) -> None:
        raise AssertionError("a worker had to be killed")


@pytest.fixture
def pool_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``make(packets, **nvc) -> (clip, pool, spawned)``: NvdecSource(worker="process") decodes through a
    :class:`nw.WorkerPool` of :class:`ThreadProcess` decoding processes."""
    make_fake = install_fake_nvdec(monkeypatch, tmp_path)
    _BUFFERS.clear()
    _HANDLES.clear()
    _UNMAPPED.clear()

    def make(packets: list[Any], session_type: type = WorkerCpuSession,
             **kwargs: Any) -> tuple[Path, nw.WorkerPool, list[ThreadProcess]]:
        clip, fake = make_fake(packets, **kwargs)
        spawned: list[ThreadProcess] = []

        def spawn(device: int) -> ThreadProcess:
            spawned.append(ThreadProcess(device, fake, session_type))
            return spawned[-1]

        pool = nw.WorkerPool(spawn)
        monkeypatch.setattr(nw, "WorkerSession", lambda job, log, name, processes: HostWorkerSession(
            job, log, name, processes, launch=pool.attach))
        return clip, pool, spawned

    return make


def test_videos_share_at_most_the_asked_number_of_processes_and_each_arrives_whole(pool_env: Any) -> None:
    clip, pool, spawned = pool_env(make_packets(50), frames_in_header=50)
    sources = [nvdec.NvdecSource(clip, worker="process", processes=2, source_id=i) for i in range(5)]
    assert len(spawned) == 2  # five videos, two processes: 3 + 2
    assert sorted(p.videos for p in spawned) == [2, 3]
    assert len(pool.pids()) == 2
    assert all(s.describe()["decode_processes"] == 2 for s in sources)
    iterators = [iter(s) for s in sources]
    frames: list[list[Any]] = [[] for _ in sources]
    for _ in range(50):  # read the videos side by side, as the pipeline's readers do
        for got, it in zip(frames, iterators, strict=True):
            got.append(next(it))
    for got, it in zip(frames, iterators, strict=True):
        assert [f.index for f in got] == list(range(50))
        assert [_pixel(f) for f in got] == list(range(50))
        assert list(it) == []
    assert sorted(p.served for p in spawned) == [2, 3]
    del frames, got
    gc.collect()
    for process in spawned:  # every video released: each process was retired and its loop ended
        process.wait(5)
    assert pool.pids() == []
    assert _BUFFERS == {}  # every slab freed
    for source in sources:
        source.close()


def test_without_decode_processes_the_videos_share_the_default_number_of_processes(pool_env: Any) -> None:
    clip, _, spawned = pool_env(make_packets(6), frames_in_header=6)
    sources = [nvdec.NvdecSource(clip, worker="process", source_id=i) for i in range(nw.DECODE_PROCESSES + 3)]
    assert len(spawned) == nw.DECODE_PROCESSES
    assert all(s.describe()["decode_processes"] == nw.DECODE_PROCESSES for s in sources)
    assert [[f.index for f in s] for s in sources] == [list(range(6))] * len(sources)
    gc.collect()
    for process in spawned:
        process.wait(5)


def test_a_video_nobody_reads_does_not_hold_up_the_others_in_its_process(pool_env: Any) -> None:
    clip, _, spawned = pool_env(make_packets(120))
    stalled = nvdec.NvdecSource(clip, worker="process", processes=1)
    moving = nvdec.NvdecSource(clip, worker="process", processes=1)
    assert len(spawned) == 1
    first = next(iter(stalled))  # started, then never read again: its credit runs out after AHEAD frames
    assert [f.index for f in moving] == list(range(120))
    assert first.index == 0
    stalled.close()
    del first
    gc.collect()
    spawned[0].wait(5)


def test_a_process_left_without_videos_exits_and_the_next_video_gets_a_new_one(pool_env: Any) -> None:
    clip, pool, spawned = pool_env(make_packets(10))
    assert len(list(nvdec.NvdecSource(clip, worker="process", processes=4))) == 10
    gc.collect()
    spawned[0].wait(5)
    assert pool.pids() == []
    assert len(list(nvdec.NvdecSource(clip, worker="process", processes=4))) == 10
    assert len(spawned) == 2
    gc.collect()
    spawned[1].wait(5)


class _FlakySession(WorkerCpuSession):
    """Fails to open its video while ``fail`` is set (in the worker only: the probe uses CpuSession)."""

    fail: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _FlakySession.fail:
            raise RuntimeError("cannot open the file")
        super().__init__(*args, **kwargs)


def test_a_failing_video_ends_alone_and_its_process_serves_the_others(
        pool_env: Any, caplog: pytest.LogCaptureFixture) -> None:
    clip, _, spawned = pool_env(make_packets(30), session_type=_FlakySession)
    caplog.set_level(logging.INFO)
    _FlakySession.fail = False
    good = iter(nvdec.NvdecSource(clip, worker="process", processes=1))
    assert next(good).index == 0
    _FlakySession.fail = True
    bad = nvdec.NvdecSource(clip, worker="process", processes=1)
    assert len(spawned) == 1  # the same process serves both
    assert list(bad) == []
    errors = _records(caplog, "the NVDEC worker process failed")
    assert len(errors) == 1
    assert "RuntimeError: cannot open the file" in errors[0].getMessage()
    assert [f.index for f in good] == list(range(1, 30))
    gc.collect()
    spawned[0].wait(5)
    _FlakySession.fail = False


def test_a_process_that_died_unnoticed_is_replaced_when_a_video_asks_for_it() -> None:
    class Process:
        def __init__(self, device: int, dead: bool = False) -> None:
            self.device, self.videos, self.dead = device, 0, dead
            self.proc = self
            self.pid = id(self)

        def alive(self) -> bool:
            return True  # as a process that died a moment ago still looks

        def add_video(self) -> Any:
            if self.dead:
                raise BrokenPipeError("the control socket's reader is gone")
            return object()

        def retire(self) -> None:
            pass

    waiting = [Process(0, dead=True), Process(0)]  # what each spawn returns, in turn

    def spawn(device: int) -> Process:
        return waiting.pop(0)

    pool = nw.WorkerPool(spawn)  # type: ignore[arg-type]
    _, lease = pool.attach(0, 1)
    assert waiting == []  # the dead one was replaced at once
    assert not lease.process.dead
    assert lease.process.videos == 1
    assert pool.pids() == [lease.process.pid]


@pytest.mark.parametrize(("worker_wait", "expected"), [("spin", "spin"), ("", "block"), (None, "block")])
def test_decoding_processes_take_their_own_host_wait_mode_before_any_cuda_call(
    monkeypatch: pytest.MonkeyPatch, worker_wait: str | None, expected: str
) -> None:
    """TRTAPPS_NVDEC_WAIT becomes the decoding process's TRTAPPS_CUDA_WAIT before it serves a video (the mode is
    set on the CUDA context when the first decoder starts); unset or empty, the pipeline's mode is inherited."""
    from trtapps.gpu.device import HOST_WAIT_ENV

    monkeypatch.setenv(HOST_WAIT_ENV, "block")
    if worker_wait is None:
        monkeypatch.delenv(nw.WORKER_WAIT_ENV, raising=False)
    else:
        monkeypatch.setenv(nw.WORKER_WAIT_ENV, worker_wait)
    seen: list[str | None] = []
    monkeypatch.setattr(nw, "serve", lambda tasks, control: (seen.append(os.environ.get(HOST_WAIT_ENV)),
                                                             control.close()))
    ours, theirs = socket.socketpair()
    try:
        assert nw.main([str(theirs.detach())]) == 0
    finally:
        ours.close()
    assert seen == [expected]
