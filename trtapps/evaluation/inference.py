"""Running an app over an evaluation set: the app's own pipeline, with the task's preset applied.

The images go through :meth:`Pipeline.iter_results`, the code path of ``trtapps run``: the pipeline's reader
and worker threads, batching by :meth:`App.batch_key`, the app's preprocessing, runner, decode and NMS. The
only evaluation-specific steps are outside the app: the images are ordered by size (so native-size apps get
full batches) and, where the preset says so, resized by the loader first (the Ultralytics/YOLOv5 val
dataloader), with the boxes mapped back to the original pixels afterwards.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from trtapps.config.loader import validate_data
from trtapps.errors import ConfigError, FrameError, InputError, ModelError
from trtapps.evaluation.presets import EvalPreset, LongSideResize, find_preset, resolve_preset
from trtapps.pipeline import Pipeline
from trtapps.plugins import PluginManager
from trtapps.stages import FrameFailure
from trtapps.structures import Detections, Frame, FrameResult

log = logging.getLogger("trtapps.evaluation")

#: the precisions ``--precision`` knows; only a model already in that precision can be evaluated at it
PRECISIONS = ("fp32", "fp16", "int8")

#: CLI option → app option, for the thresholds the user may override
OVERRIDE_OPTIONS = {"conf": "conf_threshold", "iou": "iou_threshold"}


@dataclass(frozen=True)
class ImageItem:
    """One image of an evaluation set.

    Attributes:
        key: the set's identifier of the image (COCO image id, WIDER ``event/name.jpg``).
        path: the image file.
        size: ``(height, width)`` when the set's annotations give it (used to order the images), else ``None``.
    """

    key: Any
    path: Path
    size: tuple[int, int] | None = None


@dataclass
class EvalRun:
    """Detections of every image of a set, and how they were produced.

    Attributes:
        detections: image key → :class:`Detections` in original image pixels (empty for failed images).
        sizes: image key → ``(height, width)`` as decoded.
        failures: ``(path, error)`` of images that could not be read or processed.
        preset: the preset applied (with the user's overrides).
        app: the app type; model, backend, device, precision: what ran.
        labels: the app's class names.
        seconds: wall time of the inference loop.
    """

    detections: dict[Any, Detections]
    sizes: dict[Any, tuple[int, int]]
    failures: list[tuple[str, str]]
    preset: EvalPreset
    app: str
    model: str
    backend: str
    device: str
    precision: str
    labels: list[str]
    batch_size: int
    seconds: float = 0.0
    app_options: dict[str, Any] = field(default_factory=dict)

    def report(
        self,
        task: str,
        scores: Mapping[str, Any],
        *,
        images: int,
        data: str,
        gt: str | None,
        extra: Mapping[str, Any],
    ) -> dict[str, Any]:
        """A task's ``--json`` document: the task and its *scores*, the image count, what ran and on which set,
        the task's *extra* fields, then the failed images and the wall time (the layout every task shares)."""
        return {
            "task": task,
            **scores,
            "images": images,
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "preset": self.preset.to_json(),
            "app": self.app,
            "model": self.model,
            "data": data,
            "gt": gt,
            "batch": self.batch_size,
            **extra,
            "failed": [{"image": p, "error": e} for p, e in self.failures],
            "seconds": round(self.seconds, 2),
        }


# -- sets ----------------------------------------------------------------------------------------------------------
def image_folder(data: Path) -> Path:
    """A set's image folder: ``DATA/images`` when there is one, else ``DATA`` itself."""
    return data / "images" if (data / "images").is_dir() else data


def check_images_exist(items: Sequence[ImageItem], listed: str, images: Path) -> None:
    """Raise when an image of the set is not on disk.

    Args:
        items: the set's images.
        listed: where the images are listed, for the message (``"listed in instances.json"``).
        images: the folder they are looked up under, for the message.

    Raises:
        InputError: the first missing image, with how many are missing.
    """
    missing = [i.path for i in items if not i.path.is_file()]
    if missing:
        raise InputError(
            f"{missing[0]}: image {listed} not found ({len(missing)} of {len(items)} missing); "
            f"images are looked up under {images}"
        )


def is_number(value: Any) -> bool:
    """A finite JSON number (``true``/``false`` are not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    """A JSON integer (``true``/``false`` are not integers)."""
    return isinstance(value, int) and not isinstance(value, bool)


def short_repr(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to *limit* characters, to quote a bad value of a ground-truth file in a one-line
    message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- precision -----------------------------------------------------------------------------------------------------
def model_precision(path: Path) -> str | None:
    """The numeric precision of an ONNX graph: ``int8`` (quantize/dequantize or integer ops), ``fp16`` (float16
    weights), ``fp32``; ``None`` for files that are not ONNX (engines: their precision was fixed at build)."""
    if path.suffix.lower() != ".onnx":
        return None
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read the ONNX graph to check its precision ({exc})") from exc
    ops = {node.op_type for node in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}:
        return "int8"
    float16 = onnx.TensorProto.FLOAT16
    if any(t.data_type == float16 for t in model.graph.initializer) or any(
        i.type.tensor_type.elem_type == float16 for i in model.graph.input
    ):
        return "fp16"
    return "fp32"


def check_precision(requested: str, model_path: Path, app: str | None = None) -> str:
    """The precision to report, after checking that the model really is in the requested one.

    Evaluation runs the model as given and converts nothing: an fp16 or int8 evaluation takes a model already
    converted, made by ``trtapps build --precision fp16|int8`` (:func:`trtapps.onnx.precision.apply_precision`;
    int8 calibrates on images that should stay outside the evaluation set, which is why eval does not do it).
    *app* only completes the ``trtapps build`` command the error suggests.

    Raises:
        ConfigError: an unknown precision, or a model whose graph is in another precision (one line, with the fix).
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"--precision {requested}: unknown precision; use one of {', '.join(PRECISIONS)}")
    actual = model_precision(model_path)
    if actual is None or actual == requested:
        return requested
    if requested == "fp32":
        raise ConfigError(
            f"--precision fp32: {model_path.name} is an {actual} model; pass --precision {actual} to evaluate it "
            "as it is, or give the fp32 model"
        )
    calib = " --calib IMAGES" if requested == "int8" else ""
    outside = " (calibration images outside the evaluation set)" if requested == "int8" else ""
    raise ConfigError(
        f"--precision {requested}: {model_path.name} is an {actual} model, and eval runs the model as given (it "
        f"does not convert it); make the {requested} model with `trtapps build {model_path} --app {app or 'APP'} "
        f"--precision {requested}{calib}`{outside} and pass it with --model, or use --precision {actual}"
    )


# -- building the pipeline -----------------------------------------------------------------------------------------
def build_pipeline(
    task: str,
    app: str,
    model: str,
    *,
    backend: str = "auto",
    batch: int = 1,
    overrides: Mapping[str, Any] | None = None,
    manager: PluginManager | None = None,
) -> tuple[Pipeline, EvalPreset]:
    """The app's pipeline with the task's preset applied.

    The app is built and bound once with the user's options to learn its variant, the preset for it is looked
    up (:func:`~trtapps.evaluation.presets.find_preset`), and, when the preset changes options, the app is
    built again from the changed options and bound to the same runner (the model is loaded once).

    Args:
        task: ``"detect"`` or ``"faces"``.
        app: the app type.
        model: the model path or zoo name.
        backend: the backend name (``auto`` picks).
        batch: frames per inference call (capped by the model).
        overrides: app options the user set explicitly (``--conf``, ``--iou``, ``--option``); they win over the
            preset and are shown as overrides. ``None`` values count as not given.
        manager: the plugin manager (default: a new one).

    Raises:
        ConfigError: unknown app/backend, invalid options, or an override the app does not have.
    """
    manager = manager or PluginManager()
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    base = {**given, "type": app, "model": model, "batch_size": batch}
    config = validate_data({"app": base, "backend": backend}, manager.registries, require_source=False)
    probe = Pipeline(config, manager=manager)
    fields = list(type(config.app).model_fields)
    try:
        preset = resolve_preset(find_preset(task, app, probe.app), fields, overrides)
    except KeyError as exc:
        flag = next((f"--{k}" for k, v in OVERRIDE_OPTIONS.items() if v == exc.args[0]), f"--option {exc.args[0]}")
        probe.close()
        raise ConfigError(f"{flag}: app {app!r} has no option {exc.args[0]!r}") from None
    current = config.app.model_dump()
    if all(current.get(k) == v for k, v in preset.options.items()):
        return probe, preset
    try:
        config = validate_data(
            {"app": {**base, **preset.options}, "backend": backend}, manager.registries, require_source=False
        )
        return Pipeline(config, manager=manager, runner=probe.runner), preset
    except BaseException:
        probe.close()
        raise


# -- running -------------------------------------------------------------------------------------------------------
class _EvalSource:
    """A pipeline source over the images of a set, in the given order; ``Frame.index`` = position in the list."""

    name = "evaluation set"

    def __init__(self, items: Sequence[ImageItem], prepare: Callable[[np.ndarray], np.ndarray] | None) -> None:
        self.items = list(items)
        self.prepare = prepare
        self.original_sizes: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Frame | FrameFailure]:
        from trtapps.sources import read_image

        for index, item in enumerate(self.items):
            try:
                image = read_image(item.path)
            except FrameError as exc:
                yield FrameFailure(str(item.path), index, str(exc))
                continue
            self.original_sizes[index] = (int(image.shape[0]), int(image.shape[1]))
            if self.prepare is not None:
                image = self.prepare(image)
            yield Frame(image, source=str(item.path), index=index)

    def close(self) -> None:
        pass


def long_side_resize(image: np.ndarray, long_side: int, mode: LongSideResize) -> np.ndarray:
    """The Ultralytics/YOLOv5 val loader step: scale so the long side is *long_side*, the other ``ceil``-ed.

    ``r = long_side / max(h, w)``; new size ``(min(ceil(w·r), long_side), min(ceil(h·r), long_side))``;
    ``INTER_LINEAR`` (``"linear"``), or ``INTER_AREA`` when shrinking (``"area_down"``). Unchanged when
    ``r == 1``.
    """
    h, w = image.shape[:2]
    r = long_side / max(h, w)
    if r == 1:
        return image
    size = (min(math.ceil(w * r), long_side), min(math.ceil(h * r), long_side))
    interpolation = cv2.INTER_AREA if mode == "area_down" and r < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def model_long_side(pipeline: Pipeline) -> int | None:
    """The long side of the app's input: the model's fixed H/W, else the app's ``input_size``/``head.input_size``."""
    shape = pipeline.runner.inputs[0].shape if pipeline.runner.inputs else ()
    if len(shape) == 4 and shape[2] is not None and shape[3] is not None:
        return max(int(shape[2]), int(shape[3]))
    for owner in (pipeline.app, getattr(pipeline.app, "head", None)):
        size = getattr(owner, "input_size", None)
        if isinstance(size, (tuple, list)) and len(size) == 2:
            return max(int(size[0]), int(size[1]))
    return None


def _unresize(dets: Detections, used: tuple[int, int], original: tuple[int, int]) -> Detections:
    """Map boxes (and landmarks) from the loader-resized image back to the original: divide by the height gain
    (Ultralytics' ``ratio_pad[0][0]``) and clip to the original image."""
    if used == original or len(dets) == 0:
        return dets
    gain = used[0] / original[0]
    boxes = dets.boxes / np.float32(gain)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, original[1])
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, original[0])
    landmarks = None if dets.landmarks is None else dets.landmarks / np.float32(gain)
    return dets.replace(boxes=boxes, landmarks=landmarks)


def run_images(
    pipeline: Pipeline,
    items: Sequence[ImageItem],
    preset: EvalPreset,
    on_image: Callable[[FrameResult], None] | None = None,
) -> tuple[dict[Any, Detections], dict[Any, tuple[int, int]], list[tuple[str, str]]]:
    """Run every image through the pipeline (``iter_results``, no sinks).

    Images are ordered by their size when the set gives it, so same-size images are adjacent and native-size
    apps (whose :meth:`App.batch_key` is the size) batch them.

    Returns:
        ``(detections, sizes, failures)``: by image key, in original pixels; sizes as decoded; failed images.
    """
    order = sorted(range(len(items)), key=lambda i: (items[i].size or (0, 0), i))
    ordered = [items[i] for i in order]
    prepare = None
    if preset.long_side_resize is not None:
        long_side = model_long_side(pipeline)
        if long_side is None:
            log.warning("preset %s: the model input size is unknown; skipping the loader resize", preset.name)
        else:
            mode = preset.long_side_resize

            def prepare(image: np.ndarray) -> np.ndarray:
                return long_side_resize(image, long_side, mode)

    source = _EvalSource(ordered, prepare)
    detections: dict[Any, Detections] = {}
    sizes: dict[Any, tuple[int, int]] = {}
    failures: list[tuple[str, str]] = []
    for result in pipeline.iter_results(write=False, sources=[source]):
        item = ordered[result.index]
        original = source.original_sizes.get(result.index)
        if original is not None:
            sizes[item.key] = original
        if result.error is not None or result.detections is None:
            failures.append((str(item.path), result.error or "no detections returned"))
            detections[item.key] = Detections.empty()
        else:
            used = (result.height, result.width)
            detections[item.key] = _unresize(result.detections, used, original or used)
        if on_image is not None:
            on_image(result)
    return detections, sizes, failures


def evaluate_app(
    task: str,
    items: Sequence[ImageItem],
    *,
    app: str,
    model: str,
    backend: str = "auto",
    precision: str = "fp32",
    batch: int = 1,
    conf: float | None = None,
    iou: float | None = None,
    app_options: Mapping[str, Any] | None = None,
    on_image: Callable[[FrameResult], None] | None = None,
    on_start: Callable[[Pipeline, EvalPreset], None] | None = None,
) -> EvalRun:
    """Build the app's pipeline with the task's preset and run it over *items* (the shared part of every task).

    Raises:
        ConfigError, ModelError, BackendUnavailableError: one line each, as the CLI prints them.
    """
    import time

    from trtapps.zoo import resolve_model

    checked = check_precision(precision, resolve_model(model, Path.cwd()), app)
    overrides = dict(app_options or {})
    for flag, value in (("conf", conf), ("iou", iou)):
        if value is not None:
            overrides[OVERRIDE_OPTIONS[flag]] = value
    pipeline, preset = build_pipeline(task, app, model, backend=backend, batch=batch, overrides=overrides)
    try:
        if on_start is not None:
            on_start(pipeline, preset)
        start = time.perf_counter()
        detections, sizes, failures = run_images(pipeline, items, preset, on_image)
        seconds = time.perf_counter() - start
        return EvalRun(
            detections=detections,
            sizes=sizes,
            failures=failures,
            preset=preset,
            app=app,
            model=str(pipeline.runner.model_path),
            backend=pipeline.runner.backend,
            device=pipeline.runner.device,
            precision=checked,
            labels=[str(label) for label in pipeline.app.labels],
            batch_size=pipeline.batch_size,
            seconds=seconds,
            app_options=pipeline.config.app.model_dump(),
        )
    finally:
        pipeline.close()
