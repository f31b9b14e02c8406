"""The ``trtapps`` command line (also ``python -m trtapps``).

Commands are thin: each one turns options into a pipeline/config call. User errors (:class:`UserError`) are
printed as one line without a traceback; ``TRTAPPS_FULL_ERROR=1`` shows the traceback.

Log records of trtapps and its plugins go to stderr as ``warning: …`` lines; ``-v`` before the command (or
``TRTAPPS_LOG=info``) adds the ``info: …`` lines, e.g. which decoder each video got and why; ``-vv`` or
``TRTAPPS_LOG=debug`` adds debug lines.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Any

import typer

from trtapps.cli.interrupts import handling_interrupts
from trtapps.errors import ConfigError, UserError

#: environment variable with the log level of the command line (debug, info, warning, error)
LOG_ENV = "TRTAPPS_LOG"
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _LevelPrefix(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def configure_logging(verbose: int = 0) -> int:
    """Send the ``trtapps`` loggers to stderr at the level asked by ``-v`` (info), ``-vv`` (debug) or
    ``$TRTAPPS_LOG`` (default warning), whichever shows more; returns the level. Calling it again replaces the
    handler it installed.

    Raises:
        ConfigError: ``$TRTAPPS_LOG`` is not a level name.
    """
    name = os.environ.get(LOG_ENV, "").strip().lower() or "warning"
    if name not in LOG_LEVELS:
        raise ConfigError(f"{LOG_ENV}={name!r} is not one of {', '.join(LOG_LEVELS)}; unset it or pick one")
    level = min(LOG_LEVELS[name], {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG))
    root = logging.getLogger("trtapps")
    for handler in [h for h in root.handlers if getattr(h, "_trtapps_cli", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelPrefix())
    handler.setLevel(level)
    handler._trtapps_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if level < root.getEffectiveLevel():  # let the records be made; never raise a level someone else lowered
        root.setLevel(level)
    quiet_video_libraries(level)
    return level


def quiet_video_libraries(level: int) -> None:
    """Keep FFmpeg's and OpenCV's own messages off the terminal below ``-vv``.

    A broken stretch of video made FFmpeg print dozens of lines (``ac-tex damaged…``, ``moov atom not found``) around
    trtapps' one-line report of the same frames, which is what counts them. At debug level they are left on. A
    value the user set for ``OPENCV_FFMPEG_LOGLEVEL`` is kept (FFmpeg reads it when a capture opens).
    """
    import cv2

    debug = level <= logging.DEBUG
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "24" if debug else "-8")  # AV_LOG_WARNING / AV_LOG_QUIET
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_INFO if debug else cv2.utils.logging.LOG_LEVEL_ERROR)


def build_app(manager: Any = None) -> typer.Typer:
    """The root command with the built-in commands and every plugin's ``trtapps_register_commands``."""
    from trtapps.cli import commands
    from trtapps.plugins import PluginManager

    app = typer.Typer(
        name="trtapps",
        help="Run vision pipelines (YOLO, RetinaFace, trackers) on ONNX Runtime and TensorRT.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _options(
        verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                             help="Show info lines (-v) and debug lines (-vv) on stderr.")] = 0,
    ) -> None:
        configure_logging(verbose)

    commands.register(app)
    manager = manager if manager is not None else PluginManager()
    known = len(manager.failures)
    manager.register_commands(cli=app)
    for failure in manager.failures[known:]:  # said here: later commands build managers of their own
        typer.echo(f"warning: {failure} (its commands are missing; other plugins are unaffected)", err=True)
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``trtapps`` script."""
    full = bool(os.environ.get("TRTAPPS_FULL_ERROR"))
    try:
        app = build_app()
        with handling_interrupts(restore=argv is not None):  # argv None: this process is the trtapps command
            code = app(args=argv, prog_name="trtapps", standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C into Exit(130), returned as a value outside standalone mode
            raise KeyboardInterrupt
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except UserError as exc:
        if full:
            raise
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: outputs written so far are complete (summary.json counts the frames read but not "
              "processed as frames_unfinished)", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        # click's exceptions (typer vendors click in recent versions): duck-typed to work with either
        if type(exc).__name__ == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if type(exc).__name__ == "Abort":
            print("aborted", file=sys.stderr)
            sys.exit(130)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors: bad option values, unknown commands
            exc.show()
            sys.exit(exc.exit_code)
        if full:
            raise
        print(f"error: {type(exc).__name__}: {exc} (set TRTAPPS_FULL_ERROR=1 for the traceback)", file=sys.stderr)
        sys.exit(1)
