"""A 0-byte model file: protobuf reads it as a valid empty model, so ``info`` and ``onnx check`` refuse it first."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtapps.build import model_info
from trtapps.cli import main
from trtapps.errors import ModelError
from trtapps.onnx.check import check_model


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    return path


def test_info_and_check_refuse_an_empty_file(empty: Path) -> None:
    for call in (model_info, check_model):
        with pytest.raises(ModelError, match=rf"^{empty}: the file is empty; export the model again$"):
            call(empty)
    engine = empty.with_suffix(".engine")
    engine.write_bytes(b"")
    with pytest.raises(ModelError, match=rf"^{engine}: the file is empty; build the engine again$"):
        model_info(engine)


@pytest.mark.parametrize("command", [["info"], ["onnx", "check"]])
def test_the_commands_print_one_line_and_exit_2(
    empty: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, str(empty)])
    captured = capsys.readouterr()
    assert exit_.value.code == 2
    assert captured.err == f"error: {empty}: the file is empty; export the model again\n"
    assert captured.out == ""
