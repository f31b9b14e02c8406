"""Bad MOTChallenge input and bad ReID models: one-line errors naming the file or field and the fix, never a
traceback; an unreadable ``img1/`` frame is recorded and the run goes on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import onnx
from conftest import shared_path
from onnx import TensorProto, helper
from trtapps import Detections
from trtapps.cli import main
from trtapps.errors import InputError, ModelError
from trtapps.runners.base import TensorInfo
from trtapps.runners.onnxruntime import OnnxRuntimeRunner
from trtapps_plugins.trackers.cli import run_mot
from trtapps_plugins.trackers.mot import evaluate, load_sequence, run_tracker_on_sequence
from trtapps_plugins.trackers.reid import ReidEmbedder

INI = "[Sequence]\nname=SEQ\nimDir=img1\nframeRate=25\nseqLength=3\nimWidth=64\nimHeight=48\nimExt=.jpg\n"
DET = "".join(f"{f},-1,{10 + f},8,12,30,0.9,-1,-1,-1\n{f},-1,40,10,12,30,0.8,-1,-1,-1\n" for f in (1, 2, 3))


def make_sequence(root: Path, ini: str = INI, det: str = DET, frames: int = 3) -> Path:
    seq = root / "SEQ"
    (seq / "det").mkdir(parents=True)
    (seq / "img1").mkdir()
    (seq / "seqinfo.ini").write_text(ini)
    (seq / "det" / "det.txt").write_text(det)
    rng = np.random.default_rng(0)
    for f in range(1, frames + 1):
        cv2.imwrite(str(seq / "img1" / f"{f:06d}.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return seq


def one_line_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The CLI's stderr for *args*, checked to be one ``error:`` line with exit status 2."""
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    return err


# -- 1. seqinfo.ini ---------------------------------------------------------------------------------------------------
def test_seqinfo_without_a_section_header_is_one_line_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = make_sequence(tmp_path, ini=INI.removeprefix("[Sequence]\n"))
    err = one_line_error(["mot", "--data", str(seq), "--tracker", "sort", "--output", str(tmp_path / "out")], capsys)
    assert f"{seq / 'seqinfo.ini'}: no [Sequence] header" in err
    assert "start the file with a [Sequence] line" in err


@pytest.mark.parametrize(
    ("line", "replacement", "message"),
    [
        ("seqLength=3", "seqLength=abc", "seqLength='abc' is not a positive whole number; set seqLength to the number"),
        ("seqLength=3", "seqLength=0", "seqLength='0' is not a positive whole number"),
        ("seqLength=3\n", "", "no seqLength field; add seqLength=<the number of frames>"),
        ("frameRate=25", "frameRate=fast", "frameRate='fast' is not a positive number; set frameRate to"),
        ("imWidth=64", "imWidth=6.5", "imWidth='6.5' is not a whole number; set imWidth to the image width"),
    ],
)
def test_bad_seqinfo_fields_are_named(tmp_path: Path, line: str, replacement: str, message: str) -> None:
    seq = make_sequence(tmp_path, ini=INI.replace(line, replacement))
    with pytest.raises(InputError) as err:
        load_sequence(seq)
    assert str(err.value).startswith(f"{seq / 'seqinfo.ini'}: {message}"), err.value
    assert "\n" not in str(err.value)
    assert "invalid literal" not in str(err.value)


def test_evaluate_names_a_bad_seqlength_too(tmp_path: Path) -> None:
    seq = make_sequence(tmp_path, ini=INI.replace("seqLength=3", "seqLength=abc"))
    (seq / "gt").mkdir()
    (seq / "gt" / "gt.txt").write_text("1,1,10,8,12,30,1,1,1\n")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "SEQ.txt").write_text("1,1,10,8,12,30,1,-1,-1,-1\n")
    with pytest.raises(InputError, match=r"seqinfo\.ini: seqLength='abc' is not a positive whole number"):
        evaluate(seq, tmp_path / "res")


# -- 2. det.txt -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("2,-1,abc,8,12,30,0.9,-1,-1,-1", ":4: column 3 is 'abc', not a number; fix or remove that line"),
        ("2,-1,40,10,12", ":4: 5 comma-separated values where the lines before have 10; fix or remove that line"),
        ("2,-1,40,,12,30,0.9,-1,-1,-1", ":4: column 4 is '', not a number; fix or remove that line"),
    ],
)
def test_malformed_det_txt_names_the_file_and_line(
    tmp_path: Path, bad: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = DET.splitlines()
    lines[3] = bad
    seq = make_sequence(tmp_path, det="\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        load_sequence(seq)
    assert str(err.value) == f"{seq / 'det' / 'det.txt'}{message}"
    err_line = one_line_error(["mot", "--data", str(seq), "--tracker", "sort", "--output", str(tmp_path / "o")], capsys)
    assert "usecols" not in err_line
    assert f"det.txt{message}" in err_line


def test_det_txt_blank_lines_and_comments_still_load(tmp_path: Path) -> None:
    seq = make_sequence(tmp_path, det="# frame,id,…\n" + DET.replace("\n", "\n  \n", 1))
    assert load_sequence(seq).detections.shape == (6, 7)


# -- 3. unreadable img1/ frames ---------------------------------------------------------------------------------------
class Recorder:
    """A tracker that records what each step got."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int, bool]] = []

    def update(self, detections: Detections, frame: Any) -> Detections:
        self.steps.append((frame.index, len(detections), detections.embeddings is not None))
        return Detections.empty()


def test_an_unreadable_frame_is_recorded_and_every_frame_is_still_tracked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seq_path = make_sequence(tmp_path)
    bad = seq_path / "img1" / "000002.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    seq = load_sequence(seq_path)
    calls: list[int] = []

    def embedder(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        calls.append(len(boxes))
        return np.ones((len(boxes), 4), np.float32)

    tracker = Recorder()
    with caplog.at_level(logging.WARNING, logger="trtapps"):
        run = run_tracker_on_sequence(tracker, seq, embedder=embedder)
    # frame 2 still gets its step, without the detections no appearance can be computed for
    assert tracker.steps == [(0, 2, True), (1, 0, False), (2, 2, True)]
    assert calls == [2, 2]
    assert run.frames == 3
    assert len(run.frame_errors) == 1
    assert str(bad) in run.frame_errors[0]
    assert str(bad) in caplog.text
    assert "frame 2 is tracked" in caplog.text
    # a missing frame is the same
    bad.unlink()
    run = run_tracker_on_sequence(Recorder(), seq, embedder=embedder)
    assert len(run.frame_errors) == 1
    assert "file not found" in run.frame_errors[0]


def test_deepsort_with_reid_goes_on_past_a_corrupt_frame(tmp_path: Path) -> None:
    model = shared_path("models/osnet_x0_25_msmt17.onnx")
    seq_path = make_sequence(tmp_path, frames=3)
    (seq_path / "img1" / "000002.jpg").write_bytes(b"not a jpeg at all")
    lines: list[str] = []
    (run,) = run_mot(seq_path, "deepsort", tmp_path / "out", reid=str(model), echo=lines.append)
    assert run.frames == 3
    assert len(run.frame_errors) == 1
    assert "000002.jpg: not a readable image" in run.frame_errors[0]
    assert "1 unreadable img1/ frame(s)" in lines[0]
    assert (tmp_path / "out" / "SEQ.txt").is_file()


# -- 4. ReID models ---------------------------------------------------------------------------------------------------
def identity_model(path: Path, shape: list[Any]) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_reid_model_without_image_input_is_a_model_error(tmp_path: Path) -> None:
    runner = OnnxRuntimeRunner(identity_model(tmp_path / "in3d.onnx", ["B", 3, 64]))
    with pytest.raises(ModelError, match=r"^in3d\.onnx: a ReID model must take \[batch, 3, height, width\] images; "
                                         r"got input x float32 \[\?, 3, 64\]"):
        ReidEmbedder(runner)


@pytest.mark.parametrize("which", ["identity", "retinaface"])
def test_a_reid_model_without_2d_output_is_refused(tmp_path: Path, which: str) -> None:
    if which == "identity":
        path, got = identity_model(tmp_path / "id4d.onnx", ["B", 3, 64, 32]), r"y float32 \[\?, 3, 64, 32\]"
    else:
        path, got = shared_path("models/retinaface_mnet025.onnx"), r"loc float32 \[\?, \?, 4\]"
    with pytest.raises(ModelError, match=rf"^{path.name}: a ReID model must output \[batch, features\]; got output {got}"):
        ReidEmbedder(OnnxRuntimeRunner(path))


def test_the_cli_refuses_a_detector_as_reid_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = shared_path("models/retinaface_mnet025.onnx")
    seq = make_sequence(tmp_path)
    err = one_line_error(["mot", "--data", str(seq), "--tracker", "deepsort", "--reid", str(model),
                          "--output", str(tmp_path / "out")], capsys)
    assert "retinaface_mnet025.onnx: a ReID model must output [batch, features]" in err
    assert not (tmp_path / "out" / "SEQ.txt").exists()


def test_an_output_of_unknown_rank_is_checked_on_the_first_call() -> None:
    class Runner:
        model_path = Path("odd.onnx")
        residency = None

        def __init__(self) -> None:
            self.inputs = [TensorInfo("x", (None, 3, 16, 8), np.dtype(np.float32))]
            self.outputs = [TensorInfo("y", (), np.dtype(np.float32))]  # rank left open by the file

        def input(self) -> TensorInfo:
            return self.inputs[0]

        def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"y": feeds["x"]}  # 4-D: not features

    embedder = ReidEmbedder(Runner())  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=r"^odd\.onnx: a ReID model must output \[batch, features\]; got y of shape "
                                         r"\[1, 3, 16, 8\] for 1 crops"):
        embedder(np.zeros((32, 32, 3), np.uint8), np.array([[0, 0, 10, 20]], np.float32))
