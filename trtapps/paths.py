"""Checks on paths the user gives on the command line, made before any work so a bad one fails in a second."""

from __future__ import annotations

import os
from pathlib import Path

from trtapps.errors import OutputError, error_line


def check_output_file(path: Path | str, option: str) -> Path:
    """Check that *path* can be written as a file (it, or its missing parent folders, can be created there).

    Nothing is created: the command writes the file (after ``path.parent.mkdir(parents=True)``) once its work
    is done; this only makes sure that write will not fail for a reason known now.

    Args:
        path: the output file.
        option: the option that gave it (``--json``), for the message.

    Returns:
        *path* as a :class:`~pathlib.Path`.

    Raises:
        OutputError: *path* is a folder, an existing file that is not writable, or below a file or a folder that
            is not writable (one line, naming the option, the path and the fix).
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise OutputError(f"{option} {path}: is a folder; give a file path, e.g. {option} {path / 'result.json'}")
        if path.exists():
            if not os.access(path, os.W_OK):
                raise OutputError(f"{option} {path}: the file is not writable; fix its permissions or give another")
            return path
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:  # the nearest existing folder above it
            ancestor = ancestor.parent
        if ancestor.exists() and not ancestor.is_dir():
            raise OutputError(f"{option} {path}: {ancestor} is a file, not a folder; give a path in a folder")
        if ancestor.exists() and not os.access(ancestor, os.W_OK | os.X_OK):
            raise OutputError(
                f"{option} {path}: no permission to write in {ancestor}; fix its permissions or give another path"
            )
    except OSError as exc:
        raise OutputError(f"{option} {path}: cannot be written ({error_line(exc)}); give another path") from None
    return path


def unreadable(path: Path) -> str | None:
    """Why *path* cannot be read as a file (``"not found"``, ``"is a folder, not a file"``, ``"cannot be read
    (no permission)"``), or ``None`` when it can: the middle of a one-line error such as
    ``f"{path}: model file {why}; check the path"``."""
    if not path.exists():
        return "not found"
    if path.is_dir():
        return "is a folder, not a file"
    if not os.access(path, os.R_OK):
        return "cannot be read (no permission)"
    return None


__all__ = ["check_output_file", "unreadable"]
