"""``trtapps bench`` and the soak run on a GPU backend: all three levels, GPU memory, N streams.

No timing thresholds (those belong in benchmarks/results): the assertions check that every GPU-only measurement
is there and consistent, and that the GPU memory monitor sees real allocations.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import shared_path
from trtapps.cli import build_app

pytestmark = pytest.mark.gpu


def test_gpu_memory_monitor_sees_a_cupy_allocation() -> None:
    import cupy

    from trtapps.bench.resources import GpuMemoryMonitor

    with GpuMemoryMonitor(interval=0.005) as monitor:
        block = cupy.empty(256 * 2**20, cupy.uint8)
        block.fill(1)
        cupy.cuda.Device().synchronize()
        time.sleep(0.05)  # several samples while the block lives
        del block
    report = monitor.report()
    assert report["peak"]["cupy_pool_used_mib"] >= 256.0
    assert report["after"]["cupy_pool_used_mib"] < report["peak"]["cupy_pool_used_mib"]
    assert report["device_total_mib"] > report["peak"]["device_used_mib"] > 0
    cupy.get_default_memory_pool().free_all_blocks()


def test_bench_on_onnxruntime_cuda_measures_every_level_and_gpu_memory(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(build_app(), [
        "bench", "--model", str(shared_path("models/yolov8n_dequant.onnx")), "--backend", "onnxruntime_cuda",
        "--video", str(shared_path("media/face_tracker.mp4")), "--batch", "1,8", "--streams", "1,4",
        "--frames", "64", "--iters", "10", "--json", str(out),
    ], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["backend"] == "onnxruntime_cuda"
    assert doc["device"]["kind"] == "gpu"
    assert doc["device"]["name"]
    assert "cupy" in doc["versions"]
    assert [row["batch"] for row in doc["levels"]] == [1, 8]
    for row in doc["levels"]:
        assert row["i_input"] == "device"
        for key in ("i_runner_img_s", "ii_runner_gpu_prepost_img_s", "iii_pipeline_img_s", "ratio_ii_i",
                    "ratio_iii_i"):
            assert row[key] > 0, key
        run = row["pipeline"]
        assert run["frames"] == run["frames_out"] == run["latency"]["count"] == 64
        assert run["cpu"]["ms_per_frame"] > 0
        mem = row["gpu_memory"]
        assert mem["peak"]["device_used_mib"] > mem["before"]["device_used_mib"]  # the model and its buffers
        assert mem["peak"]["device_used_mib"] >= mem["after"]["device_used_mib"]
        assert mem["peak"]["cupy_pool_held_mib"] > 0  # the GPU data path's buffers come from CuPy's pool
    assert [row["streams"] for row in doc["streams"]] == [1, 4]
    for row in doc["streams"]:
        assert row["batch"] == 8
        assert row["aggregate_fps"] > 0
        assert row["pipeline"]["latency"]["count"] == row["pipeline"]["frames"]
        assert row["gpu_memory"]["peak"]["device_used_mib"] > 0
    assert "(ii)" in result.output
    assert "GPU MiB" in result.output


def test_soak_on_the_gpu_samples_device_memory(tmp_path: Path) -> None:
    from trtapps.bench.soak import SoakConfig, run_soak, verdict_lines

    config = SoakConfig(
        model=str(shared_path("models/yolov8n_dequant.onnx")), video=shared_path("media/face_tracker.mp4"),
        minutes=4.0 / 60, backend="onnxruntime_cuda", streams=2, batch=8, interval_s=0.5, warmup_s=1.0,
    )
    doc = run_soak(config)
    assert doc["device"]["kind"] == "gpu"
    assert all(s["gpu_used_mib"] > 0 for s in doc["samples"])
    assert all("cupy_pool_mib" in s for s in doc["samples"])
    verdict = doc["verdict"]
    assert verdict["gpu"] is not None
    assert verdict["gpu"]["samples"] >= 2
    assert verdict["frames"]["balanced"]
    assert verdict["frames"]["failed"] == 0
    assert verdict["frames"]["out"] > 0
    assert any(line.startswith("GPU memory: ") for line in verdict_lines(doc))
