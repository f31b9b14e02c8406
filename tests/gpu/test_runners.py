"""GPU foundations and the ONNX Runtime CUDA runner, against the CPU runner on real letterboxed images.

Every test here needs CuPy with a CUDA device (and, for the runner, onnxruntime-gpu with its CUDA provider); they
are skipped visibly elsewhere. The parts of the same code that can be checked without a GPU (``check_cuda``
messages, provider options, binding modes, lazy imports) are in ``tests/unit/test_tensorrt_api.py``.

Tolerance (exact fp32, ``tf32=False``): class scores (values 0..1) must match the CPU runner within 1e-3 absolute. Box coordinates are pixels
up to 640, where fp32 summation order alone moves them by about 1e-3 px: the CPU backend against itself with and
without graph optimizations differs by 1.1e-3 px on these images (scores by 3e-6). Boxes are therefore compared
with ``atol=1e-3, rtol=1e-4`` (0.065 px at 640 px); a wrong binding, a stale buffer or a race gives errors of
whole pixels and whole score units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conftest import shared_path  # tests/conftest.py
from gpu_spin import delayed_copy  # tests/gpu_spin.py
from letterboxed_media import batch_of  # tests/letterboxed_media.py
from trtapps.errors import CudaError
from trtapps.gpu import check_cuda

MODEL = "models/yolov8n_dequant.onnx"


# -- helpers --------------------------------------------------------------------------------------------------------
def assert_yolo_close(got: np.ndarray, want: np.ndarray, score_atol: float = 1e-3, box_atol: float = 1e-3) -> None:
    """Compare YOLOv8 outputs ``[B, 84, 8400]``: rows 0-3 boxes (pixels), rows 4-83 class scores."""
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.isfinite(got).all()
    box_err = float(np.abs(got[:, :4] - want[:, :4]).max())
    score_err = float(np.abs(got[:, 4:] - want[:, 4:]).max())
    print(f"max |Δ| boxes {box_err:.2e} px, scores {score_err:.2e}")
    np.testing.assert_allclose(got[:, 4:], want[:, 4:], atol=score_atol, rtol=0)
    np.testing.assert_allclose(got[:, :4], want[:, :4], atol=box_atol, rtol=1e-4)


@pytest.fixture(scope="module")
def cpu_reference() -> Any:
    from trtapps.runners.onnxruntime import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(shared_path(MODEL))
    yield runner
    runner.close()


# -- pinned memory and CUDA errors (GPU) -------------------------------------------------------------------------------
@pytest.mark.gpu
def test_check_cuda_with_a_real_cuda_error() -> None:
    from cuda.bindings import runtime as cudart

    try:
        with pytest.raises(CudaError, match=r"^cudaHostAlloc failed: cudaErrorMemoryAllocation \(.+\)$"):
            check_cuda("cudaHostAlloc", cudart.cudaHostAlloc(1 << 62, cudart.cudaHostAllocDefault))
    finally:
        cudart.cudaGetLastError()  # clear the recorded error so later CUDA users in this process do not see it


@pytest.mark.gpu
def test_pinned_ring_round_trip() -> None:
    import cupy as cp

    from trtapps.gpu.memory import PinnedRing
    from trtapps.gpu.stream import new_stream

    stream = new_stream()
    shape = (4, 64, 64, 3)
    device = cp.empty(shape, dtype=np.uint8)
    back = np.zeros(shape, dtype=np.uint8)
    rng = np.random.default_rng(0)
    with PinnedRing.for_array(2, shape, np.uint8) as ring:
        assert len(ring) == 2
        for step in range(5):  # more batches than slots: slots are reused once their copy completed
            data = rng.integers(0, 256, size=shape, dtype=np.uint8)
            slot = ring.acquire()
            host = slot.view(shape, np.uint8)
            assert host.ctypes.data == slot.buffer.ptr  # the array is the pinned memory itself
            host[...] = data
            device.set(host, stream=stream)
            slot.release(stream)
            with stream:
                device += np.uint8(step)  # a kernel on the same stream, after the copy
            out = ring.acquire()
            out_host = out.view(shape, np.uint8)
            device.get(stream=stream, out=out_host, blocking=False)
            out.release(stream)
            stream.synchronize()
            back[...] = out_host
            np.testing.assert_array_equal(back, data + np.uint8(step))
    assert len(ring) == 0  # closed: every slot waited for and freed


@pytest.mark.gpu
def test_pinned_buffer_refuses_views_that_do_not_fit() -> None:
    from trtapps.gpu.memory import PinnedBuffer

    with PinnedBuffer(1024) as buffer:
        assert buffer.view((256,), np.float32).nbytes == 1024
        with pytest.raises(ValueError, match="needs 1028 bytes"):
            buffer.view((257,), np.float32)
    assert buffer.closed


@pytest.mark.gpu
def test_gpu_info_and_event_timer() -> None:
    import cupy as cp

    from trtapps.gpu.device import gpu_info
    from trtapps.gpu.stream import EventTimer, new_stream

    info = gpu_info(0)
    assert info["name"]
    assert "." in info["compute_capability"]
    assert info["total_memory_bytes"] > 0
    assert info["cupy_version"] == cp.__version__
    stream = new_stream()
    a = cp.ones((1024, 1024), dtype=cp.float32)
    with EventTimer(stream) as timer, stream:
        a @ a
    assert timer.elapsed_ms > 0


# -- ONNX Runtime CUDA runner (GPU) ---------------------------------------------------------------------------------
def _ort_cuda_runner(**kwargs: Any) -> Any:
    from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaRunner, available

    reason = available()
    if reason is not None:
        pytest.skip(f"onnxruntime_cuda: {reason}")
    kwargs.setdefault("tf32", False)  # exact fp32, as the tolerances above assume (TF32 is checked on its own)
    return OnnxRuntimeCudaRunner(shared_path(MODEL), **kwargs)


@pytest.mark.gpu
def test_onnxruntime_cuda_tf32_default_stays_close(cpu_reference: Any) -> None:
    """TF32 (the default, as in ONNX Runtime and TensorRT) rounds convolution inputs to 10 mantissa bits: scores
    move by up to about 1e-2 and boxes by a few pixels, never by whole score units (a binding bug would)."""
    import cupy as cp

    x = batch_of(8)
    want = cpu_reference.infer({"images": x})["output0"]
    with _ort_cuda_runner(max_batch=8, tf32=True) as runner:
        with runner.stream:
            feed = cp.asarray(x)
        out = runner.infer({"images": feed}, runner.stream)["output0"]
        assert_yolo_close(out.get(stream=runner.stream), want, score_atol=2e-2, box_atol=8.0)


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [1, 8])
def test_onnxruntime_cuda_matches_cpu(cpu_reference: Any, batch: int) -> None:
    import cupy as cp

    x = batch_of(batch)
    want = cpu_reference.infer({"images": x})["output0"]
    with _ort_cuda_runner(max_batch=8) as runner:
        assert runner.backend == "onnxruntime_cuda"
        assert runner.residency.value == "device"
        assert "CUDAExecutionProvider" in runner.session.get_providers()
        assert runner.metadata.get("names"), "ONNX metadata (class names) must come through"
        with runner.stream:
            feed = cp.asarray(x)
        out = runner.infer({"images": feed}, runner.stream)["output0"]
        assert isinstance(out, cp.ndarray)
        assert out.shape == (batch, 84, 8400)
        assert_yolo_close(out.get(stream=runner.stream), want)


@pytest.mark.gpu
def test_onnxruntime_cuda_honours_the_pipeline_stream(cpu_reference: Any) -> None:
    """The input is written by work still queued on the runner's (non-default) stream; no sync before infer."""
    import cupy as cp

    from trtapps.gpu.stream import new_stream

    x = batch_of(2)
    want = cpu_reference.infer({"images": x})["output0"]
    stream = new_stream()
    with _ort_cuda_runner(stream=stream, max_batch=2) as runner:
        source = cp.asarray(x)
        feed = cp.full(x.shape, cp.nan, dtype=cp.float32)
        cp.cuda.Device().synchronize()
        delayed_copy(cp, feed, source, stream)  # ~200 ms of GPU work, then the real input
        out = runner.infer({"images": feed}, stream)["output0"]
        assert_yolo_close(out.get(stream=stream), want)


@pytest.mark.gpu
def test_host_threads_sleep_while_waiting_for_the_gpu() -> None:
    """``select_device`` sets blocking sync on the primary context: waiting 300 ms for a GPU kernel costs the
    waiting thread almost no CPU time (CUDA's default spins a core for the whole wait)."""
    import time

    import cupy as cp

    from trtapps.gpu.device import HOST_WAITS, host_wait_flags, select_device
    from trtapps.gpu.stream import new_stream

    select_device(0)
    assert host_wait_flags(0) == HOST_WAITS["block"]
    stream = new_stream()
    dst, src = cp.zeros(4, cp.float32), cp.ones(4, cp.float32)
    delayed_copy(cp, dst, src, stream, milliseconds=300.0)
    wall, cpu = time.perf_counter(), time.thread_time()
    stream.synchronize()
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    assert wall > 0.2, f"the kernel should still have been running ({wall:.3f} s)"
    assert cpu < 0.05, f"waiting {wall:.3f} s for the GPU cost {cpu:.3f} s of CPU: the thread spun"
    assert float(dst.get(stream=stream)[0]) == 1.0


@pytest.mark.gpu
def test_onnxruntime_cuda_threads_do_not_spin_between_runs() -> None:
    """The runner's session turns ONNX Runtime's CPU-thread spinning off (``cpu_spinning: false``): right after a
    burst of runs, half a second of idling costs the process little CPU time. With spinning on, the figure is
    printed next to it (how much the default would have taken from the pipeline's other threads)."""
    import time

    import cupy as cp

    from trtapps.runners.onnxruntime import ALLOW_SPINNING

    idle_cpu = {}
    for spinning in (False, True):
        with _ort_cuda_runner(max_batch=8, cpu_spinning=spinning) as runner:
            try:
                entry = runner.session.get_session_options().get_session_config_entry(ALLOW_SPINNING)
            except RuntimeError:  # not set (spinning: ONNX Runtime's default), or not reported (onnxruntime 1.31)
                entry = None
            assert entry in (("1", None) if spinning else ("0", None))
            with runner.stream:
                feed = cp.asarray(batch_of(8))
            for _ in range(20):
                runner.infer({"images": feed}, runner.stream)
            runner.stream.synchronize()
            cpu, wall = time.process_time(), time.perf_counter()
            time.sleep(0.5)
            idle_cpu[spinning] = (time.process_time() - cpu) / (time.perf_counter() - wall)
    print(f"process CPU while idle, cores: spinning off {idle_cpu[False]:.3f}, on {idle_cpu[True]:.3f}")
    assert idle_cpu[False] < 0.2, f"idle process took {idle_cpu[False]:.2f} cores with spinning off"


@pytest.mark.gpu
def test_onnxruntime_cuda_returns_before_the_gpu_is_done(cpu_reference: Any) -> None:
    """No end-of-run host synchronization on the pipeline's stream: ``infer`` returns while ~300 ms of earlier GPU
    work is still queued, and outputs read on that stream are still right."""
    import time

    import cupy as cp

    from trtapps.gpu.stream import new_stream

    x = batch_of(2)
    want = cpu_reference.infer({"images": x})["output0"]
    stream = new_stream()
    with _ort_cuda_runner(stream=stream, max_batch=2) as runner:
        source = cp.asarray(x)
        feed = cp.full(x.shape, cp.nan, dtype=cp.float32)
        runner.infer({"images": source}, stream)  # warm-up (cuDNN algorithm search)
        stream.synchronize()
        delayed_copy(cp, feed, source, stream, milliseconds=300.0)
        t0 = time.perf_counter()
        out = runner.infer({"images": feed}, stream)["output0"]
        returned = time.perf_counter() - t0
        assert not stream.done, "the stream should still be busy when infer returns"
        assert returned < 0.25, f"infer waited {returned:.3f} s for the GPU"
        assert_yolo_close(out.get(stream=stream), want)


@pytest.mark.gpu
def test_onnxruntime_cuda_waits_for_another_callers_stream(cpu_reference: Any) -> None:
    """Runner on stream A, input produced on stream B: the runner orders A after B with an event."""
    import cupy as cp

    from trtapps.gpu.stream import new_stream

    x = batch_of(2)
    want = cpu_reference.infer({"images": x})["output0"]
    producer = new_stream()
    with _ort_cuda_runner(max_batch=2) as runner:
        assert runner.stream is not producer
        source = cp.asarray(x)
        feed = cp.full(x.shape, cp.nan, dtype=cp.float32)
        cp.cuda.Device().synchronize()
        delayed_copy(cp, feed, source, producer)
        out = runner.infer({"images": feed}, producer)["output0"]
        assert_yolo_close(out.get(stream=producer), want)


@pytest.mark.gpu
def test_onnxruntime_cuda_dynamic_batch_buffers(cpu_reference: Any) -> None:
    """Buffers sized for batch 2 grow for batch 8; smaller batches after that are views of the big buffer."""
    import cupy as cp

    x = batch_of(8)
    want = cpu_reference.infer({"images": x})["output0"]
    with _ort_cuda_runner(max_batch=2) as runner:
        assert runner.capacity == 2
        stream = runner.stream
        for n in (2, 8, 3, 1, 8):
            with stream:
                feed = cp.asarray(x[:n])
            out = runner.infer({"images": feed}, stream)["output0"]
            assert out.shape == (n, 84, 8400)
            assert_yolo_close(out.get(stream=stream), want[:n])
        assert runner.capacity == 8
        with stream:
            one, two = cp.asarray(x[:1]), cp.asarray(x[1:2])
        first = runner.infer({"images": one}, stream)["output0"]
        second = runner.infer({"images": two}, stream)["output0"]
        assert first.data.ptr == second.data.ptr  # documented: outputs are overwritten by the next call


@pytest.mark.gpu
def test_onnxruntime_cuda_non_contiguous_input_and_own_stream_mode(cpu_reference: Any) -> None:
    import cupy as cp

    x = batch_of(2)
    want = cpu_reference.infer({"images": x})["output0"]
    with _ort_cuda_runner(max_batch=2, user_stream=False) as runner:
        assert "user_compute_stream" not in runner.provider_options
        padded = cp.zeros((2, 3, 640, 648), dtype=cp.float32)
        padded[..., :640] = cp.asarray(x)
        feed = padded[..., :640]
        assert not feed.flags.c_contiguous
        out = runner.infer({"images": feed}, cp.cuda.get_current_stream())["output0"]
        assert_yolo_close(out.get(), want)


@pytest.mark.gpu
def test_onnxruntime_cuda_refuses_host_arrays() -> None:
    with _ort_cuda_runner() as runner, pytest.raises(TypeError, match="must be a CuPy array"):
        runner.infer({"images": batch_of(1)})


@pytest.mark.gpu
def test_onnxruntime_cuda_factory_shares_the_pipeline_stream() -> None:
    from trtapps.context import RunContext
    from trtapps.gpu.stream import pipeline_stream
    from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaOptions, _factory, available

    if available() is not None:
        pytest.skip(f"onnxruntime_cuda: {available()}")
    context = RunContext()
    options = OnnxRuntimeCudaOptions(max_batch=4)
    with _factory(options, context, shared_path(MODEL)) as runner:
        assert runner.stream is pipeline_stream(context, 0)
        assert runner.provider_options["user_compute_stream"] == str(runner.stream.ptr)
        assert runner.capacity == 4
