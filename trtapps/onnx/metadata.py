"""Model metadata in an ONNX file's ``metadata_props``: what a prepared model is and how it was made.

Ultralytics writes its export facts there (``names``, ``imgsz``, ``stride``, ``task``, ``batch``…) and the apps
read them back; trtapps keeps every key it finds and adds its own under the ``trtapps.`` prefix, so a prepared
model says which app and variant it is for, its class names, its numeric precision, the batch range it was
prepared for, the sha256 of the file it was made from, the tool versions and how it was calibrated. The values
of trtapps keys are JSON (one string per key, as ONNX requires); other keys are left exactly as written.

trtapps does not add an Ultralytics ``names`` key to a model that had none: the yolo app takes the presence of
``names``/``stride`` as the sign of an Ultralytics YOLOv5 export, so inventing it would turn a YOLOX model into
a "v5" one. The labels go to ``trtapps.labels`` instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtapps.errors import ModelError, first_line
from trtapps.paths import unreadable

#: the prefix of every key trtapps writes
PREFIX = "trtapps."
#: the trtapps keys, without the prefix, in the order ``trtapps info`` shows them
TRTAPPS_KEYS = (
    "app",
    "variant",
    "labels",
    "precision",
    "batch",
    "source",
    "source_sha256",
    "tools",
    "calibration",
    "precision_report",
    "preparation",
)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, key → value string, in file order.

    Only the graph is read (external weight files are not loaded), so this is cheap for any model size.

    Raises:
        ModelError: the file is missing or not an ONNX model.
    """
    import onnx

    path = Path(path)
    if why := unreadable(path):
        raise ModelError(f"{path}: model file {why}; check the path")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({first_line(exc)}); export it again") from exc
    return {p.key: p.value for p in model.metadata_props}


def write_metadata(model: Any, mapping: Mapping[str, Any]) -> None:
    """Set metadata keys of an ``onnx.ModelProto`` in place.

    Existing keys keep their position and get the new value, new keys are appended, and a value of ``None``
    removes the key. String values are stored as they are; anything else is stored as JSON (so lists, dicts,
    numbers and booleans read back with :func:`decode_metadata`).
    """
    values: dict[str, str | None] = {
        str(k): (None if v is None else v if isinstance(v, str) else json.dumps(v, sort_keys=False))
        for k, v in mapping.items()
    }
    kept = []
    for prop in model.metadata_props:
        if prop.key in values:
            value = values.pop(prop.key)
            if value is None:
                continue
            kept.append((prop.key, value))
        else:
            kept.append((prop.key, prop.value))
    kept.extend((k, v) for k, v in values.items() if v is not None)
    del model.metadata_props[:]
    for key, value in kept:
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value


def decode_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    """``props`` with the values of ``trtapps.*`` keys decoded from JSON (other keys stay strings)."""
    decoded: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith(PREFIX):
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                decoded[key] = value
        else:
            decoded[key] = value
    return decoded


def trtapps_metadata(
    *,
    app: str | None = None,
    variant: str | None = None,
    labels: Sequence[str] | None = None,
    precision: str | None = None,
    batch: tuple[int, int] | None = None,
    source: str | Path | None = None,
    calibration: Mapping[str, Any] | None = None,
    report: Mapping[str, Any] | None = None,
    tools: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``trtapps.*`` keys for :func:`write_metadata` (unset arguments are left out).

    Args:
        app, variant: the app type and the head variant the model was prepared for.
        labels: class names, index = class id.
        precision: ``fp32``, ``fp16`` or ``int8``.
        batch: ``(min, max)`` batch the model was prepared for.
        source: the file the model was made from; its name and sha256 are stored.
        calibration: how int8 ranges were calibrated (images, method, preprocessing).
        report: a short summary of the precision step (nodes kept in float32, Q/DQ pairs…).
        tools: tool name → version (default: :func:`tool_versions`).
    """
    meta: dict[str, Any] = {}
    if app is not None:
        meta["app"] = app
    if variant is not None:
        meta["variant"] = variant
    if labels is not None:
        meta["labels"] = [str(x) for x in labels]
    if precision is not None:
        meta["precision"] = precision
    if batch is not None:
        meta["batch"] = {"min": int(batch[0]), "max": int(batch[1])}
    if source is not None:
        meta["source"] = Path(source).name
        meta["source_sha256"] = file_sha256(source)
    meta["tools"] = dict(tools) if tools is not None else tool_versions()
    if calibration is not None:
        meta["calibration"] = dict(calibration)
    if report is not None:
        meta["precision_report"] = dict(report)
    return {PREFIX + k: v for k, v in meta.items()}


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tool_versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """Versions of trtapps, onnx and onnxruntime (and of the *extra* distributions that are installed)."""
    import importlib.metadata as md

    versions: dict[str, str] = {}
    for dist in ("trtapps", "onnx", "onnxruntime", *extra):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return versions


__all__ = [
    "PREFIX",
    "TRTAPPS_KEYS",
    "decode_metadata",
    "file_sha256",
    "read_metadata",
    "tool_versions",
    "trtapps_metadata",
    "write_metadata",
]
