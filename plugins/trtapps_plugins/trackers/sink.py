"""The ``mot`` sink: tracked detections as MOTChallenge text files, one per source.

Each line is ``frame,id,x,y,w,h,score,-1,-1,-1`` with 1-based frames and top-left/size boxes in pixels.
Frames without tracks write nothing (MOTChallenge files list boxes, not frames); frames that failed, and
detections without track ids (no tracker in the pipeline), are skipped — the latter with one warning.

A video's or stream's frame number is its frame index + 1. An image source is a sequence (a MOTChallenge
``img1/`` folder, say): its frame number is the image's position in the source (failed images count), and its
file is named after the images' folder (the sequence's folder for ``SEQ/img1/``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Any

import numpy as np
from pydantic import Field

from trtapps.ops.boxes import xyxy_to_tlwh
from trtapps.registry import SinkOptions
from trtapps.sinks import is_image_result, safe_stem
from trtapps.structures import FrameResult
from trtapps_plugins.trackers.mot import format_mot_rows

log = logging.getLogger("trtapps.mot")


class MotSinkOptions(SinkOptions):
    """MOTChallenge results files."""

    type: str = "mot"
    path: str = Field(
        "mot",
        description="A folder for <source name>.txt per source; a '.txt' path for a single source; "
        "'{source}' in the path is replaced by the source name. Relative to the output folder.",
    )


class MotSink:
    """Writes MOTChallenge rows per source; files are opened on first use and closed by :meth:`close`."""

    needs_images = False

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._files: dict[int, IO[str]] = {}
        self._names: dict[int, str] = {}
        self._seen: dict[int, int] = {}  # results per source so far: an image's frame number
        self._warned = False
        self.rows_written = 0

    def _target(self, result: FrameResult) -> Path:
        where = Path(result.source)
        if is_image_result(result):
            folder = where.parent
            stem = (folder.parent.name if folder.name == "img1" else folder.name) or safe_stem(result.source)
        else:
            stem = safe_stem(result.source)
        if stem in self._names.values():
            stem = f"{stem}-{result.source_id}"
        self._names[result.source_id] = stem
        text = str(self.path)
        if "{source}" in text:
            return Path(text.replace("{source}", stem))
        if self.path.suffix == ".txt":
            if self._files:
                raise ValueError(
                    f"mot sink: path {self.path} is one file but the pipeline has several sources; "
                    "use a folder or '{source}' in the path"
                )
            return self.path
        return self.path / f"{stem}.txt"

    def write(self, result: FrameResult) -> None:
        seen = self._seen[result.source_id] = self._seen.get(result.source_id, 0) + 1
        if not result.ok or result.detections is None:
            return
        dets = result.detections.to_host()
        if dets.track_ids is None:
            if len(dets) and not self._warned:
                log.warning("mot sink: detections without track ids are not written; add a tracker")
                self._warned = True
            return
        handle = self._files.get(result.source_id)
        if handle is None:
            target = self._target(result)
            target.parent.mkdir(parents=True, exist_ok=True)
            handle = self._files[result.source_id] = target.open("w", encoding="utf8")
        if not len(dets):
            return
        frame = seen if is_image_result(result) else result.index + 1
        tlwh = xyxy_to_tlwh(np.asarray(dets.boxes, dtype=np.float64))
        rows = np.column_stack([np.full(len(dets), frame), dets.track_ids, tlwh, dets.scores])
        handle.write(format_mot_rows(rows))
        self.rows_written += len(rows)

    def close(self, summary: Any = None) -> None:
        """Flush and close every file (safe to call twice)."""
        files, self._files = self._files, {}
        errors = []
        for handle in files.values():
            try:
                handle.flush()
                handle.close()
            except OSError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def build_mot_sink(options: MotSinkOptions, context: Any) -> MotSink:
    """The ``mot`` sink factory; the path is resolved under the run's output folder."""
    path = context.output_path(options.path) if context is not None else Path(options.path)
    return MotSink(path)
