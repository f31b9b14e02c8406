"""Why a path given as an input cannot be read (trtapps.paths.unreadable), in the messages users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtapps import paths
from trtapps.cli import main
from trtapps.errors import InputError, ModelError
from trtapps.onnx.graph import load_model
from trtapps.sources import VideoSource


def test_missing_folder_unreadable_and_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert paths.unreadable(tmp_path / "nope.onnx") == "not found"
    assert paths.unreadable(tmp_path) == "is a folder, not a file"
    assert paths.unreadable(model) is None
    # root may read anything (CI runs as root): stand in for the permission check
    monkeypatch.setattr(paths.os, "access", lambda path, mode: Path(path) != model)
    assert paths.unreadable(model) == "cannot be read (no permission)"
    with pytest.raises(ModelError, match=r"m\.onnx: model file cannot be read \(no permission\); check the path"):
        load_model(model)


def test_a_folder_given_as_a_file_is_named_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match=r": video file is a folder, not a file; check source\.path"):
        VideoSource(tmp_path)
    with pytest.raises(SystemExit) as code:
        main(["validate", str(tmp_path)])
    assert code.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path}: pipeline file is a folder, not a file; check the path"
