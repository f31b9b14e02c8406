"""HTTP downloads that survive bad networks and never leave a wrong file where a model is expected.

A file is fetched into ``<dest>.part`` and renamed onto ``dest`` only after its sha256 matched, so a reader
never sees half a model and a corrupted download never reaches the cache. On the way:

* **Resume.** A dropped connection is retried (with exponential backoff) from where it stopped, through an HTTP
  ``Range`` request; a ``.part`` left by an interrupted run is resumed the same way. ``If-Range`` carries the
  first response's ETag/Last-Modified, so a file that changed on the server restarts from zero instead of being
  spliced. A server that ignores ``Range`` answers 200 with the whole file, and the download restarts.
* **Sources in order.** The mirror list is tried in order; a source that fails (HTTP error, unreachable,
  wrong size, wrong checksum) is reported and the next one is tried. The error, when all fail, is one line
  naming each URL and what went wrong.
* **Checksums.** With a known sha256 a mismatch removes the download and names the URL and both checksums.
  Without one (``sha256=None``) the caller decides whether to accept the file; see :func:`trtapps.zoo.pull`.
* **Concurrency.** Callers hold :func:`file_lock` on the destination while checking the cache and
  downloading, so two processes pulling one model download it once and never write the same ``.part``.

Only the standard library is used (``urllib``): the project has no HTTP client dependency, and a model
download needs nothing more.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import logging
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from trtapps.errors import ModelError

logger = logging.getLogger("trtapps.zoo")

CHUNK = 1 << 16
#: HTTP statuses worth retrying on the same URL (the server may recover); others move on to the next URL
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class DownloadError(ModelError):
    """A model could not be downloaded (every source failed, or policy forbade it); one line, no traceback."""


@dataclass(frozen=True)
class Fetched:
    """A verified download: where it is, where it came from and its checksum."""

    path: Path
    url: str
    sha256: str
    size: int


class _SourceFailed(Exception):
    """This URL cannot deliver the file.

    ``network``: the host could not be reached at all. ``discard``: what was received is not the file (wrong
    size), so the ``.part`` is not worth resuming; a cut connection keeps it for the next attempt.
    """

    def __init__(self, message: str, network: bool = False, discard: bool = False) -> None:
        super().__init__(message)
        self.network = network
        self.discard = discard


class _Retry(Exception):
    """A transient failure: try the same URL again (resuming) after a pause."""

    def __init__(self, message: str, network: bool = False) -> None:
        super().__init__(message)
        self.network = network


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path, waiting_message: str | None = None) -> Iterator[None]:
    """An exclusive inter-process lock on *path* (created if needed), held for the ``with`` block.

    ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows; both are released by the OS when the process dies,
    so a killed download never leaves the cache locked. *waiting_message* is logged once when another process
    holds the lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        _lock(handle, waiting_message)
        try:
            yield
        finally:
            _unlock(handle)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(handle: IO[bytes], waiting_message: str | None) -> None:
        told = False
        while True:
            try:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                if waiting_message and not told:
                    logger.warning(waiting_message)
                    told = True
                time.sleep(0.5)

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(handle: IO[bytes], waiting_message: str | None) -> None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if waiting_message:
                logger.warning(waiting_message)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def fetch(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None,
    size: int | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 30.0,
    progress: bool | None = None,
    hint: str = "",
) -> Fetched:
    """Download the first of *urls* that delivers the right file to *dest* (through ``dest.part``).

    The caller holds :func:`file_lock` for *dest*. *retries* is per URL (dropped connections, timeouts, HTTP
    5xx/429), with pauses of ``backoff · 2^k`` seconds; *timeout* bounds connecting and each read. *progress*
    shows a rich progress bar; ``None`` shows it when stderr is a terminal. *hint* ends the error line (what the
    user can do instead).

    Raises:
        DownloadError: no URL delivered the file; one line naming every URL and its failure.
    """
    if not urls:
        raise DownloadError(f"no download source for {dest.name}{'; ' + hint if hint else ''}")
    failures: list[_SourceFailed] = []
    for url in urls:
        try:
            return _fetch_from(url, dest, sha256, size, retries, backoff, timeout, progress)
        except _SourceFailed as exc:
            logger.info("%s", exc)  # the final error names every failure; a later source may still succeed
            failures.append(exc)
            if exc.discard:
                _discard(dest)
    reasons = "; ".join(str(f) for f in failures)
    prefix = "no network: " if all(f.network for f in failures) else ""
    raise DownloadError(f"{prefix}could not download {dest.name}: {reasons}{'; ' + hint if hint else ''}")


def _discard(dest: Path) -> None:
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    _PartState(part.with_name(part.name + ".json")).clear()


def _fetch_from(
    url: str,
    dest: Path,
    sha256: str | None,
    size: int | None,
    retries: int,
    backoff: float,
    timeout: float,
    progress: bool | None,
) -> Fetched:
    part = dest.with_name(dest.name + ".part")
    state = _PartState(part.with_name(part.name + ".json"))
    if part.exists() and state.url != url:
        part.unlink()  # a .part from another URL may be another build of the file: never splice the two
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _progress_bar(dest.name, size, progress) as bar:
        for attempt in range(retries + 1):
            try:
                _transfer(url, part, state, size, timeout, bar)
                break
            except _Retry as exc:
                if attempt == retries:
                    raise _SourceFailed(f"{url}: {exc}", network=exc.network) from None
                pause = backoff * 2**attempt
                logger.info("%s: %s; retrying in %.1f s (%d/%d)", url, exc, pause, attempt + 1, retries)
                time.sleep(pause)
    digest = sha256_of(part)
    got = part.stat().st_size
    if (sha256 is not None and digest != sha256) or (size is not None and got != size):
        part.unlink()
        state.clear()
        what = f"sha256 {digest}, expected {sha256}" if sha256 is not None and digest != sha256 else ""
        what = what or f"{got} bytes, expected {size}"
        raise _SourceFailed(f"{url}: the download has {what}; it was removed (corrupted or not the catalogued file)")
    os.replace(part, dest)
    state.clear()
    return Fetched(dest, url, digest, got)


def _transfer(url: str, part: Path, state: _PartState, size: int | None, timeout: float, bar: Any) -> None:
    """One HTTP request: append to ``part`` (resume) or rewrite it; raise :class:`_Retry` when cut short."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # longer than the file can be: not worth resuming
        part.unlink()
        have = 0
    headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if state.validator:
            headers["If-Range"] = state.validator
    try:
        request = urllib.request.Request(url, headers=headers)
        response = urllib.request.urlopen(request, timeout=timeout)
    except ValueError as exc:  # not a URL urllib can open: no retry will help
        raise _SourceFailed(f"{url}: {exc}") from None
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:
            # the range starts at or past the end: the .part may already be whole (the last run stopped
            # before renaming), else it is wrong. Either way the checksum after the loop decides.
            total = _content_range_total(exc.headers.get("Content-Range", ""))
            if total == have:
                return
            part.unlink()
            raise _Retry("the server refused to resume; restarting from the beginning") from None
        if exc.code in RETRY_STATUSES:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
        raise _SourceFailed(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _classify(exc.reason) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _classify(exc) from None
    with response:
        status = response.status
        if have and status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range", ""))
            if start != have:
                part.unlink()
                raise _Retry(f"the server resumed at byte {start} instead of {have}; restarting")
            mode = "ab"
        else:  # a full body: no Range asked, the server ignores Range, or If-Range saw a changed file
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if size is not None and total is not None and total != size:
            raise _SourceFailed(
                f"{url}: the server has {total} bytes, expected {size} (not the catalogued file)", discard=True
            )
        state.save(url, response.headers.get("ETag") or response.headers.get("Last-Modified"))
        bar.start(total, have)
        try:
            with part.open(mode) as out:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    have += len(chunk)
                    bar.advance(len(chunk))
                    if size is not None and have > size:
                        raise _SourceFailed(f"{url}: the server sent more than the expected {size} bytes", discard=True)
        except (OSError, http.client.HTTPException) as exc:
            raise _classify(exc, f"connection lost after {have} bytes") from None
    if total is not None and have < total:
        raise _Retry(f"connection closed after {have} of {total} bytes")


def _classify(reason: object, context: str = "") -> _Retry:
    """A network exception → a retryable failure with a short reason; ``network`` when no host was reached."""
    text = context + ": " if context else ""
    if isinstance(reason, socket.gaierror):
        return _Retry(f"{text}cannot resolve the host ({reason.strerror or reason})", network=True)
    if isinstance(reason, ConnectionRefusedError):
        return _Retry(f"{text}connection refused", network=True)
    if isinstance(reason, TimeoutError):
        return _Retry(f"{text}timed out", network=True)
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return _Retry(f"{text}network unreachable", network=True)
    if isinstance(reason, http.client.IncompleteRead):
        return _Retry(f"{text}connection closed early")
    detail = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return _Retry(f"{text}{detail}")


def _parse_content_range(value: str) -> tuple[int, int | None]:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value.strip())
    if not match:
        return -1, None
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _content_range_total(value: str) -> int | None:
    match = re.match(r"bytes \*/(\d+)", value.strip())
    return int(match.group(1)) if match else None


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"trtapps/{version('trtapps')} (urllib)"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
        return "trtapps (urllib)"


class _PartState:
    """``<file>.part.json``: the URL and validator (ETag/Last-Modified) a ``.part`` was downloaded from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        self.url: str | None = data.get("url")
        self.validator: str | None = data.get("validator")

    def save(self, url: str, validator: str | None) -> None:
        if (url, validator) != (self.url, self.validator):
            self.url, self.validator = url, validator
            self.path.write_text(json.dumps({"url": url, "validator": validator}), encoding="utf-8")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self.url = self.validator = None


class _NoBar:
    def start(self, total: int | None, done: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


class _RichBar:
    def __init__(self, progress: Any, task: Any) -> None:
        self.progress, self.task = progress, task

    def start(self, total: int | None, done: int) -> None:
        self.progress.update(self.task, total=total, completed=done)

    def advance(self, n: int) -> None:
        self.progress.update(self.task, advance=n)


@contextlib.contextmanager
def _progress_bar(label: str, size: int | None, enabled: bool | None) -> Iterator[Any]:
    """A rich download bar on stderr when it is a terminal (or when asked), else nothing."""
    from rich.console import Console

    console = Console(stderr=True, force_terminal=True if enabled else None)
    if enabled is False or (enabled is None and not console.is_terminal):
        yield _NoBar()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn(f"download {label}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )
    with progress:
        yield _RichBar(progress, progress.add_task(label, total=size))
