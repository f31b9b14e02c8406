"""The built-in run-lifecycle policy: what happens after a stage fails on a frame."""

from __future__ import annotations

import enum
from typing import Any

from trtapps.context import RunContext, StashKey
from trtapps.hookspecs import hookimpl


class ErrorAction(str, enum.Enum):
    """What the pipeline does after a stage raised on a frame (or a batch)."""

    SKIP_FRAME = "skip"  # record the frame(s) as failed and go on
    ABORT = "abort"  # stop the run and report the error


#: the ``on_error`` policy of the running pipeline file
ON_ERROR = StashKey[str]("on_error")


@hookimpl(trylast=True)
def trtapps_handle_stage_error(error: Any, context: RunContext) -> ErrorAction:
    return ErrorAction(context.stash.get(ON_ERROR, "skip"))
