"""``trtapps bench`` on the CPU: the measuring pieces on known inputs, and short real runs through the CLI.

The runs use a tiny YOLOv8-shaped model made here (dynamic batch, microseconds per call) so several batch sizes
and stream counts fit in a second, plus one run of the real YOLOX-nano. No timing thresholds: the assertions are
about what was measured (keys present, counts exact, numbers positive and consistent), never how fast.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import onnx
from conftest import benchmark_script, shared_path
from onnx import TensorProto, helper, numpy_helper
from trtapps.bench import LatencyRecorder, ListSource, LoopingVideoSource, latency_summary
from trtapps.bench.levels import MIN_CALLS, time_calls
from trtapps.bench.resources import CpuClock, rss_mib
from trtapps.bench.sources import ENTERED, read_image_frames, read_video_frames
from trtapps.bench.streams import per_stream_frames, stream_sources
from trtapps.cli import build_app, main
from trtapps.errors import InputError


def tiny_yolo(path: Path, classes: int = 2, size: int = 64) -> Path:
    """A YOLOv8-shaped detector: images [N, 3, 64, 64] → [N, 4 + classes, 64] through one strided conv."""
    rng = np.random.default_rng(0)
    channels = 4 + classes
    weights = numpy_helper.from_array(rng.normal(0, 0.05, (channels, 3, 8, 8)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([0, channels, -1], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Reshape", ["c", "shape"], ["r"]),
        helper.make_node("Sigmoid", ["r"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", channels, (size // 8) ** 2])],
        [weights, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def write_video(path: Path, frames: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for i in range(frames):
        writer.write(np.full((64, 96, 3), 20 * i, np.uint8))
    writer.release()
    return path


# -- latency --------------------------------------------------------------------------------------------------------
def test_latency_is_matched_by_source_and_index() -> None:
    rec = LatencyRecorder()
    rec.entered("a", 0, at=1.0)
    rec.entered("b", 0, at=1.5)
    rec.entered("a", 1, at=2.0)
    rec.arrived("b", 0, at=1.75)
    rec.arrived("a", 0, at=3.0)
    rec.arrived("x", 9, at=3.0)  # never entered: counted apart, not a sample
    assert rec.samples == [0.25, 2.0]
    assert rec.unmatched == 1
    assert rec.pending == 1  # ("a", 1) is still inside


def test_latency_summary_percentiles_in_ms() -> None:
    summary = latency_summary([i / 1000 for i in range(1, 101)])  # 1 … 100 ms
    assert summary["count"] == 100
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["max_ms"] == pytest.approx(100.0)
    assert summary["mean_ms"] == pytest.approx(50.5)
    assert latency_summary([])["p50_ms"] is None


# -- sources --------------------------------------------------------------------------------------------------------
def test_list_source_cycles_from_its_offset_and_stamps_entry() -> None:
    images = [np.full((4, 6, 3), v, np.uint8) for v in (0, 1, 2)]
    rec = LatencyRecorder()
    source = ListSource(images, total=5, name="cam", recorder=rec, offset=1)
    frames = list(source)
    assert len(source) == 5
    assert source.yielded == 5
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 0, 1, 2]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert all(f.source == "cam" for f in frames)
    stamps = [f.meta[ENTERED] for f in frames]
    assert stamps == sorted(stamps)
    assert rec.pending == 5


def test_stream_sources_have_distinct_names_and_offsets() -> None:
    images = [np.full((4, 6, 3), v, np.uint8) for v in range(8)]
    sources = stream_sources(images, streams=4, per_stream=3)
    assert [s.name for s in sources] == ["stream0", "stream1", "stream2", "stream3"]
    assert [int(next(iter(s)).image[0, 0, 0]) for s in sources] == [0, 2, 4, 6]
    assert per_stream_frames(total=100, streams=3, batch=8) == 34
    assert per_stream_frames(total=10, streams=4, batch=8) == 8  # at least one batch per stream


def test_looping_video_source_reopens_the_file_until_stopped(tmp_path: Path) -> None:
    video = write_video(tmp_path / "six.avi", frames=6)
    stop = threading.Event()
    source = LoopingVideoSource(video, stop=stop)
    indices = []
    for frame in source:
        indices.append(frame.index)
        if len(indices) == 15:
            stop.set()
    assert indices == list(range(15))  # indices keep counting across passes
    assert source.yielded == 15
    assert source.passes == 3  # two whole passes, then the third cut short
    assert len(source) == 0


def test_looping_video_source_stops_at_its_deadline(tmp_path: Path) -> None:
    video = write_video(tmp_path / "six.avi")
    source = LoopingVideoSource(video, deadline=time.perf_counter() + 0.2)
    assert sum(1 for _ in source) > 6  # looped at least once within the time


def test_looping_nvdec_source_decodes_pass_after_pass_with_rising_indices(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nvdec_fakes import install_fake_nvdec, make_packets  # tests/nvdec_fakes.py: NVDEC without a GPU
    from trtapps.bench.sources import LoopingNvdecSource
    from trtapps.errors import BackendUnavailableError
    from trtapps.stages import FrameFailure

    make = install_fake_nvdec(monkeypatch, tmp_path)
    clip, _ = make(make_packets(8, fail=(5,)))
    stop = threading.Event()
    source = LoopingNvdecSource(clip, stop=stop, name="stream3", worker="thread")
    items = []
    for item in source:
        items.append(item)
        if len(items) == 20:
            stop.set()
    assert [i.index for i in items] == list(range(20))  # indices keep counting across passes
    assert {i.source for i in items} == {"stream3"}
    failed = [i.index for i in items if isinstance(i, FrameFailure)]
    assert len(failed) == 3
    assert failed == [failed[0], failed[0] + 8, failed[0] + 16]  # one a pass, in place
    frames = [i for i in items if not isinstance(i, FrameFailure)]
    assert all(f.pixel_format == "nv12" and ENTERED in f.meta for f in frames)
    assert source.passes == 3
    assert source.describe()["decoder"] == "nvdec"
    source.close()
    make(make_packets(8), codec="NumCodecs")
    with pytest.raises(BackendUnavailableError, match="NVDEC cannot decode it here: its codec is not one"):
        LoopingNvdecSource(clip)


def test_sources_name_the_option_when_the_input_is_bad(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^--video .*nothing\.mp4: cannot open"):
        read_video_frames(tmp_path / "nothing.mp4", 4)
    with pytest.raises(InputError, match=r"^--images .*: no readable image"):
        read_image_frames(tmp_path, 4)
    with pytest.raises(InputError, match="cannot open the video"):
        LoopingVideoSource(tmp_path / "nothing.mp4")
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((8, 8, 3), np.uint8))
    assert len(read_image_frames(tmp_path, 4)) == 1  # the unreadable file is passed over


# -- resources and timing -------------------------------------------------------------------------------------------
def test_cpu_clock_counts_busy_time_per_frame() -> None:
    with CpuClock() as clock:
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
    per_frame = clock.per_frame(10)
    assert per_frame["ms_per_frame"] >= 5.0 * 0.9  # 50 ms of CPU over 10 frames (process_time resolution)
    assert per_frame["user_ms_per_frame"] + per_frame["system_ms_per_frame"] > 0
    assert per_frame["cores_busy"] > 0


def test_rss_is_read_from_proc_status(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmRSS:\t  204800 kB\n", encoding="ascii")
    assert rss_mib(status) == 200.0
    status.write_text("Name:\tpython\n", encoding="ascii")
    with pytest.raises(OSError, match="no VmRSS"):
        rss_mib(status)
    if Path("/proc/self/status").exists():
        assert rss_mib() > 1.0


def test_time_calls_stops_after_its_budget_with_a_minimum_of_calls() -> None:
    calls = []
    times = time_calls(lambda: calls.append(time.sleep(0.01)), lambda: None, iters=1000, budget_s=0.0, warmup=2)
    assert len(times) == MIN_CALLS
    assert len(calls) == MIN_CALLS + 2
    assert len(time_calls(lambda: None, lambda: None, iters=7, budget_s=60.0, warmup=0)) == 7


# -- the command ----------------------------------------------------------------------------------------------------
def _invoke(args: list[str]) -> object:
    result = CliRunner().invoke(build_app(), ["bench", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_cpu_bench_measures_levels_streams_latency_and_cpu_time(tmp_path: Path) -> None:
    model = tiny_yolo(tmp_path / "tiny.onnx")
    video = write_video(tmp_path / "clip.avi", frames=6)
    out = tmp_path / "bench.json"
    result = _invoke([
        "--model", str(model), "--video", str(video), "--backend", "onnxruntime", "--batch", "1,4",
        "--streams", "1,3", "--frames", "12", "--iters", "3", "--json", str(out), "--plots", str(tmp_path / "png"),
        "-q",
    ])
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "trtapps bench"
    assert doc["backend"] == "onnxruntime"
    assert doc["device"]["kind"] == "cpu"
    assert doc["command"].startswith("trtapps bench --model ")
    assert {"python", "trtapps", "numpy", "onnxruntime", "opencv"} <= set(doc["versions"])
    assert doc["input"] == {"video": "clip.avi", "distinct_frames": 6, "size": "96x64"}

    assert [row["batch"] for row in doc["levels"]] == [1, 4]
    for row in doc["levels"]:
        run = row["pipeline"]
        assert _positive(row["i_runner_img_s"])
        assert _positive(row["iii_pipeline_img_s"])
        assert row["ratio_iii_i"] == pytest.approx(row["iii_pipeline_img_s"] / row["i_runner_img_s"], abs=6e-4)
        assert row["i_input"] == "host"
        assert row["ii_runner_gpu_prepost_img_s"] is None  # CPU backend: no GPU level
        assert row["gpu_memory"] is None
        assert run["frames"] == run["frames_in"] == run["frames_out"] == 12
        assert run["frames_dropped"] == 0
        assert run["latency"]["count"] == 12
        assert 0 < run["latency"]["p50_ms"] <= run["latency"]["p99_ms"] <= run["latency"]["max_ms"]
        assert _positive(run["cpu"]["ms_per_frame"])
        assert {"preprocess", "infer", "decode"} <= set(run["stages_ms_per_frame"])

    assert [row["streams"] for row in doc["streams"]] == [1, 3]
    for row in doc["streams"]:
        run = row["pipeline"]
        assert row["batch"] == 4  # the largest batch's pipeline runs the streams
        assert run["frames"] == row["streams"] * row["frames_per_stream"] == run["latency"]["count"]
        assert _positive(row["aggregate_fps"])
        assert row["fps_per_stream"] == pytest.approx(row["aggregate_fps"] / row["streams"], abs=0.1)

    assert "three levels" in result.output
    assert "N streams" in result.output
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "latency_per_batch.png", "streams_fps.png", "throughput_vs_batch.png"
    ]
    assert all(p.stat().st_size > 1000 for p in (tmp_path / "png").iterdir())

    shown = _invoke(["--show", str(out)])  # a saved document prints again, without measuring
    assert "three levels" in shown.output
    assert "tiny.onnx" in shown.output


def test_cpu_bench_on_a_real_model_with_a_fixed_batch(tmp_path: Path) -> None:
    """YOLOX-nano takes batch 1 only: asking for 1 and 2 measures batch 1 once and says why."""
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(build_app(), [
        "bench", "--model", str(shared_path("models/yolox_nano.onnx")), "--backend", "onnxruntime",
        "--images", str(shared_path("media")), "--batch", "1,2", "--frames", "4", "--iters", "3",
        "--json", str(out),
    ], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert [row["batch"] for row in doc["levels"]] == [1]
    assert "accepts at most batch 1; skipped" in result.output
    assert doc["input"]["size"].endswith("sizes")  # the shared photos differ in size
    row = doc["levels"][0]
    assert _positive(row["i_runner_img_s"])
    assert row["pipeline"]["frames_out"] == 4
    assert row["pipeline"]["latency"]["count"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--video", "x.mp4"], "--model is required"),
        (["--model", "m.onnx"], "give exactly one of --video FILE or --images FOLDER"),
        (["--model", "m.onnx", "--video", "a.mp4", "--images", "d"], "give exactly one of"),
        (["--model", "m.onnx", "--video", "a.mp4", "--batch", "1,x"], "--batch '1,x': expected positive integers"),
        (["--model", "m.onnx", "--video", "a.mp4", "--streams", "0"], "--streams '0': expected positive integers"),
    ],
)
def test_bad_options_are_one_line_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert message in err[0]


def test_plots_without_matplotlib_fail_before_measuring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(SystemExit):
        main(["bench", "--model", "missing.onnx", "--video", "missing.mp4", "--plots", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert err == "error: --plots needs matplotlib: pip install 'trtapps[bench]' (or leave out --plots)"


def test_show_refuses_a_file_that_is_not_a_bench_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"mAP50": 0.5}')
    with pytest.raises(SystemExit):
        main(["bench", "--show", str(other)])
    assert "not a document written by trtapps bench --json" in capsys.readouterr().err


# -- soak -----------------------------------------------------------------------------------------------------------
def _samples(rss: list[float], step: float = 5.0) -> list[dict]:
    return [{"t": i * step, "frames": 10 * i, "fps": None, "rss_mib": v} for i, v in enumerate(rss)]


def test_growth_compares_the_ends_after_the_warm_up() -> None:
    from trtapps.bench.soak import growth

    # a big warm-up climb (left out), then flat with a transient peak: flat
    flat = _samples([100, 300, 400, 401, 399, 460, 400, 401, 400])
    result = growth(flat, "rss_mib", warmup_s=10.0, limit=0.02)
    assert result["ok"]
    assert result["start_mib"] == 400.5  # medians of the first and last two of the seven samples after it
    assert result["end_mib"] == 400.5
    assert result["peak_mib"] == 460.0
    # a steady climb of 1 % per sample: 6 % between the windows
    leak = _samples([100, *[400 * 1.01**i for i in range(9)]])
    result = growth(leak, "rss_mib", warmup_s=5.0, limit=0.02)
    assert not result["ok"]
    assert result["growth"] == pytest.approx(1.01**6 - 1, abs=1e-3)
    # the sample after the run (queues freed) does not count
    after = [*_samples([400, 400, 400, 400]), {"t": 99.0, "frames": 40, "fps": None, "rss_mib": 300.0,
                                                "after_run": True}]
    assert growth(after, "rss_mib", warmup_s=0.0, limit=0.02)["end_mib"] == 400.0
    too_short = growth(_samples([400, 400]), "rss_mib", warmup_s=5.0, limit=0.02)
    assert not too_short["ok"]
    assert "fewer than 2 samples" in too_short["reason"]


def test_judge_names_every_reason_to_fail() -> None:
    from trtapps.bench.soak import judge

    frames = {"yielded": 100, "in": 100, "out": 98, "dropped": 2, "failed": 0, "seen": 98}
    passing = judge(_samples([400] * 6), 5.0, 0.02, frames, gpu=False)
    assert passing["ok"], passing["reasons"]
    assert passing["frames"]["balanced"]
    assert passing["gpu"] is None

    lost = {**frames, "out": 97}
    leaking = _samples([400, 400, 400, 400, 420, 440, 460])
    failing = judge(leaking, 0.0, 0.02, {**lost, "failed": 3}, gpu=False)
    assert not failing["ok"]
    assert len(failing["reasons"]) == 3
    assert "RSS grew" in failing["reasons"][0]
    assert "unaccounted" in failing["reasons"][1]
    assert failing["reasons"][2] == "3 frames failed"

    with_gpu = [{**s, "gpu_used_mib": 1000.0 + 100 * i} for i, s in enumerate(_samples([400] * 6))]
    gpu = judge(with_gpu, 0.0, 0.02, frames, gpu=True)
    assert not gpu["ok"]
    assert gpu["reasons"] == [f"GPU memory grew {100 * (1450 / 1050 - 1):.2f} % (limit 2 %)"]


def _glibc_mallinfo2() -> bool:
    import platform

    lib, version = platform.libc_ver()
    return lib == "glibc" and tuple(int(x) for x in version.split(".")[:2]) >= (2, 33)


@pytest.mark.skipif(not _glibc_mallinfo2(), reason="mallinfo2 is glibc 2.33+ only")
def test_malloc_mib_counts_a_large_buffer_as_heap_in_use() -> None:
    from trtapps.bench.soak import malloc_mib

    before = malloc_mib()
    assert before is not None
    buffer = np.ones(64 << 20, np.uint8)  # large enough to be mmapped by malloc: counted in use all the same
    during = malloc_mib()
    assert during is not None
    assert during["heap_used_mib"] - before["heap_used_mib"] == pytest.approx(64, abs=4)
    assert during["heap_free_mib"] >= 0
    del buffer


def test_verdict_tells_fragmentation_from_a_leak() -> None:
    from trtapps.bench.soak import judge, verdict_lines

    frames = {"yielded": 10, "in": 10, "out": 10, "dropped": 0, "failed": 0, "seen": 10}
    rss = [400, 400, 400, 410, 420, 430]
    # RSS grows while the heap in use stays flat: free memory kept by the allocator
    kept = [{**s, "heap_used_mib": 150.0, "heap_free_mib": 20.0 + 10 * i} for i, s in enumerate(_samples(rss))]
    verdict = judge(kept, 0.0, 0.02, frames, gpu=False)
    assert verdict["reasons"] == ["RSS grew 6.25 % (limit 2 %)"]
    assert verdict["heap"]["used"]["ok"]
    assert not verdict["heap"]["free"]["ok"]  # reported, never judged
    lines = verdict_lines({"verdict": verdict})
    assert any(line.startswith("malloc heap: in use 150.0 → 150.0 MiB") for line in lines)
    assert any("fragmentation" in line for line in lines)
    # the heap in use grows with RSS: a leak, no such note
    leak = [{**s, "heap_used_mib": 150.0 + 10 * i, "heap_free_mib": 20.0} for i, s in enumerate(_samples(rss))]
    lines = verdict_lines({"verdict": judge(leak, 0.0, 0.02, frames, gpu=False)})
    assert not any("fragmentation" in line for line in lines)
    # samples without the heap figures (not glibc): no heap line
    assert judge(_samples(rss), 0.0, 0.02, frames, gpu=False)["heap"] is None


def test_soak_run_samples_and_accounts_for_every_frame(tmp_path: Path) -> None:
    from trtapps.bench.soak import SoakConfig, run_soak, soak_table, verdict_lines

    config = SoakConfig(model=str(tiny_yolo(tmp_path / "tiny.onnx")), video=write_video(tmp_path / "clip.avi"),
                        minutes=2.0 / 60, backend="onnxruntime", streams=2, batch=2, interval_s=0.25,
                        warmup_s=0.5)
    seen: list[dict] = []
    doc = run_soak(config, on_sample=seen.append)
    assert seen == doc["samples"]
    assert len(doc["samples"]) >= 5
    assert doc["samples"][-1]["after_run"]
    assert all(s["rss_mib"] > 0 for s in doc["samples"])
    if _glibc_mallinfo2():
        assert all(s["heap_used_mib"] > 0 for s in doc["samples"])
    assert [s["frames"] for s in doc["samples"]] == sorted(s["frames"] for s in doc["samples"])
    frames = doc["verdict"]["frames"]
    assert frames["yielded"] == frames["in"] == frames["out"] == frames["seen"] > 12  # looped past one pass
    assert frames["dropped"] == frames["failed"] == 0
    assert frames["balanced"]
    assert sum(doc["per_stream_frames"].values()) == frames["yielded"]
    assert doc["backend"] == "onnxruntime"
    assert doc["device"]["kind"] == "cpu"
    assert doc["verdict"]["rss"]["samples"] >= 2
    assert 1.9 <= doc["seconds"] < 30
    lines = verdict_lines(doc)
    assert lines[-1].startswith("verdict: ")
    assert any(line.startswith("RSS: ") for line in lines)
    assert soak_table(doc).row_count >= 2


def test_soak_script_runs_and_writes_its_json(tmp_path: Path) -> None:
    script: Any = benchmark_script("soak")
    out = tmp_path / "soak.json"
    code = script.main([
        "--minutes", str(1.5 / 60), "--backend", "onnxruntime", "--model", str(tiny_yolo(tmp_path / "t.onnx")),
        "--video", str(write_video(tmp_path / "clip.avi")), "--interval", "0.25", "--warmup", "0.25",
        "--json", str(out),
    ])
    doc = json.loads(out.read_text())
    assert code == (0 if doc["verdict"]["ok"] else 1)
    assert doc["command"].startswith("python benchmarks/soak.py --minutes ")
    assert doc["verdict"]["frames"]["balanced"]


# -- the Ultralytics comparison's fairness check (the script itself runs on the GPU machine) --------------------------
def test_peer_matching_pairs_same_class_boxes_best_first() -> None:
    peer: Any = benchmark_script("peer_ultralytics")
    ref = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float64)
    ours = np.array([[21, 20, 30, 30], [0, 0, 10, 11], [50, 50, 60, 60], [80, 80, 90, 90]], np.float64)
    pairs = peer.match(ref, np.array([0, 1, 2]), ours, np.array([1, 0, 5, 0]))
    assert sorted((i, j) for i, j, _ in pairs) == [(0, 1), (1, 0)]  # box 2 differs in class: no pair
    assert [round(iou, 3) for _, _, iou in sorted(pairs)] == [round(100 / 110, 3), 0.9]
    assert peer.match(ref, np.array([0, 1, 2]), ours[:0], np.array([], np.int64)) == []

    dets = {"boxes": ref, "scores": np.array([0.9, 0.8, 0.7]), "cls": np.array([0, 1, 2])}
    shifted = {"boxes": ours[:3], "scores": np.array([0.75, 0.88, 0.7]), "cls": np.array([1, 0, 2])}
    report = peer.agreement([dets, dets], [shifted, dets])
    assert report["frames"] == 2
    assert report["matched"] == 6
    assert report["only_ultralytics"] == report["only_trtapps"] == 0
    assert report["min_matched_iou"] == pytest.approx(0.9)
    assert report["max_score_diff"] == pytest.approx(0.05)


def test_a_default_gpu_run_lasts_about_three_seconds_at_the_runner_rate() -> None:
    from trtapps.bench.core import MAX_DEFAULT_FRAMES, default_frames

    assert default_frames(False, 5000.0) == 128  # the CPU: a fixed, small run
    assert default_frames(True, None) == 1024
    assert default_frames(True, 100.0) == 1024  # never fewer than 1,024 frames
    assert default_frames(True, 3000.0) == 9000
    assert default_frames(True, 1e6) == MAX_DEFAULT_FRAMES
