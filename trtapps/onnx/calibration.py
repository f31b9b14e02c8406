"""INT8 calibration data: real images fed through the app's own preprocessing.

Activation ranges are only as good as the tensors they are measured on. Calibrating on tensors made by a
different letterbox, colour order or normalisation than the deployment's gives ranges for inputs the model
never sees, which is the classic cause of INT8 accuracy loss. Here every calibration tensor comes from
``App.preprocess`` of the app that will run the model (bound to the fp32 model), so the calibration inputs are
exactly what deployment feeds.

The image set is a folder (``--calib DIR``); when it holds more than the requested number of images, an
evenly spaced selection of the sorted file names is used, so the choice is deterministic and spread over the
whole folder. Names can be excluded to keep calibration disjoint from an evaluation set.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtapps.errors import ConfigError, FrameError, InputError
from trtapps.sources import read_image
from trtapps.stages import App
from trtapps.structures import Frame

log = logging.getLogger("trtapps.onnx.calibration")

#: images per calibration set unless asked otherwise (TensorRT's and ModelOpt's guidance: a few hundred)
DEFAULT_CALIB_SIZE = 200
#: image file suffixes looked for in a calibration folder
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class CalibrationSet:
    """The images an INT8 calibration uses.

    Attributes:
        folder: the folder they were found in (searched recursively).
        images: the chosen images, sorted by path.
        available: how many images the folder holds (after exclusions).
        excluded: how many images were left out because their names were excluded.
    """

    folder: Path
    images: tuple[Path, ...]
    available: int
    excluded: int = 0

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for the model metadata and reports: folder, counts, first/last image and a
        digest of the chosen relative paths (two calibrations with the same digest used the same images)."""
        names = [str(p.relative_to(self.folder)) for p in self.images]
        return {
            "folder": str(self.folder),
            "images": len(self.images),
            "available": self.available,
            "excluded": self.excluded,
            "selection": "all" if len(self.images) == self.available else "evenly spaced over the sorted names",
            "first": names[0] if names else None,
            "last": names[-1] if names else None,
            "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
        }


def calibration_images(
    folder: str | Path, *, limit: int = DEFAULT_CALIB_SIZE, exclude: Iterable[str | Path] = ()
) -> CalibrationSet:
    """The calibration images of *folder*: every image file below it, minus *exclude*, at most *limit*.

    Args:
        folder: the calibration folder (``--calib DIR``).
        limit: most images used; above it an evenly spaced selection of the sorted paths is taken.
        exclude: file names (or paths: only the name counts) never used, e.g. the evaluation set's images.

    Raises:
        InputError: the folder does not exist or holds no image.
        ConfigError: *limit* < 1.
    """
    if limit < 1:
        raise ConfigError(f"calibration size {limit}: use at least 1 image (default {DEFAULT_CALIB_SIZE})")
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: calibration folder not found; pass a folder of images with --calib")
    skip = {Path(e).name for e in exclude}
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    kept = [p for p in found if p.name not in skip]
    if not kept:
        why = f" ({len(found)} excluded)" if found else ""
        raise InputError(
            f"{root}: no calibration images{why} (looked for {', '.join(sorted(IMAGE_SUFFIXES))} files); "
            "pass a folder of images like the ones the model will see with --calib"
        )
    if len(kept) > limit:
        picks = np.unique(np.linspace(0, len(kept) - 1, limit).round().astype(int))
        chosen = tuple(kept[i] for i in picks)
    else:
        chosen = tuple(kept)
    return CalibrationSet(root, chosen, available=len(kept), excluded=len(found) - len(kept))


def bind_app(app: App | Any, model_path: str | Path) -> tuple[App, Callable[[], None]]:
    """An app bound to *model_path* whose ``preprocess`` makes calibration tensors, and how to release it.

    Args:
        app: a built, bound :class:`App` (used as it is; the caller keeps owning it), or the app's options (an
            ``AppOptions`` or a mapping with at least ``type``), from which a pipeline on the ONNX Runtime CPU
            backend is built around the fp32 model; its ``model`` option is replaced by *model_path*.
        model_path: the fp32 model the calibration runs.

    Returns:
        ``(app, close)``: call ``close()`` when done (a no-op for an app that was passed in).

    Raises:
        ConfigError: *app* is neither an app nor app options.
    """
    if isinstance(app, App):
        return app, lambda: None
    if app is None:
        raise ConfigError("int8 calibration needs the app (--app): its preprocessing makes the calibration inputs")
    if hasattr(app, "model_dump"):
        options = dict(app.model_dump())
    elif isinstance(app, Mapping):
        options = dict(app)
    elif isinstance(app, str):
        options = {"type": app}
    else:
        raise ConfigError(f"app {app!r}: give an App instance, app options or an app type name for calibration")
    from trtapps.pipeline import Pipeline

    options["model"] = str(model_path)
    options.pop("batch_size", None)
    pipeline = Pipeline.from_objects(app=options, backend="onnxruntime")
    return pipeline.app, pipeline.close


def preprocessed_batches(
    app: App, images: Sequence[Path], *, batch: int = 1, skipped: list[tuple[Path, str]] | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Model inputs for *images*, made by ``app.preprocess``, *batch* frames at a time (host float arrays).

    Frames are only batched together when the app's :meth:`App.batch_key` agrees (native-size apps batch
    same-size images only). Images that cannot be read are appended to *skipped* as ``(path, reason)`` and left
    out.
    """
    pending: list[Frame] = []
    key: Any = None
    for index, path in enumerate(images):
        try:
            frame = Frame(read_image(path), source=str(path), index=index)
        except FrameError as exc:
            if skipped is not None:
                skipped.append((path, str(exc)))
            log.warning("calibration: skipping %s", exc)
            continue
        frame_key = app.batch_key(frame)
        if pending and (len(pending) >= batch or frame_key != key):
            yield _host_inputs(app, pending)
            pending = []
        pending.append(frame)
        key = frame_key
    if pending:
        yield _host_inputs(app, pending)


def _host_inputs(app: App, frames: Sequence[Frame]) -> dict[str, np.ndarray]:
    inputs, _ = app.preprocess(frames)
    host: dict[str, np.ndarray] = {}
    for name, value in inputs.items():
        array = value.get() if hasattr(value, "get") and not isinstance(value, np.ndarray) else value
        host[name] = np.ascontiguousarray(array)
    return host


def app_attribute(app: App, name: str) -> Any:
    """An attribute of a bound app or of its bound model description (``app.head`` of the yolo app), or
    ``None``: apps expose ``variant``/``input_size`` in different places and none is required to."""
    for owner in (app, _safe_getattr(app, "head")):
        value = _safe_getattr(owner, name)
        if value is not None and not callable(value):
            return value
    return None


def _safe_getattr(owner: Any, name: str) -> Any:
    try:
        return getattr(owner, name, None)
    except Exception:  # a property that raises before bind
        return None


def describe_app(app: App) -> dict[str, Any]:
    """What made the calibration inputs: the app class, its variant and input size when it has them."""
    info: dict[str, Any] = {"app": type(app).__name__}
    for attribute in ("variant", "input_size"):
        value = app_attribute(app, attribute)
        if value is not None:
            info[attribute] = list(value) if isinstance(value, tuple) else value
    return info


__all__ = [
    "DEFAULT_CALIB_SIZE",
    "IMAGE_SUFFIXES",
    "CalibrationSet",
    "app_attribute",
    "bind_app",
    "calibration_images",
    "describe_app",
    "preprocessed_batches",
]
