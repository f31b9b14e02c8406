"""Class names: from Ultralytics model metadata, from a names file, or the COCO-80 default."""

from __future__ import annotations

import ast
from pathlib import Path

# the COCO-80 default names are the core's (the evaluation numbers COCO categories from the same list)
from trtapps.datasets.coco import COCO80 as COCO80


def parse_metadata_names(text: str) -> list[str] | None:
    """Class names from an Ultralytics ``names`` metadata value, or ``None`` when it cannot be read.

    Ultralytics writes a Python dict literal (``"{0: 'person', 1: 'bicycle'}"``); older exports a list.
    Missing ids in a dict are named by their number.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if isinstance(value, (list, tuple)) and value:
        return [str(v) for v in value]
    if isinstance(value, dict) and value and all(isinstance(k, int) and k >= 0 for k in value):
        return [str(value.get(i, i)) for i in range(max(value) + 1)]
    return None


def read_names_file(path: Path) -> list[str]:
    """One class name per line (surrounding whitespace and blank lines ignored), in class-id order.

    Raises:
        OSError: the file cannot be read.
    """
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
