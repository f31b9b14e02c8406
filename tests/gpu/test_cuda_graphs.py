"""CUDA graphs never change results: graph replays against direct runs, bit for bit, on real inputs.

Every comparison is ``assert_array_equal`` (bitwise, NaN included) between a runner with ``cuda_graph=True`` and
one without, fed the same real letterboxed images. Each call uses a different rotation of the images, so a replay
that read a stale input would differ; before each call every output buffer the graph runner has returned so far
is filled with NaN on its stream, so a replay that did not write its output would show NaN. Batch sizes 1, 3 and
8 alternate, each replayed many times.

ONNX Runtime runners here use ``cudnn_conv_algo_search="HEURISTIC"``: with the default EXHAUSTIVE search, two
sessions time cuDNN's algorithms separately and may pick different ones, which changes the last bits of fp32
results between the two sessions whatever graphs do. HEURISTIC picks the same algorithm in both.

Needs CuPy, a GPU and onnxruntime-gpu (TensorRT for the ``tensorrt`` tests); skipped visibly elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import shared_path  # tests/conftest.py
from letterboxed_media import IMAGES, batch_of  # tests/letterboxed_media.py

MODEL = "models/yolov8n_dequant.onnx"
#: alternating batch sizes; each size is captured once and replayed many times
SEQUENCE = (1, 3, 8, 8, 1, 3, 3, 8, 1, 1, 8, 3) * 3


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Eight distinct real inputs ``(8, 3, 640, 640)``: the media images and their mirror images."""
    return batch_of(8)


def _rotation(images: np.ndarray, step: int, batch: int) -> np.ndarray:
    return np.ascontiguousarray(np.roll(images, step, axis=0)[:batch])


def _ort(model: str = MODEL, **kwargs: Any) -> Any:
    from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaRunner, available

    reason = available()
    if reason is not None:
        pytest.skip(f"onnxruntime_cuda: {reason}")
    kwargs.setdefault("cudnn_conv_algo_search", "HEURISTIC")
    kwargs.setdefault("tf32", False)
    kwargs.setdefault("pad_batch", False)  # these tests are about a graph per batch size (padding: one graph)
    return OnnxRuntimeCudaRunner(shared_path(model), **kwargs)


def _check_sequence(
    graphed: Any, direct: Any, images: np.ndarray, stream: Any, sequence: tuple[int, ...] = SEQUENCE
) -> None:
    """Run *sequence* through both runners (poisoning *graphed*'s outputs before each call) and compare bitwise."""
    import cupy as cp

    returned: dict[tuple[str, int], Any] = {}
    for step, batch in enumerate(sequence):
        x = _rotation(images, step, batch)
        with stream:
            feed = cp.asarray(x)
        want = {k: v.get(stream=stream) for k, v in direct.infer({"images": feed}, stream).items()}
        with stream:
            for array in returned.values():
                array.fill(cp.nan)
        got = graphed.infer({"images": feed}, stream)
        assert set(got) == set(want)
        for name, array in got.items():
            returned[(name, batch)] = array
            host = array.get(stream=stream)
            assert np.isfinite(host).all(), f"call {step} (batch {batch}): {name} was not written"
            np.testing.assert_array_equal(host, want[name], err_msg=f"call {step} (batch {batch}): {name}")


# -- ONNX Runtime --------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_onnxruntime_cuda_graphs_replay_bitwise_equal_outputs(images: np.ndarray) -> None:
    with _ort(max_batch=8) as direct, _ort(max_batch=8, cuda_graph=True) as graphed:
        assert graphed.cuda_graph, graphed.cuda_graph_problem
        assert graphed.cuda_graph_problem is None
        assert graphed.provider_options["enable_cuda_graph"] == "1"
        assert graphed.provider_options["user_compute_stream"] == str(graphed.stream.ptr)
        assert "enable_cuda_graph" not in direct.provider_options
        _check_sequence(graphed, direct, images, graphed.stream)
        assert graphed.captured_batches == [1, 3, 8]


@pytest.mark.gpu
@pytest.mark.parametrize("graphs", [False, True])
def test_onnxruntime_cuda_partial_batches_run_padded(images: np.ndarray, graphs: bool) -> None:
    """pad_batch (the default): after a batch of 8, batches of 1 and 3 run padded to 8 and give what the same
    images give in unpadded runs (other batch sizes may pick other convolution kernels: last-bit differences,
    hence the bound); with graphs there is one for batch 8 (and those of the sizes run before it)."""
    import cupy as cp

    with _ort(max_batch=8) as direct, _ort(max_batch=8, pad_batch=True, cuda_graph=graphs) as padded:
        assert padded.pad_batch
        stream = padded.stream
        for step, batch in enumerate((8, 1, 3, 8, 1, 3)):
            x = _rotation(images, step, batch)
            with stream:
                feed = cp.asarray(x)
            want = direct.infer({"images": feed}, stream)["output0"].get(stream=stream)
            got = padded.infer({"images": feed}, stream)["output0"]
            assert got.shape == (batch, 84, 8400)
            np.testing.assert_allclose(got.get(stream=stream), want, rtol=1e-3, atol=1e-2)
        if graphs:
            assert padded.captured_batches == [8]


@pytest.mark.gpu
def test_onnxruntime_cuda_graphs_on_a_callers_stream(images: np.ndarray) -> None:
    """The caller's stream is not the session's: inputs copied after an event wait, outputs ordered back."""
    from trtapps.gpu.stream import new_stream

    caller = new_stream()
    with _ort(max_batch=8) as direct, _ort(max_batch=8, cuda_graph=True) as graphed:
        assert graphed.stream is not caller
        _check_sequence(graphed, direct, images, caller, SEQUENCE[:12])


@pytest.mark.gpu
def test_onnxruntime_cuda_graphs_zero_copy_input_buffer(images: np.ndarray) -> None:
    """Preprocessing that writes into runner.input_buffer feeds the graph without a copy, same results."""
    import cupy as cp

    with _ort(max_batch=8) as direct, _ort(max_batch=8, cuda_graph=True) as graphed:
        stream = graphed.stream
        for step, batch in enumerate((8, 2, 8, 2, 1, 8)):
            x = _rotation(images, step, batch)
            buffer = graphed.input_buffer("images", batch)
            assert buffer.shape == (batch, 3, 640, 640)
            assert buffer.flags.c_contiguous
            with stream:
                buffer.set(x, stream=stream)
            got = graphed.infer({"images": buffer}, stream)["output0"].get(stream=stream)
            again = graphed.input_buffer("images", batch)
            assert again.data.ptr == buffer.data.ptr, "a batch size's graph input must stay where it was captured"
            with stream:
                want = direct.infer({"images": cp.asarray(x)}, stream)["output0"].get(stream=stream)
            np.testing.assert_array_equal(got, want)


@pytest.mark.gpu
@pytest.mark.parametrize("zero_copy", [True, False])
def test_onnxruntime_cuda_graph_input_buffer_zeroes_land_before_the_first_input(
    images: np.ndarray, zero_copy: bool
) -> None:
    """The first use of a graph's input buffer allocates and zeroes it; those zeros must land before the caller's
    first input, whatever else the GPU is doing. Here the thread's legacy default stream is kept busy (the
    runner's and the caller's non-blocking streams do not wait for it): zeros queued there would overwrite the
    input afterwards. Found on the H100 while another process used the GPU (session 13): the first call at a
    batch size ran on a partly zeroed input."""
    import cupy as cp

    from gpu_spin import busy  # tests/gpu_spin.py

    x = _rotation(images, 3, 8)
    with _ort(max_batch=8) as direct, _ort(max_batch=8, cuda_graph=True) as graphed:
        stream = graphed.stream
        with stream:
            feed = cp.asarray(x)
            want = direct.infer({"images": feed}, stream)["output0"].get(stream=stream)
        busy(cp, cp.cuda.Stream.null, 300.0)
        if zero_copy:
            buffer = graphed.input_buffer("images", 8)
            with stream:
                buffer.set(x, stream=stream)
            got = graphed.infer({"images": buffer}, stream)["output0"].get(stream=stream)
        else:
            got = graphed.infer({"images": feed}, stream)["output0"].get(stream=stream)
        cp.cuda.Stream.null.synchronize()  # anything still queued behind the spin has landed now
        np.testing.assert_array_equal(graphed.input_buffer("images", 8).get(stream=stream), x)
        np.testing.assert_array_equal(got, want)
        again = graphed.infer({"images": feed}, stream)["output0"].get(stream=stream)  # a replay
        np.testing.assert_array_equal(again, want)


@pytest.mark.gpu
def test_onnxruntime_cuda_graphs_own_stream_and_strided_inputs(images: np.ndarray) -> None:
    """user_stream=False (ONNX Runtime's stream) and inputs that are views with row padding."""
    import cupy as cp

    with _ort(max_batch=4, user_stream=False) as direct, _ort(max_batch=4, user_stream=False, cuda_graph=True) as graphed:
        assert graphed.cuda_graph, graphed.cuda_graph_problem
        assert "user_compute_stream" not in graphed.provider_options
        stream = cp.cuda.Stream(non_blocking=True)
        for step, batch in enumerate((4, 1, 4, 1, 4)):
            x = _rotation(images, step, batch)
            with stream:
                padded = cp.zeros((batch, 3, 640, 648), dtype=cp.float32)
                padded[..., :640] = cp.asarray(x)
            feed = padded[..., :640]
            assert not feed.flags.c_contiguous
            got = graphed.infer({"images": feed}, stream)["output0"].get(stream=stream)
            want = direct.infer({"images": feed}, stream)["output0"].get(stream=stream)
            np.testing.assert_array_equal(got, want)


@pytest.mark.gpu
def test_onnxruntime_cuda_graphs_survive_buffer_growth(images: np.ndarray) -> None:
    """Buffers sized for batch 2 grow for 8; the graphs of 1 and 2 keep the buffers they were captured with."""
    with _ort(max_batch=2) as direct, _ort(max_batch=2, cuda_graph=True) as graphed:
        assert graphed.capacity == 2
        _check_sequence(graphed, direct, images, graphed.stream, (2, 1, 8, 2, 8, 1, 2, 8))
        assert graphed.capacity == 8
        assert graphed.captured_batches == [1, 2, 8]


@pytest.mark.gpu
def test_onnxruntime_cuda_graphs_fixed_shape_model() -> None:
    """yolox_nano has a fixed batch of 1 and fixed-shape outputs (bound whole, not as batch views)."""
    import cupy as cp
    import cv2

    from letterboxed_media import letterbox

    x = np.stack([letterbox(cv2.imread(str(shared_path(f"media/{name}"))), 416) for name in IMAGES]) * 255.0
    with _ort("models/yolox_nano.onnx") as direct, _ort("models/yolox_nano.onnx", cuda_graph=True) as graphed:
        assert graphed.cuda_graph, graphed.cuda_graph_problem
        stream = graphed.stream
        previous = None
        wanted: list[np.ndarray] = []
        for step in range(8):
            with stream:
                feed = cp.asarray(x[step % len(x)][None])
                if previous is not None:
                    previous.fill(cp.nan)
            previous = graphed.infer({"images": feed}, stream)["output"]
            wanted.append(direct.infer({"images": feed}, stream)["output"].get(stream=stream))
            got = previous.get(stream=stream)
            # on a mismatch, say which input's output came back (a stale input would give an earlier image's)
            same_as = [i for i, w in enumerate(wanted) if np.array_equal(got, w)]
            np.testing.assert_array_equal(got, wanted[-1], err_msg=f"step {step}: the graph's output equals the "
                                          f"direct output of steps {same_as}")
        assert graphed.captured_batches == [1]


@pytest.mark.gpu
def test_onnxruntime_cuda_graphs_off_with_a_reason_for_dynamic_spatial_inputs(caplog: pytest.LogCaptureFixture) -> None:
    """retinaface_mnet025 takes any height and width: no graph per batch size can hold it, so graphs are off,
    said once in the log, and the runner still runs."""
    import cupy as cp

    with caplog.at_level(logging.WARNING, logger="trtapps.runners.onnxruntime_cuda"):
        runner = _ort("models/retinaface_mnet025.onnx", max_batch=2, cuda_graph=True)
    with runner:
        assert not runner.cuda_graph
        problem = runner.cuda_graph_problem or ""
        # ONNX Runtime may refuse the graph session itself (shape nodes on the CPU with copies) before the
        # runner looks at the inputs; either reason is right
        assert "dynamic dimensions other than the batch" in problem or "cannot capture this model" in problem
        assert "enable_cuda_graph" not in runner.provider_options
        out = runner.infer({"input": cp.zeros((2, 3, 320, 480), cp.float32)}, runner.stream)
        assert out["conf"].shape[0] == 2
    assert "CUDA graphs off" in caplog.text


@pytest.mark.gpu
def test_pipeline_detections_identical_with_cuda_graphs() -> None:
    """The whole GPU data path (upload, preprocessing kernel, graph replay, decode + NMS) gives the same
    detections as without graphs, for single images and for full and partial batches."""
    import cv2

    from trtapps.pipeline import Pipeline
    from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaOptions, available
    from trtapps.structures import Frame

    if available() is not None:
        pytest.skip(f"onnxruntime_cuda: {available()}")
    model = str(shared_path(MODEL))
    frames: list[np.ndarray] = []
    for name in IMAGES:
        image = cv2.imread(str(shared_path(f"media/{name}")))
        assert image is not None
        frames.append(image)
    frames += [np.ascontiguousarray(f[:, ::-1]) for f in frames]

    def detections(cuda_graph: bool) -> list[Any]:
        backend = OnnxRuntimeCudaOptions(cudnn_conv_algo_search="HEURISTIC", cuda_graph=cuda_graph)
        with Pipeline.from_objects(app={"type": "yolo", "model": model, "batch_size": 8}, backend=backend) as pipe:
            assert pipe.device_path
            assert getattr(pipe.runner, "cuda_graph", None) is cuda_graph
            results = [pipe.predict(f) for f in frames[:3]]  # batch 1, replayed
            for size in (8, 5, 8, 5):
                batch = [Frame(frames[i % len(frames)], "memory", i) for i in range(size)]
                results += pipe.process_batch(batch)
        assert all(r.error is None for r in results)
        return [r.detections for r in results]

    with_graphs, without = detections(True), detections(False)
    assert len(with_graphs) == len(without) == 3 + 26
    for index, (a, b) in enumerate(zip(with_graphs, without)):
        np.testing.assert_array_equal(a.boxes, b.boxes, err_msg=f"result {index}")
        np.testing.assert_array_equal(a.scores, b.scores, err_msg=f"result {index}")
        np.testing.assert_array_equal(a.class_ids, b.class_ids, err_msg=f"result {index}")
    assert sum(len(d.scores) for d in with_graphs) > 50  # real detections, not empty results compared


class _MemorySource:
    """Frames from memory, read by the pipeline's reader thread (which stages them while inference captures)."""

    def __init__(self, name: str, frames: list[np.ndarray]) -> None:
        self.name = name
        self.frames = frames

    def __iter__(self) -> Any:
        from trtapps.structures import Frame

        return iter(Frame(f, self.name, i) for i, f in enumerate(self.frames))

    def __len__(self) -> int:
        return len(self.frames)

    def close(self) -> None:
        pass


@pytest.mark.gpu
def test_pipeline_over_sources_captures_while_readers_stage() -> None:
    """A run over four sources with graphs on: the inference thread captures (ONNX Runtime captures in global
    mode) while reader threads allocate device slots for frames of new sizes and copy threads copy. Those calls
    used to fail the capture-mode rule ("operation not permitted when stream is capturing", seen in a benchmark
    on 2026-11-24); every frame must now come out, with the detections of the run without graphs."""
    import cv2

    from trtapps.pipeline import Pipeline
    from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaOptions, available

    if available() is not None:
        pytest.skip(f"onnxruntime_cuda: {available()}")
    model = str(shared_path(MODEL))
    images = [cv2.imread(str(shared_path(f"media/{name}"))) for name in IMAGES]
    assert all(image is not None for image in images)
    # sizes change along each source, so readers allocate new slot buffers while the first batches capture
    images += [np.ascontiguousarray(cv2.resize(im, None, fx=0.5 + 0.25 * k, fy=0.5 + 0.25 * k)[:, ::-1])
               for k, im in enumerate(images)]

    def run(cuda_graph: bool) -> dict[tuple[int, int], Any]:
        backend = OnnxRuntimeCudaOptions(cudnn_conv_algo_search="HEURISTIC", cuda_graph=cuda_graph)
        sources = [_MemorySource(f"s{k}", [images[(k + i) % len(images)] for i in range(21)]) for k in range(4)]
        with Pipeline.from_objects(app={"type": "yolo", "model": model, "batch_size": 8}, backend=backend) as pipe:
            assert getattr(pipe.runner, "cuda_graph", None) is cuda_graph
            results = list(pipe.iter_results(write=False, sources=sources))
        assert [r.error for r in results if r.error is not None] == []
        return {(r.source_id, r.index): r.detections for r in results}

    with_graphs, without = run(True), run(False)
    assert len(with_graphs) == len(without) == 4 * 21
    # which frames share a batch depends on the reader threads' timing, so a frame may run at batch 8 in one run
    # and in a partial batch in the other: other convolution kernels, last-bit differences (0.08 px, 2026-11-24).
    # Bitwise equality at a fixed batch composition is test_pipeline_detections_identical_with_cuda_graphs's.
    for key, dets in without.items():
        got = with_graphs[key]
        np.testing.assert_array_equal(got.class_ids, dets.class_ids, err_msg=f"source/frame {key}")
        np.testing.assert_allclose(got.boxes, dets.boxes, atol=0.5, err_msg=f"source/frame {key}")
        np.testing.assert_allclose(got.scores, dets.scores, atol=2e-3, err_msg=f"source/frame {key}")
    assert sum(len(d.scores) for d in without.values()) > 100  # real detections, not empty results compared


# -- TensorRT ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trt_engines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graph_engines")


def _trt(engine_dir: Path, **kwargs: Any) -> Any:
    from trtapps.engine.cache import BuildOptions
    from trtapps.runners.tensorrt import TensorRTRunner

    return TensorRTRunner(shared_path(MODEL), options=BuildOptions(max_batch=8), cache_dir=engine_dir, **kwargs)


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tensorrt_graphs_replay_bitwise_equal_outputs(images: np.ndarray, trt_engines: Path) -> None:
    """Both runners load the same cached engine (same tactics), so graph replays must equal direct enqueues."""
    from trtapps.gpu.stream import new_stream

    stream = new_stream()
    with _trt(trt_engines) as direct, _trt(trt_engines, cuda_graph=True) as graphed:
        assert not graphed.built  # the second runner loaded the engine the first one built
        _check_sequence(graphed, direct, images, stream)
        assert graphed.cuda_graph_problem is None
        assert sorted(s[0][0] for s in graphed.captured_shapes) == [1, 3, 8]


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tensorrt_graphs_zero_copy_and_stream_changes(images: np.ndarray, trt_engines: Path) -> None:
    import cupy as cp

    from trtapps.gpu.stream import new_stream

    streams = [new_stream(), new_stream()]
    with _trt(trt_engines) as direct, _trt(trt_engines, cuda_graph=True) as graphed:
        for step, batch in enumerate((8, 2, 8, 2, 1)):
            stream = streams[step % 2]  # a replay on one stream, the next call's input copy on the other
            x = _rotation(images, step, batch)
            buffer = graphed.input_buffer("images", batch)
            buffer.set(x, stream=stream)
            got = graphed.infer({"images": buffer}, stream)["output0"].get(stream=stream)
            with stream:
                want = direct.infer({"images": cp.asarray(x)}, stream)["output0"].get(stream=stream)
            np.testing.assert_array_equal(got, want)


# -- GraphCache ------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_graph_cache_replays_cupy_work_with_its_own_memory() -> None:
    """A captured function of fixed buffers: replays follow new input values written in place, and memory the
    capture allocated is never handed to anyone else (the garbage written between replays changes nothing)."""
    import cupy as cp

    from trtapps.gpu.graphs import GraphCache, array_key

    stream = cp.cuda.Stream(non_blocking=True)
    rng = np.random.default_rng(0)
    with stream:
        x = cp.asarray(rng.standard_normal((4, 1000)).astype(np.float32))

    def work() -> Any:
        t = cp.exp(x) * 2.0 + 1.0  # temporaries allocated and freed inside the capture
        return cp.sqrt(t).sum(axis=1)

    cache = GraphCache("cupy work")
    key = ("work", array_key(x))
    for _ in range(6):
        values = rng.standard_normal((4, 1000)).astype(np.float32)
        x.set(values, stream=stream)
        got = cache.run(key, work, stream)
        with stream:
            garbage = [cp.full((4, 1000), np.nan, cp.float32) for _ in range(8)]  # from the default pool
        want = np.sqrt(np.exp(values) * np.float32(2.0) + np.float32(1.0)).sum(axis=1)
        np.testing.assert_allclose(got.get(stream=stream), want, rtol=1e-5)
        del garbage
        assert cache.captured(key)
    assert cache.launches == 5
    assert cache.problem is None


@pytest.mark.gpu
def test_graph_cache_falls_back_when_the_work_synchronises(caplog: pytest.LogCaptureFixture) -> None:
    import cupy as cp

    from trtapps.gpu.graphs import GraphCache

    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        x = cp.arange(10, dtype=cp.float32)

    def reads_on_host() -> float:
        return float((x * 2).sum())  # a device→host read: cannot be captured

    cache = GraphCache("host read")
    with caplog.at_level(logging.WARNING, logger="trtapps.gpu.graphs"):
        results = [cache.run("k", reads_on_host, stream) for _ in range(3)]
    assert results == [90.0, 90.0, 90.0]
    assert not cache.captured("k")
    assert cache.problem is not None
    assert caplog.text.count("CUDA graph capture is not possible") == 1
    assert not stream.is_capturing()
    with stream:
        assert float((x + 1).sum()) == 55.0  # the stream and the device are usable after the abandoned capture


@pytest.mark.gpu
def test_graph_cache_captures_yolo_decode_and_nms_exactly(images: np.ndarray) -> None:
    """The YOLOv8 decode kernel, batched NMS and the compact copy to pinned memory, captured: every replay's
    compact result equals the direct one bit for bit, for real heads at batch 1 and 8, with the capacity the app
    plans for this head (all 8400 anchors: NMS allocates its global sort scratch inside the capture)."""
    import cupy as cp
    import cupyx

    from trtapps.gpu.graphs import GraphCache, array_key
    from trtapps.ops.cuda.decode import allocate_candidates, decode_yolov8
    from trtapps.ops.cuda.nms import CompactDetections, nms_batched
    from trtapps.runners.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(shared_path(MODEL)) as cpu:
        heads = np.asarray(cpu.infer({"images": images})["output0"])
    stream = cp.cuda.Stream(non_blocking=True)
    cache = GraphCache("yolo decode+nms")
    capacity, max_det = 8400, 300
    buffers: dict[int, dict[str, Any]] = {}  # everything a graph touches stays allocated, at one address per batch
    for step, batch in enumerate((1, 8, 1, 8)):
        if batch not in buffers:
            with stream:
                buffers[batch] = {
                    "pred": cp.empty((batch, 84, 8400), cp.float32),
                    "params": cp.empty((batch, 6), cp.float32),
                    "candidates": allocate_candidates(batch, capacity, 7),
                    "compact": CompactDetections.allocate(batch, max_det, 7, capacity),
                }
            buffers[batch]["pinned"] = cupyx.empty_pinned((int(buffers[batch]["compact"].storage.size),), np.float32)
        b = buffers[batch]
        head = np.roll(heads, step, axis=0)[:batch]  # new values in the same buffers
        letterbox = np.tile(np.array([[1.0, 1.0, 0.0, 80.0, 640.0, 480.0]], np.float32), (batch, 1))
        b["pred"].set(np.ascontiguousarray(head), stream=stream)
        b["params"].set(letterbox, stream=stream)

        def decode_nms(b: dict[str, Any] = b) -> Any:
            found = decode_yolov8(b["pred"], 0.25, out=b["candidates"], stream=stream)
            result = nms_batched(found, 0.45, max_det=max_det, params=b["params"], out=b["compact"], stream=stream)
            return result.storage  # downloaded outside the graph: CuPy refuses D2H copies during a capture

        with stream:
            decode_nms().get(stream=stream, out=b["pinned"], blocking=False)
        stream.synchronize()
        want = b["pinned"].copy()
        assert want[:batch].view(np.int32).sum() > 0  # detections were kept: a real comparison
        for _ in range(3):
            b["pinned"].fill(np.nan)
            found = cache.run((batch, array_key(b["pred"], b["params"])), decode_nms, stream)
            found.get(stream=stream, out=b["pinned"], blocking=False)
            stream.synchronize()
            np.testing.assert_array_equal(b["pinned"], want)
    assert cache.problem is None, cache.problem
    assert cache.launches == 2 * (3 - 1) + 2 * 3  # per key: one direct warm-up, then launches


# -- threads beside a global-mode capture ----------------------------------------------------------------------------
@pytest.fixture
def global_capture() -> Iterator[Any]:
    """A capture in cudaStreamCaptureModeGlobal on this thread (as ONNX Runtime makes), ended afterwards."""
    import cupy as cp

    stream = cp.cuda.Stream(non_blocking=True)
    stream.begin_capture(cp.cuda.runtime.streamCaptureModeGlobal)
    try:
        yield stream
    finally:
        with contextlib.suppress(Exception):  # an empty or invalidated capture: ending it is all that matters
            stream.end_capture()
        from trtapps.gpu.graphs import clear_last_cuda_error

        clear_last_cuda_error()


def _malloc_in_thread(relax: bool) -> BaseException | None:
    import cupy as cp

    from trtapps.gpu.graphs import relax_capture_mode

    outcome: list[BaseException | None] = []

    def body() -> None:
        try:
            if relax:
                relax_capture_mode()
            ptr = cp.cuda.runtime.malloc(1 << 20)
            cp.cuda.runtime.free(ptr)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=30)
    assert outcome, "the thread did not finish"
    return outcome[0]


@pytest.mark.gpu
def test_relaxed_thread_allocates_during_another_threads_global_capture(global_capture: Any) -> None:
    assert _malloc_in_thread(relax=True) is None


@pytest.mark.gpu
def test_unrelaxed_thread_cannot_allocate_during_another_threads_global_capture(global_capture: Any) -> None:
    """Why relax_capture_mode exists: the CUDA rule it works around, observed."""
    import cupy as cp

    error = _malloc_in_thread(relax=False)
    assert isinstance(error, cp.cuda.runtime.CUDARuntimeError), error
