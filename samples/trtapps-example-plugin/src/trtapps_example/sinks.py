"""Sink ``csv``: one row per detection, flushed after every frame so an interrupted run keeps whole rows.

Columns: ``source, frame, class, label, score, x1, y1, x2, y2`` (boxes in original pixels). Frames without
detections add no row, and failed frames add none either: their errors are in the run summary (and in the
``jsonl`` sink, which writes one line per frame).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from trtapps import FrameResult, RunContext

from trtapps_example.options import CsvSinkOptions

COLUMNS = ("source", "frame", "class", "label", "score", "x1", "y1", "x2", "y2")

logger = logging.getLogger("trtapps_example.csv")


class CsvSink:
    """Writes the detections of every frame result as CSV rows.

    Args:
        path: the output file (parent folders are created; an existing file is replaced).
        decimals: decimals of the box coordinates (scores get 5).
    """

    #: the pipeline keeps host images only for sinks that ask for them; this one does not
    needs_images = False

    def __init__(self, path: str | Path, decimals: int = 2) -> None:
        self.path = Path(path)
        self.decimals = decimals
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: Any = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)
        self._file.flush()

    def write(self, result: FrameResult) -> None:
        """Append one row per detection of *result* and flush."""
        if self._file is None:
            raise RuntimeError(f"csv sink {self.path} is closed")
        if result.detections is None:  # a failed frame: nothing detected, the error is reported elsewhere
            return
        dets = result.detections.to_host()
        rows = zip(dets.boxes.tolist(), dets.scores.tolist(), dets.class_ids.tolist(), strict=True)
        for box, score, class_id in rows:
            self._writer.writerow([
                result.source, result.index, class_id, result.label(class_id), round(score, 5),
                *(round(v, self.decimals) for v in box),
            ])
            self.rows += 1
        self._file.flush()

    def close(self, summary: Any = None) -> None:
        """Close the file; safe to call more than once (the pipeline calls it after errors and Ctrl-C too)."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        frames = getattr(summary, "frames_out", None)
        logger.info("csv: %d detections of %s frames in %s", self.rows, "?" if frames is None else frames, self.path)


def create_csv_sink(options: CsvSinkOptions, context: RunContext) -> CsvSink:
    """The factory registered for ``csv``: relative paths go under the run's output folder."""
    return CsvSink(context.output_path(options.path), decimals=options.decimals)
