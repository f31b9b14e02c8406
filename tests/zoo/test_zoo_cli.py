"""``trtapps models list|pull|path|verify`` against the local server, and their one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner
from zoo_server import ModelServer, isolate

from conftest import shared_path
from trtapps.cli import main
from trtapps.cli.models import register
from trtapps.zoo import MODELS
from trtapps.zoo.catalog import markdown

NAME, FILE = "retinaface_mnet025", "retinaface_mnet025.onnx"


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelServer]:
    with ModelServer({f"models/{FILE}": shared_path(f"models/{FILE}").read_bytes()}) as srv:
        monkeypatch.setenv("TRTAPPS_ZOO_MIRROR", srv.url("models"))
        yield srv


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def invoke(cli: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


def test_pull_then_path_then_verify(cli: typer.Typer, server: ModelServer, cache: Path) -> None:
    code, out = invoke(cli, "models", "pull", NAME, "--quiet", "--retries", "0")
    assert code == 0
    assert out.replace("\n", "") == f"{NAME}: {cache / FILE} (downloaded, sha256 verified)"
    code, out = invoke(cli, "models", "pull", NAME)
    assert (code, "already in the cache" in out, len(server.requests)) == (0, True, 1)
    assert invoke(cli, "models", "path", NAME) == (0, f"{cache / FILE}\n")
    code, out = invoke(cli, "models", "verify", NAME)
    assert code == 0
    assert out == f"ok {NAME} (cache) {cache / FILE} sha256 {MODELS[NAME].sha256}\n"
    (cache / FILE).write_bytes(b"not a model")
    code, out = invoke(cli, "models", "verify", NAME)
    assert code == 1
    assert out.startswith(f"corrupted {NAME} (cache) {cache / FILE} sha256 ")
    assert out.endswith(f" (expected {MODELS[NAME].sha256})\n")


def test_list_shows_where_each_model_is(cli: typer.Typer, server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "yolov8n.onnx").symlink_to(shared_path("models/yolov8n_dequant.onnx"))
    monkeypatch.setenv("TRTAPPS_MODEL_PATH", str(folder))
    invoke(cli, "models", "pull", NAME, "--quiet")
    code, out = invoke(cli, "models", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows.keys() == MODELS.keys()
    assert (rows["yolov8n"]["where"], rows["yolov8n"]["local"]) == ("search path", str(folder / "yolov8n.onnx"))
    assert rows[NAME]["where"] == "cache"
    assert rows["yolox_s"]["where"] is None
    assert rows["yolox_s"]["urls"] == [server.url("models/yolox_s.onnx"), *MODELS["yolox_s"].urls]
    assert rows["osnet_x0_25_msmt17"]["export"].startswith("pip install boxmot && ")
    code, out = invoke(cli, "models", "list")
    assert code == 0
    for name in MODELS:
        assert name in out
    assert "yolo export model=yolov8s.pt format=onnx dynamic=True simplify=True" in out.replace("\n", " ")
    assert invoke(cli, "models", "list", "--markdown") == (0, markdown())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "pull", "yolov8n"], "error: model 'yolov8n' has no ONNX download (Ultralytics: "),
        (["models", "pull", "yolox-s"], "error: unknown model 'yolox-s'; did you mean 'yolox_s'? known: "),
        (["models", "path", "yolox_s"], "error: TRTAPPS_OFFLINE is set and yolox_s.onnx is in neither "),
        (["models", "pull", "yolox_m"], "error: model 'yolox_m': no sha256 of "),
    ],
)
def test_errors_are_one_line_through_the_real_entry_point(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if args[1] == "path":
        monkeypatch.setenv("TRTAPPS_OFFLINE", "1")
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(message)
    assert err.count("\n") == 1, err


def test_the_real_entry_point_has_the_models_group(capsys: pytest.CaptureFixture[str]) -> None:
    main(["models", "--help"])
    out = capsys.readouterr().out
    for command in ("list", "pull", "path", "verify"):
        assert command in out
