"""End-to-end runs with the real models and media: the CLI, every frame accounted for, bad input, Ctrl-C,
lifecycle hooks, and the Python API (files, objects, iteration, predict, futures from many threads)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, shared_path
from trtapps import ComponentSpec, PostprocessorOptions, hookimpl
from trtapps.cli import main
from trtapps.errors import ModelError, OutputError, PipelineClosedError, StageError
from trtapps.lifecycle import ErrorAction
from trtapps.pipeline import Pipeline


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def yolo_app(**extra) -> dict:
    return {"type": "yolo", "model": str(shared_path("models/yolov8n_dequant.onnx")), **extra}


def test_cli_run_on_images_writes_every_frame_and_the_bus(tmp_path: Path, capsys) -> None:
    shared_path("media/bus.jpg")
    main(["run", str(REPO / "configs" / "yolo_images.yaml"), "--output", str(tmp_path), "--quiet"])
    lines = jsonl(tmp_path / "results.jsonl")
    names = sorted(Path(line["source"]).name for line in lines)
    assert names == ["bus.jpg", "group.jpg", "street.jpg", "zidane.jpg"]
    bus = next(line for line in lines if line["source"].endswith("bus.jpg"))
    labels = sorted(d["label"] for d in bus["detections"])
    assert labels == ["bus", "person", "person", "person", "person"]
    assert (tmp_path / "images" / "bus.jpg").is_file()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_in"] == summary["frames_out"] == 4
    assert "frames in 4 · out 4 · failed 0" in capsys.readouterr().err


def test_cli_run_source_replaces_the_files_source(tmp_path: Path) -> None:
    # the README's `trtapps run configs/… --source other` on a file that has a source: section of its own
    bus, zidane = shared_path("media/bus.jpg"), shared_path("media/zidane.jpg")
    main(["run", str(REPO / "configs" / "yolo_images.yaml"), "--source", str(zidane), "--source", str(bus),
          "--output", str(tmp_path), "--quiet"])
    lines = jsonl(tmp_path / "results.jsonl")
    assert sorted(Path(line["source"]).name for line in lines) == ["bus.jpg", "zidane.jpg"]
    assert {line["source_id"] for line in lines} == {0}  # images side by side are one source


def test_yolox_and_retinaface_end_to_end(tmp_path: Path) -> None:
    bus = shared_path("media/bus.jpg")
    main(["predict", "--app", "yolo", "--model", str(shared_path("models/yolox_nano.onnx")), "--source", str(bus),
          "--conf", "0.3", "--output", str(tmp_path / "x"), "--quiet"])
    (line,) = jsonl(tmp_path / "x" / "results.jsonl")
    got = sorted(((d["label"], round(d["score"], 2)) for d in line["detections"]), key=lambda t: -t[1])
    assert got[0] == ("bus", pytest.approx(0.91, abs=0.011))
    assert [s for label, s in got if label == "person"] == pytest.approx([0.855, 0.806, 0.687], abs=0.011)
    main(["predict", "--app", "retinaface", "--model", str(shared_path("models/retinaface_mnet025.onnx")),
          "--source", str(shared_path("media/group.jpg")), "--output", str(tmp_path / "f"), "--quiet"])
    (line,) = jsonl(tmp_path / "f" / "results.jsonl")
    assert len(line["detections"]) == 24
    assert all(len(d["landmarks"]) == 5 for d in line["detections"])


def test_video_run_accounts_for_every_frame(tmp_path: Path) -> None:
    video = shared_path("media/vtest.avi")
    pipe = Pipeline.from_objects(
        app=yolo_app(batch_size=4),
        source={"type": "video", "path": str(video), "max_frames": 30},
        sinks=[{"type": "jsonl"}, {"type": "video"}],
        output=tmp_path,
    )
    summary = pipe.run()
    lines = jsonl(tmp_path / "results.jsonl")
    assert [line["frame"] for line in lines] == list(range(30))
    assert summary.frames_in == summary.frames_out == 30
    assert sum(len(line["detections"]) for line in lines) > 30  # people walk through every frame
    cap = cv2.VideoCapture(str(next(tmp_path.glob("*.mp4"))))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30


def test_corrupt_and_empty_images_are_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_good.jpg").write_bytes(shared_path("media/zidane.jpg").read_bytes())
    (folder / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    (folder / "c_empty.png").write_bytes(b"")
    (folder / "d_good.jpg").write_bytes(shared_path("media/bus.jpg").read_bytes())
    summary = Pipeline.from_objects(app=yolo_app(), source={"type": "images", "path": str(folder)},
                                    sinks=[{"type": "jsonl"}], output=tmp_path / "out").run()
    lines = jsonl(tmp_path / "out" / "results.jsonl")
    assert [Path(line["source"]).name for line in lines] == ["a_good.jpg", "b_corrupt.jpg", "c_empty.png", "d_good.jpg"]
    assert "error" in lines[1]
    assert "error" in lines[2]
    assert "b_corrupt.jpg" in lines[1]["error"] or "decode" in lines[1]["error"]
    assert lines[0]["detections"]
    assert lines[3]["detections"]
    assert (summary.frames_in, summary.frames_out, summary.frames_failed) == (4, 4, 2)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trtapps", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_bad_config_is_one_line_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("source: {type: images, path: x.jpg}\napp:\n  type: yolo\n  model: m.onnx\n  conf_threshold: 2\n")
    proc = _cli("validate", str(config))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: {config}:5:19: app.conf_threshold: input should be less than or equal to 1 (got 2)"
    )
    assert "Traceback" not in proc.stderr
    proc = _cli("validate", str(config), env={"TRTAPPS_FULL_ERROR": "1"})
    assert "Traceback" in proc.stderr


def test_outputs_that_cannot_be_written_are_one_line(tmp_path: Path) -> None:
    config = str(REPO / "configs" / "yolo_images.yaml")
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("not a folder")
    proc = _cli("run", config, "--quiet", "--output", str(in_the_way))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: sink 'jsonl': {in_the_way}: a file is in the way of a folder; choose an output folder you can "
        "write (--output, or the pipeline's output:) or change the sink's path"
    )
    proc = _cli("run", config, "--quiet", "--batch", "5000", "--output", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: --batch 5000: input should be less than or equal to 1024 (app.batch_size of {config})"


def test_a_summary_that_cannot_be_written_fails_the_run(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the summary's folder should be")
    pipe = Pipeline.from_objects(app=yolo_app(), source={"type": "images", "path": str(shared_path("media/bus.jpg"))},
                                 sinks=[{"type": "jsonl"}, {"type": "summary", "path": str(blocked / "s.json")}],
                                 output=tmp_path / "out")
    with pytest.raises(OutputError, match=r"closing the outputs: .*blocked"):
        pipe.run()
    assert len(jsonl(tmp_path / "out" / "results.jsonl")) == 1  # the other outputs were completed


def test_predict_errors_name_the_options_the_user_typed(tmp_path: Path) -> None:
    base = ["predict", "--app", "yolo", "--model", str(shared_path("models/yolov8n_dequant.onnx")),
            "--source", str(shared_path("media/bus.jpg")), "--output", str(tmp_path), "--quiet"]
    proc = _cli(*base, "--backend", "foo")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --backend (backend.type): unknown backend 'foo'")
    proc = _cli(*base, "--imgsz", "320")
    assert proc.returncode == 2
    assert "but --imgsz (app.input_size) is 320x320" in proc.stderr


def test_missing_and_corrupt_models_are_one_line(tmp_path: Path) -> None:
    image = str(shared_path("media/bus.jpg"))
    proc = _cli("predict", "--app", "yolo", "--model", str(tmp_path / "nope.onnx"), "--source", image)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: {tmp_path / 'nope.onnx'}: model file not found")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(shared_path("models/yolox_nano.onnx").read_bytes()[:5000])
    proc = _cli("predict", "--app", "yolo", "--model", str(broken), "--source", image)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "not a loadable ONNX model" in proc.stderr
    proc = _cli("predict", "--app", "yolo", "--model", str(shared_path("models/osnet_x0_25_msmt17.onnx")),
                "--source", image)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "osnet_x0_25_msmt17.onnx" in proc.stderr


def test_ctrl_c_leaves_valid_outputs(tmp_path: Path) -> None:
    """SIGINT in the middle of a video run, and again while it closes its outputs: complete JSONL lines, a
    playable video, summary.json, exit status 130."""
    video = shared_path("media/vtest.avi")
    model = shared_path("models/yolov8n_dequant.onnx")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trtapps", "predict", "--app", "yolo", "--model", str(model), "--source", str(video),
         "--output", str(tmp_path), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell that started us in the background leaves SIGINT ignored; a user's terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    results = tmp_path / "results.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 5):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # an impatient second press, while the outputs are closed or just after
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["error"] == "interrupted"
    lines = results.read_text().splitlines()
    assert 5 <= len(lines) < 795
    frames = [json.loads(line)["frame"] for line in lines]  # every line parses
    assert frames == list(range(len(frames)))
    cap = cv2.VideoCapture(str(tmp_path / "vtest.mp4"))
    ok, frame = cap.read()
    assert ok
    assert frame.shape == (576, 768, 3)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= len(lines) - 8  # the writer was closed, not truncated


def test_the_summary_counts_the_frames_a_truncated_video_never_delivered(tmp_path: Path) -> None:
    cut = tmp_path / "cut.avi"
    cut.write_bytes(shared_path("media/vtest.avi").read_bytes()[:300_000])  # the header still promises 795
    sinks = [{"type": "summary", "path": str(tmp_path / "s.json")}]
    Pipeline.from_objects(app=yolo_app(batch_size=8), source={"type": "video", "path": str(cut)}, sinks=sinks,
                          backend="onnxruntime").run()
    summary = json.loads((tmp_path / "s.json").read_text())
    (source,) = summary["sources"]
    assert source["frames_in_header"] == 795
    assert 0 < summary["frames_in"] < 795
    assert source["undelivered"] == 795 - summary["frames_in"]


def test_an_interrupted_run_accounts_for_every_frame_it_read(tmp_path: Path) -> None:
    """Frames read but still queued when Ctrl-C came are counted as unfinished, next to those written."""
    source = {"type": "video", "path": str(shared_path("media/vtest.avi")), "max_frames": 300}
    sinks = [{"type": "jsonl", "path": str(tmp_path / "out.jsonl")}, {"type": "summary", "path": str(tmp_path / "s.json")}]
    pipe = Pipeline.from_objects(app={"type": "yolo", "model": str(shared_path("models/yolox_nano.onnx")),
                                      "batch_size": 4}, source=source, sinks=sinks, backend="onnxruntime")

    def stop_after_some(result: object, summary: object) -> None:
        if len((tmp_path / "out.jsonl").read_text().splitlines()) >= 12:
            raise KeyboardInterrupt

    with pipe, pytest.raises(KeyboardInterrupt):
        pipe.run(on_result=stop_after_some)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["error"] == "interrupted"
    assert summary["sources"] == [{"name": source["path"], "type": "VideoSource", "decoder": "opencv",
                                   "frames_in_header": 795, "fps": 10.0, "undelivered": 0}]
    assert summary["cuda_mps"] is None
    written = len((tmp_path / "out.jsonl").read_text().splitlines())
    assert summary["frames_out"] == written
    assert summary["frames_unfinished"] > 0  # the readers were ahead of the model
    assert summary["frames_in"] == summary["frames_out"] + summary["frames_dropped"] + summary["frames_unfinished"]


def test_results_abandoned_by_their_reader_close_the_run_and_say_so(tmp_path: Path) -> None:
    source = {"type": "video", "path": str(shared_path("media/vtest.avi")), "max_frames": 200}
    sinks = [{"type": "summary", "path": str(tmp_path / "s.json")}]
    with Pipeline.from_objects(app={"type": "yolo", "model": str(shared_path("models/yolox_nano.onnx")),
                                    "batch_size": 4}, source=source, sinks=sinks, backend="onnxruntime") as pipe:
        results = pipe.iter_results()
        taken = [next(results) for _ in range(6)]
        results.close()  # the reader has seen enough
    summary = json.loads((tmp_path / "s.json").read_text())
    assert len(taken) == 6
    assert summary["error"] == "abandoned"
    assert summary["frames_in"] == summary["frames_out"] + summary["frames_dropped"] + summary["frames_unfinished"]


class Recorder:
    """A plugin implementing every lifecycle hook."""

    def __init__(self, action: ErrorAction | None = None) -> None:
        self.calls: list[str] = []
        self.action = action
        self.errors: list[StageError] = []

    @hookimpl
    def trtapps_configure(self, config, context):
        self.calls.append("configure")
        context.stash  # noqa: B018 - plugins keep state here

    @hookimpl
    def trtapps_pipeline_started(self, info, context):
        self.calls.append(f"started:{info.app}:{info.backend}")

    @hookimpl
    def trtapps_pipeline_finished(self, info, summary, context):
        self.calls.append(f"finished:{summary.frames_out}:{summary.error}")

    @hookimpl
    def trtapps_handle_stage_error(self, error, context):
        self.errors.append(error)
        return self.action

    @hookimpl
    def trtapps_register_postprocessors(self, register):
        class ExplodeOptions(PostprocessorOptions):
            type: str = "explode_on_zidane"

        def factory(options, context):
            def step(dets, frame):
                if "zidane" in frame.source:
                    raise RuntimeError("kaboom")
                return dets
            return step

        register(ComponentSpec("explode_on_zidane", ExplodeOptions, factory))


def test_lifecycle_hooks_and_stage_error_policy(tmp_path: Path) -> None:
    images = [str(shared_path("media/bus.jpg")), str(shared_path("media/zidane.jpg"))]
    recorder = Recorder()
    pipe = Pipeline.from_objects(app=yolo_app(), source={"type": "images", "path": images},
                                 postprocess=[{"type": "explode_on_zidane"}], sinks=[{"type": "jsonl"}],
                                 output=tmp_path, plugins=[recorder])
    summary = pipe.run()
    assert recorder.calls == ["configure", "started:yolo:onnxruntime", "finished:2:None"]
    (error,) = recorder.errors
    assert error.stage == "postprocess"
    assert "kaboom" in str(error)
    lines = jsonl(tmp_path / "results.jsonl")
    assert "kaboom" in lines[1]["error"]
    assert lines[0]["detections"]
    assert summary.frames_failed == 1

    aborting = Recorder(ErrorAction.ABORT)
    pipe = Pipeline.from_objects(app=yolo_app(), source={"type": "images", "path": images},
                                 postprocess=[{"type": "explode_on_zidane"}], sinks=[{"type": "jsonl"}],
                                 output=tmp_path / "abort", plugins=[aborting])
    with pytest.raises(StageError, match="kaboom"):
        pipe.run()
    assert aborting.calls[-1].startswith("finished:1:StageError")
    assert len(jsonl(tmp_path / "abort" / "results.jsonl")) == 1  # what was done before the abort is flushed


def test_python_api_from_file_iteration_predict_and_futures(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(
        f"source: {{type: images, path: [{shared_path('media/bus.jpg')}, {shared_path('media/zidane.jpg')}]}}\n"
        f"app: {{type: yolo, model: {shared_path('models/yolov8n_dequant.onnx')}, batch_size: 4}}\n"
        f"output: {tmp_path / 'out'}\n"
    )
    with Pipeline.from_file(config) as pipe:
        results = list(pipe)
        assert [len(r.detections) for r in results] == [5, 3]
        single = pipe.predict(shared_path("media/bus.jpg"))
        assert np.allclose(single.detections.boxes, results[0].detections.boxes, atol=1e-3)
        images = [cv2.imread(str(shared_path(f"media/{n}"))) for n in ("bus.jpg", "zidane.jpg", "street.jpg")]
        expected = [len(pipe.predict(img).detections) for img in images]
        futures = []
        lock = threading.Lock()

        def client(i: int) -> None:
            f = pipe.submit(images[i % 3])
            with lock:
                futures.append((i % 3, f))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, future in futures:
            assert len(future.result(timeout=60).detections) == expected[i]
    with pytest.raises(Exception, match="closed"):
        pipe.submit(images[0])


def test_close_while_many_threads_submit_leaves_no_future_waiting() -> None:
    image = cv2.imread(str(shared_path("media/bus.jpg")))
    pipe = Pipeline.from_objects(app=yolo_app(batch_size=2))
    futures: list = []
    refused = []
    lock = threading.Lock()
    started = threading.Barrier(9)

    def client() -> None:
        started.wait()
        for _ in range(40):  # more than the bounded queue holds: some submits wait for room when close() comes
            try:
                future = pipe.submit(image)
            except PipelineClosedError:
                with lock:
                    refused.append(1)
                return
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.2)
    pipe.close()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    outcomes = {"done": 0, "closed": 0}
    for future in futures:  # every future ends: a result, or the pipeline's closing
        error = future.exception(timeout=30)
        assert error is None or isinstance(error, PipelineClosedError), error
        outcomes["done" if error is None else "closed"] += 1
    assert outcomes["done"] > 0
    assert refused  # threads still submitting were told the pipeline is closed


def test_model_that_does_not_fit_the_app() -> None:
    with pytest.raises(ModelError, match=r"osnet_x0_25_msmt17\.onnx"):
        Pipeline.from_objects(app={"type": "retinaface", "model": str(shared_path("models/osnet_x0_25_msmt17.onnx"))},
                              source={"type": "images", "path": str(shared_path("media/bus.jpg"))})


def test_class_filter_runs_once_where_the_app_does_not_apply_it() -> None:
    bus = shared_path("media/bus.jpg")
    yolo = Pipeline.from_objects(app=yolo_app(classes=["bus"]))
    assert yolo.postprocessors == []  # the yolo app filters its candidates before NMS itself
    assert [int(c) for c in yolo.predict(bus).detections.class_ids] == [5]
    faces = Pipeline.from_objects(app={"type": "retinaface", "classes": [1],
                                       "model": str(shared_path("models/retinaface_mnet025.onnx"))})
    assert len(faces.postprocessors) == 1  # retinaface leaves `classes` to the pipeline
    assert len(faces.predict(bus).detections) == 0  # class 1 does not exist: everything is filtered out


def test_the_summary_describes_each_source_and_survives_a_describe_that_fails() -> None:
    from trtapps.pipeline import _describe

    class Plain:
        name = "cam"

    class Broken:
        name = "broken"

        def describe(self) -> dict[str, object]:
            raise RuntimeError("no idea")

    assert _describe(Plain()) == {"name": "cam", "type": "Plain"}  # type: ignore[arg-type]
    assert _describe(Broken()) == {"name": "broken", "type": "Broken",  # type: ignore[arg-type]
                                   "describe_error": "RuntimeError: no idea"}
