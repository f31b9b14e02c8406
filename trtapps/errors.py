"""The exception tree of trtapps.

User errors (:class:`UserError` and subclasses) are printed by the CLI as one line, without a traceback
(``TRTAPPS_FULL_ERROR=1`` shows it). Each message names the file or config field at fault and the fix.
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of *exc*'s message (its type's name when the message is empty), to quote a foreign error
    inside a one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def error_line(exc: BaseException) -> str:
    """:func:`first_line` after the exception's type (``ImportError: …``); the type's name alone when the message
    is empty."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def os_error_line(exc: OSError, why: str | None = None) -> str:
    """``"FILE: why"`` of an ``OSError`` (``why`` defaults to its ``strerror``; no ``FILE: `` when it names none)."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{why or exc.strerror or first_line(exc)}"


class TrtAppsError(Exception):
    """Base class of every error raised on purpose by trtapps."""


class UserError(TrtAppsError):
    """A mistake the user can fix (bad config, missing file, wrong model); printed without a traceback."""


class ConfigError(UserError):
    """A pipeline file (or the objects given to ``Pipeline``) is invalid.

    ``problems`` holds one ``file:line:col: dotted.path: message`` line per problem.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PluginError(UserError):
    """A plugin could not be loaded or registered something invalid; the message names the plugin."""


class ModelError(UserError):
    """A model file is missing, unreadable or does not fit the app that should run it."""


class InputError(UserError):
    """An input (image, video, stream) cannot be opened at all."""


class OutputError(UserError):
    """An output file or folder cannot be written (the message names it and the fix), or would replace an input."""

    @classmethod
    def from_os_error(cls, what: str, exc: OSError, fix: str) -> OutputError:
        """One line from an ``OSError`` raised while writing: *what* failed, on which file, why, and *fix*."""
        if isinstance(exc, FileExistsError):  # what mkdir says of a file where a folder must go
            why = "a file is in the way of a folder"
        elif isinstance(exc, NotADirectoryError):
            why = "a part of the path is a file, not a folder"
        else:
            why = None
        return cls(f"{what}: {os_error_line(exc, why)}; {fix}")


class BackendUnavailableError(UserError):
    """The requested inference backend cannot run on this machine (missing package or GPU)."""


class CudaError(TrtAppsError):
    """A CUDA runtime/driver call failed; the message names the call and the CUDA error."""


class FrameError(TrtAppsError):
    """One frame could not be read or processed; it is recorded in the results and the run goes on."""


class StageError(TrtAppsError):
    """An exception raised inside a stage, wrapped with the stage and plugin it came from."""

    def __init__(self, stage: str, plugin: str | None, cause: BaseException, frame: int | None = None) -> None:
        self.stage = stage
        self.plugin = plugin
        self.cause = cause
        self.frame = frame
        where = f"stage {stage!r}" + (f" (plugin {plugin!r})" if plugin else "")
        at = f" at frame {frame}" if frame is not None else ""
        super().__init__(f"{where} failed{at}: {type(cause).__name__}: {cause}")


class PipelineClosedError(TrtAppsError):
    """A request was submitted to a pipeline that has been closed."""
