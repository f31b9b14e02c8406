"""Where model files are found, and how the cache gets them.

A config's ``model:`` is a path or a catalogue name (:data:`trtapps.zoo.catalog.MODELS`). A name is looked up,
in order:

1. in the folders of ``TRTAPPS_MODEL_PATH`` (``os.pathsep``-separated): the user's own files, used as they are;
   this is how machines without internet run ``model: yolov8n``;
2. in the cache (``TRTAPPS_CACHE``/models, default ``~/.cache/trtapps/models``), whose files are checked against
   the catalogue's sha256 (once: the cache index remembers files already checked, by size);
3. in a pip package that embeds the model (checked against its sha256, then copied to the cache);
4. downloaded into the cache, unless ``TRTAPPS_OFFLINE=1``: first from the mirrors of ``TRTAPPS_ZOO_MIRROR``
   (base URLs separated by spaces or commas; a mirror serves each model under its catalogue file name), then
   from the catalogue's URLs.

A catalogue entry without a known sha256 is downloaded only when the user accepts an unverified file
(``trtapps models pull NAME --trust-unverified``, or ``TRTAPPS_TRUST_UNVERIFIED=1``); its checksum is then pinned
in the cache index at that first download, and the cached file is checked against the pin from then on.

``<cache>/index.json`` records, per file: the catalogue name, sha256, size, where it came from and how its
checksum is known (``catalogue``, ``package`` or ``first download``). Writes to the cache and the index happen
under per-file locks in ``<cache>/.locks``, so concurrent processes neither download a model twice nor see a
half-written one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtapps.errors import ModelError
from trtapps.paths import unreadable
from trtapps.zoo.catalog import MODELS, ZooModel
from trtapps.zoo.download import DownloadError, Fetched, fetch, file_lock, sha256_of

logger = logging.getLogger("trtapps.zoo")

INDEX = "index.json"
TRUE = ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """``TRTAPPS_CACHE``/models, default ``~/.cache/trtapps/models``."""
    root = os.environ.get("TRTAPPS_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "trtapps") / "models"


def search_path() -> list[Path]:
    """The folders of ``TRTAPPS_MODEL_PATH``, in order."""
    value = os.environ.get("TRTAPPS_MODEL_PATH", "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def offline() -> bool:
    """``TRTAPPS_OFFLINE`` forbids every download."""
    return os.environ.get("TRTAPPS_OFFLINE", "").strip().lower() in TRUE


def trust_unverified_default() -> bool:
    """``TRTAPPS_TRUST_UNVERIFIED`` accepts downloads the catalogue has no sha256 for."""
    return os.environ.get("TRTAPPS_TRUST_UNVERIFIED", "").strip().lower() in TRUE


def mirrors() -> list[str]:
    """Base URLs from ``TRTAPPS_ZOO_MIRROR`` (separated by whitespace or commas), tried before the catalogue's.

    Raises:
        ModelError: a value that is not an ``http(s)://`` or ``file://`` URL.
    """
    found = [m.rstrip("/") for m in re.split(r"[\s,]+", os.environ.get("TRTAPPS_ZOO_MIRROR", "")) if m]
    for mirror in found:
        if not re.match(r"^(https?|file)://", mirror, re.IGNORECASE):
            raise ModelError(
                f"TRTAPPS_ZOO_MIRROR: {mirror!r} is not a URL; give base URLs such as https://models.example/trtapps"
            )
    return found


def sources(entry: ZooModel) -> list[str]:
    """The URLs a download of *entry* tries, in order: the mirrors, then the catalogue's."""
    return [f"{m}/{entry.filename}" for m in mirrors()] + list(entry.urls)


def looks_like_path(value: str) -> bool:
    """A ``model:`` value with a separator or a model-file suffix is a path, anything else a name."""
    return any(sep in value for sep in ("/", "\\")) or value.endswith((".onnx", ".engine", ".plan"))


def model_entry(name: str) -> ZooModel:
    """The catalogue entry called *name*.

    Raises:
        ModelError: unknown name (the message lists the known ones and the closest match).
    """
    entry = MODELS.get(name)
    if entry is None:
        import difflib

        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ModelError(f"unknown model {name!r}; {hint}known: {', '.join(sorted(MODELS))} (trtapps models list)")
    return entry


# -- the cache index -------------------------------------------------------------------------------------------------
def read_index(cache: Path | None = None) -> dict[str, dict[str, Any]]:
    """The records of ``index.json`` by file name (empty when the cache has none or it is unreadable)."""
    path = (cache or cache_dir()) / INDEX
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _record(cache: Path, filename: str, record: dict[str, Any]) -> None:
    """Add or replace one record, under the index lock, through an atomic rename."""
    with file_lock(cache / ".locks" / (INDEX + ".lock")):
        files = read_index(cache)
        files[filename] = record
        text = json.dumps({"version": 1, "files": dict(sorted(files.items()))}, indent=1) + "\n"
        with tempfile.NamedTemporaryFile("w", dir=cache, suffix=".tmp", delete=False, encoding="utf-8") as tmp:
            tmp.write(text)
        os.chmod(tmp.name, 0o644)  # NamedTemporaryFile makes 0600: a cache shared by several users stays readable
        os.replace(tmp.name, cache / INDEX)


def _new_record(entry: ZooModel, sha256: str, size: int, origin: str, pinned: str) -> dict[str, Any]:
    return {
        "name": entry.name, "sha256": sha256, "size": size, "origin": origin, "pinned": pinned,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# -- lookup ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Located:
    """A local copy of a model: its path, and ``search path`` or ``cache``."""

    path: Path
    where: str


def find_local(entry: ZooModel) -> Located | None:
    """The copy :func:`resolve_model` would use without downloading: search path first, then a checked cache."""
    return _find_local(entry, MISMATCH_NOTE)


def _find_local(entry: ZooModel, mismatch_note: str | None) -> Located | None:
    for folder in search_path():
        if (folder / entry.filename).is_file():
            return Located(folder / entry.filename, "search path")
    cached = _cached(entry, mismatch_note)
    return Located(cached, "cache") if cached is not None else None


def expected_sha256(entry: ZooModel, cache: Path | None = None) -> tuple[str | None, str]:
    """The checksum a cached copy must have, and how it is known (``catalogue``, ``first download`` or none)."""
    if entry.sha256:
        return entry.sha256, "catalogue"
    record = read_index(cache).get(entry.filename)
    if record and record.get("name") == entry.name and isinstance(record.get("sha256"), str):
        return record["sha256"], str(record.get("pinned", "first download"))
    return None, ""


#: what the warning about a cached copy that fails its checksum adds when nothing replaces it now
MISMATCH_NOTE = "not used; `trtapps models pull {name}` replaces it"
REPLACED_NOTE = "it will be replaced"


def _cached(entry: ZooModel, mismatch_note: str | None = MISMATCH_NOTE) -> Path | None:
    """The cached file when it matches what is known of it, else ``None`` (absent, stale or corrupted).

    A copy that fails its checksum is logged as a warning ending in *mismatch_note* (``{name}``: the model's
    name), or not at all when it is ``None`` (the caller's error says it).
    """
    cache = cache_dir()
    path = cache / entry.filename
    if not path.is_file():
        return None
    expected, how = expected_sha256(entry, cache)
    if expected is None:
        return path  # put there by hand, and nothing to check it against: like a search-path file
    record = read_index(cache).get(entry.filename, {})
    if record.get("sha256") == expected and record.get("size") == path.stat().st_size:
        return path
    if sha256_of(path) != expected:
        if mismatch_note is not None:
            logger.warning("%s does not match its sha256 %s; %s", path, expected, mismatch_note.format(name=entry.name))
        return None
    _record(cache, entry.filename, _new_record(entry, expected, path.stat().st_size, str(path), how))
    return path


def resolve_model(
    value: str,
    base_dir: Path | None = None,
    *,
    download: bool | None = None,
    trust_unverified: bool | None = None,
    progress: bool | None = None,
) -> Path:
    """The model file for a config's ``model:`` value (a path, or a catalogue name).

    Args:
        value: a path (relative ones start at *base_dir*) or a model name.
        download: allow a download when no local copy exists; ``None`` allows it unless ``TRTAPPS_OFFLINE``.
        trust_unverified: accept a download the catalogue has no sha256 for (``None``: the environment).
        progress: show a download progress bar (``None``: when stderr is a terminal).

    Raises:
        ModelError: the file does not exist, the name is unknown, or the model cannot be had here; the message
            says what to do (a path, ``TRTAPPS_MODEL_PATH``, the export command, a mirror).
    """
    if looks_like_path(value):
        path = Path(value).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if why := unreadable(path):
            raise ModelError(
                f"{path}: model file {why}; check app.model (relative paths start at the config's folder)"
            )
        return path
    entry = MODELS.get(value)
    if entry is None:
        for folder in [*search_path(), cache_dir()]:
            for filename in (value + ".onnx", value + ".engine"):
                if (folder / filename).is_file():
                    return folder / filename
        known = ", ".join(sorted(MODELS))
        raise ModelError(
            f"model {value!r} is neither a file nor a known model name; give a path, or one of: {known}"
        )
    packaged = entry.package is not None and _package_installed(entry)
    no_download = download is False or (download is None and offline())
    # a copy failing its checksum: replaced below (package, download), or named by the error that follows
    local = _find_local(entry, REPLACED_NOTE if packaged or not no_download else None)
    if local is not None:
        return local.path
    if packaged:
        return _from_package(entry)
    if not sources(entry):
        raise ModelError(_unobtainable(entry))
    if no_download:
        raise DownloadError(_offline_message(entry))
    return pull(entry.name, trust_unverified=trust_unverified, progress=progress)


def pull(
    name: str,
    *,
    force: bool = False,
    trust_unverified: bool | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 30.0,
    progress: bool | None = None,
    on_download: Callable[[str], None] | None = None,
) -> Path:
    """Make sure the cache holds a verified copy of model *name* and return its path.

    A verified cached copy is returned as it is (no request is made) unless *force*. Otherwise the model is
    taken from its pip package when that is installed, else downloaded (see :func:`fetch` for resume, retries
    and mirrors). *on_download* is called with the file name just before a download starts.

    Raises:
        ModelError: unknown name, a model that must be exported, or no source.
        DownloadError: ``TRTAPPS_OFFLINE`` is set, the download cannot be verified and *trust_unverified* is
            off, or every source failed (one line naming each URL and its failure).
    """
    entry = model_entry(name)
    cache = cache_dir()
    urls = sources(entry)
    trusted = trust_unverified_default() if trust_unverified is None else trust_unverified
    with file_lock(cache / ".locks" / (entry.filename + ".lock"),
                   f"another process is fetching {entry.filename}; waiting for it"):
        if not force:
            cached = _cached(entry, None if offline() and urls else REPLACED_NOTE)
            if cached is not None:
                return cached
        if entry.package is not None and _package_installed(entry):
            return _from_package(entry, locked=True)
        if not urls:
            raise ModelError(_unobtainable(entry))
        if offline():
            raise DownloadError(_offline_message(entry, checked=not force))
        expected, how = expected_sha256(entry, cache) if not force else (entry.sha256, "catalogue")
        if expected is None and not trusted:
            raise DownloadError(
                f"model {entry.name!r}: no sha256 of {urls[0]} is known, so the download cannot be verified; "
                "accept it with `trtapps models pull "
                f"{entry.name} --trust-unverified` (or TRTAPPS_TRUST_UNVERIFIED=1): its sha256 is then pinned "
                "in the cache index"
            )
        if on_download is not None:
            on_download(entry.filename)
        logger.info("downloading %s from %s", entry.filename, urls[0])
        fetched: Fetched = fetch(
            urls, cache / entry.filename, sha256=expected, size=entry.size, retries=retries, backoff=backoff,
            timeout=timeout, progress=progress,
            hint=f"put {entry.filename} in a folder of TRTAPPS_MODEL_PATH or set TRTAPPS_ZOO_MIRROR",
        )
        pinned = how if expected is not None else "first download"
        _record(cache, entry.filename, _new_record(entry, fetched.sha256, fetched.size, fetched.url, pinned))
        return fetched.path


@dataclass(frozen=True)
class Check:
    """The outcome of checking one local copy: ``ok``, ``mismatch`` or ``unpinned`` (nothing to check against)."""

    name: str
    path: Path
    where: str
    status: str
    sha256: str
    expected: str | None


def verify(entry: ZooModel) -> list[Check]:
    """Hash every local copy of *entry* (search-path folders and the cache) and compare with what is known.

    Search-path copies are compared with the catalogue's sha256 only (a local export legitimately differs:
    ``mismatch`` there means "not the catalogued file", not "corrupted"); cached copies also with a pin taken at
    their first download.
    """
    checks: list[Check] = []
    copies = [Located(folder / entry.filename, "search path") for folder in search_path()]
    copies.append(Located(cache_dir() / entry.filename, "cache"))
    for copy in copies:
        if not copy.path.is_file():
            continue
        expected = expected_sha256(entry)[0] if copy.where == "cache" else entry.sha256
        digest = sha256_of(copy.path)
        status = "unpinned" if expected is None else "ok" if digest == expected else "mismatch"
        checks.append(Check(entry.name, copy.path, copy.where, status, digest, expected))
    return checks


# -- packages --------------------------------------------------------------------------------------------------------
def _package_installed(entry: ZooModel) -> bool:
    import importlib.util

    assert entry.package is not None
    module = entry.package[1].split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _from_package(entry: ZooModel, locked: bool = False) -> Path:
    """Copy the model bytes an installed package embeds into the cache, after checking their sha256."""
    import contextlib
    import hashlib
    import importlib

    assert entry.package is not None
    dist, target = entry.package
    module_name, attribute = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ModelError(f"model {entry.name!r} comes with the {dist!r} package; pip install {dist}") from None
    data = getattr(module, attribute, None)
    if not isinstance(data, bytes):
        raise ModelError(
            f"model {entry.name!r}: {target} in the installed {dist!r} is not model bytes; reinstall {dist}"
        )
    digest = hashlib.sha256(data).hexdigest()
    if entry.sha256 and digest != entry.sha256:
        raise ModelError(
            f"model {entry.name!r} from {dist!r} has sha256 {digest}, expected {entry.sha256}; "
            f"install the pinned version of {dist}"
        )
    cache = cache_dir()
    out = cache / entry.filename
    lock = (
        contextlib.nullcontext() if locked else file_lock(cache / ".locks" / (entry.filename + ".lock"))
    )
    with lock:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache, delete=False, suffix=".part") as tmp:
            tmp.write(data)
        os.chmod(tmp.name, 0o644)
        os.replace(tmp.name, out)
        _record(cache, entry.filename, _new_record(entry, digest, len(data), f"pip:{dist}", "package"))
    return out


# -- messages --------------------------------------------------------------------------------------------------------
def _unobtainable(entry: ZooModel) -> str:
    """Why *entry* cannot be had from here, and what the user does instead (one line)."""
    if entry.export:
        return (
            f"model {entry.name!r} has no ONNX download ({entry.source}); make {entry.filename} with "
            f"`{entry.export}` and put it in a folder of TRTAPPS_MODEL_PATH (or give its path)"
        )
    if entry.package:
        return f"model {entry.name!r} comes with the {entry.package[0]!r} package; pip install {entry.package[0]}"
    return (
        f"model {entry.name!r} ({entry.filename}) has no download: it is {entry.source}; put {entry.filename} in a "
        "folder of TRTAPPS_MODEL_PATH, give its path, or set TRTAPPS_ZOO_MIRROR to a mirror that has it"
    )


def _offline_message(entry: ZooModel, *, checked: bool = True) -> str:
    """Why *entry* is not downloaded now, and what the user does instead (one line): ``TRTAPPS_OFFLINE`` when it
    is set, else the caller turned downloading off (``resolve_model(download=False)``, as ``trtapps models path``).

    Args:
        checked: a cached copy, if any, failed its checksum (``False``: it was not looked at, as ``pull --force``).
    """
    name, file = entry.name, entry.filename
    folders = os.pathsep.join(str(p) for p in search_path()) or "unset"
    cached = cache_dir() / file
    if checked and cached.is_file():
        expected = expected_sha256(entry)[0]
        cache = f"the cache (its copy {cached} does not match its sha256 {expected}: corrupted or incomplete)"
    else:
        cache = f"the cache ({cache_dir()})"
    where = f"{file} is in neither TRTAPPS_MODEL_PATH ({folders}) nor {cache}"
    if offline():
        return (
            f"TRTAPPS_OFFLINE is set and {where}; put {file} in a folder of TRTAPPS_MODEL_PATH, or unset "
            f"TRTAPPS_OFFLINE to download it from {sources(entry)[0]}"
        )
    return (
        f"{where}, and this lookup does not download; download it with `trtapps models pull {name}` "
        f"(from {sources(entry)[0]}), or put {file} in a folder of TRTAPPS_MODEL_PATH"
    )
