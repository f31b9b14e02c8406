"""The ``yolo`` app: letterbox preprocessing, head decoding and NMS for YOLOv5, YOLOv8/YOLO11 and YOLOX.

:meth:`YoloApp.bind` reads the model once (input size, head layout, metadata) and picks the variant; the
per-batch work is :meth:`YoloApp.preprocess` (host letterbox + normalisation, frames of any size in one batch)
and :meth:`YoloApp.decode` (the NumPy decoders of :mod:`trtapps_plugins.yolo.decode`, then the letterbox
inverse). With a device runner the pipeline calls :meth:`YoloApp.preprocess_device` and
:meth:`YoloApp.decode_device_async` instead: the same results from the CuPy kernels
(:mod:`trtapps_plugins.yolo.device`).
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from trtapps import App, ConfigError, Detections, Frame, ModelError, Residency, RunContext, Runner
from trtapps.onnx.graph import format_dims
from trtapps.ops.cuda.buffers import DeviceBuffer, PinnedStorage
from trtapps.ops.cuda.candidates import CandidatePlan, top_candidates
from trtapps.ops.letterbox import PAD_VALUE, LetterboxTransform, letterbox, scale_boxes
from trtapps.postprocess import resolve_classes
from trtapps.structures import Array, to_host
from trtapps_plugins.yolo.decode import DecodeParams, looks_decoded, yolox_grid
from trtapps_plugins.yolo.decode import decode as decode_head
from trtapps_plugins.yolo.device import (
    ANCHOR_COL,
    CLASS_COL,
    candidate_plan,
    device_decode_problem,
    imagenet_normalise,
    mask_classes,
    normalisation,
)
from trtapps_plugins.yolo.names import COCO80, parse_metadata_names, read_names_file
from trtapps_plugins.yolo.options import YoloOptions

if TYPE_CHECKING:
    from trtapps.ops.cuda.nms import HostCompact

#: ImageNet statistics of legacy YOLOX / ByteTrack inputs, RGB order, on 0-1 pixels
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])

_FIX_EXPORT = "use a YOLOv5, YOLOv8/YOLO11 or YOLOX detection export (one NCHW input, one output)"


@dataclass(frozen=True)
class YoloHead:
    """What :meth:`YoloApp.bind` learned about the model.

    Attributes:
        variant: ``"v5"``, ``"v8"`` or ``"yolox"``.
        layout: the decoder to use: ``"v8"``, ``"v5"`` (also decoded YOLOX) or ``"yolox_raw"``.
        input_name: the model's image input.
        output_name: the model's head output.
        input_size: ``(H, W)`` the frames are letterboxed to.
        input_dtype: float32 or float16.
        num_classes: ``C``.
        names_from: where the class names came from (``"option"``, ``"metadata"``, ``"coco80"``, ``"ids"``).
    """

    variant: str
    layout: str
    input_name: str
    output_name: str
    input_size: tuple[int, int]
    input_dtype: np.dtype[Any]
    num_classes: int
    names_from: str

    def describe(self) -> str:
        h, w = self.input_size
        return (
            f"variant {self.variant} ({self.layout} head), input {h}x{w} {self.input_dtype}, "
            f"{self.num_classes} classes (names from {self.names_from})"
        )


class YoloApp(App):
    """YOLOv5, YOLOv8/YOLO11 and YOLOX detection.

    All frames are letterboxed to the model input size, so frames of any size batch together
    (:meth:`~trtapps.App.batch_key` stays ``None``).

    Args:
        options: the validated ``app:`` options.
        names: class names from the ``names`` option (already read from its file), or ``None``.
        logger: where :meth:`bind` reports what it detected.
    """

    #: ``classes`` is applied to the candidates before NMS, as Ultralytics does
    applies_classes = True

    def __init__(
        self, options: YoloOptions, names: Sequence[str] | None = None, logger: logging.Logger | None = None
    ) -> None:
        self.options = options
        self._names_option = list(names) if names is not None else None
        self._logger = logger or logging.getLogger("trtapps.yolo")
        self._head: YoloHead | None = None
        self._params = DecodeParams()
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        # the GPU data path's reusable buffers (allocated on first use)
        self._input_buffer = DeviceBuffer()
        self._scratch_buffer = DeviceBuffer()
        self._pinned = PinnedStorage()
        self._device_classes: dict[tuple[Any, ...], Any] = {}
        self._warned: set[str] = set()

    @property
    def head(self) -> YoloHead:
        """The model description from :meth:`bind` (``RuntimeError`` before it)."""
        if self._head is None:
            raise RuntimeError("YoloApp.bind(runner) must be called before preprocess/decode")
        return self._head

    # -- bind ----------------------------------------------------------------------------------------------
    def bind(self, runner: Runner) -> None:
        """Check the model, detect the variant, input size and class names, and resolve ``classes``.

        Raises:
            ModelError: the model is not a YOLO detection export this app can run (one line, with the fix).
            ConfigError: ``classes`` names a class the model does not have.
        """
        model = runner.model_path
        opts = self.options
        if len(runner.inputs) != 1:
            _fail(model, f"app yolo needs one image input, the model has {len(runner.inputs)}", _FIX_EXPORT)
        inp = runner.inputs[0]
        if len(inp.shape) != 4 or inp.shape[1] != 3:
            _fail(
                model,
                f"input {inp.describe()} is not NCHW with 3 channels",
                "export the model with an NCHW [batch, 3, height, width] input",
            )
        if not np.issubdtype(inp.dtype, np.floating):
            _fail(
                model,
                f"input {inp.describe()} is not a float tensor",
                "export with a float32 or float16 input",
            )
        if len(runner.outputs) != 1:
            outs = ", ".join(o.describe() for o in runner.outputs)
            _fail(
                model,
                f"app yolo needs one output [batch, 4+classes, anchors] or [batch, anchors, 5+classes], "
                f"the model has {len(runner.outputs)} ({outs})",
                _FIX_EXPORT + ", not a segmentation/pose model or another app's model",
            )
        out = runner.outputs[0]
        if len(out.shape) != 3:
            _fail(
                model,
                f"output {out.describe()} has rank {len(out.shape)}, app yolo needs rank 3",
                "export YOLOv5 with its head decode, YOLOv8/11 with nms=False, YOLOX with export_onnx.py",
            )
        metadata = runner.metadata
        task = metadata.get("task")
        if task is not None and task != "detect":
            _fail(model, f"is a {task!r} model (metadata task)", "app yolo runs detection models; export one")
        if metadata.get("end2end", "").lower() == "true":
            _fail(model, "is an end-to-end (NMS-free) export", "export it again with end2end=False")

        variant = self._variant(model, out.shape, metadata)
        channels = out.shape[1] if variant == "v8" else out.shape[2]
        num_classes = (channels or 0) - (4 if variant == "v8" else 5)
        if num_classes < 1:
            _fail(
                model,
                f"output {out.describe()} leaves {num_classes} class channels for the {variant} layout",
                "check app.variant or the export",
            )
        input_size = self._input_size(model, inp.shape, metadata)
        labels, names_from = self._labels(model, num_classes, metadata)

        layout, grid = variant, None
        if variant == "yolox":
            rows = self._probe(runner, input_size)
            if looks_decoded(rows):
                layout = "v5"
            else:
                layout = "yolox_raw"
                try:
                    grid = yolox_grid(input_size, rows.shape[0])
                except ValueError as exc:
                    _fail(model, str(exc), "check app.variant, and app.input_size for a dynamic-size model")
        classes = None  # filtered before NMS, so a class left out cannot suppress one kept (agnostic NMS)
        if opts.classes is not None:
            classes = np.asarray(resolve_classes(opts.classes, labels, "app.classes"), dtype=np.int64)

        # all checks passed: only now does the app change (a refused model leaves it as it was)
        self.labels = tuple(labels)
        self._grid = grid
        self._head = YoloHead(
            variant=variant,
            layout=layout,
            input_name=inp.name,
            output_name=out.name,
            input_size=input_size,
            input_dtype=np.dtype(inp.dtype),
            num_classes=num_classes,
            names_from=names_from,
        )
        self._params = DecodeParams(
            conf_threshold=opts.conf_threshold,
            iou_threshold=opts.iou_threshold,
            max_det=opts.max_det,
            max_candidates=opts.max_candidates,
            agnostic=opts.agnostic_nms,
            multi_label=opts.multi_label,
            classes=classes,
        )
        self._logger.info("yolo: %s: %s", model.name, self._head.describe())

    def _variant(self, model: Path, shape: tuple[int | None, ...], metadata: Mapping[str, str]) -> str:
        """The head variant: the ``variant`` option, else from the output layout and the metadata."""
        _, d1, d2 = shape
        variant = self.options.variant
        if variant == "auto":
            if d1 is not None and (d2 is None or d1 < d2):
                return "v8"  # [B, 4 + C, N], channel-first: C + 4 < N
            if d2 is None:
                _fail(model, f"output shape {format_dims(shape)} is dynamic", "set app.variant (v5, v8 or yolox)")
            # [B, N, 5 + C]: Ultralytics' YOLOv5 exports carry names/stride metadata, YOLOX exports carry none
            return "v5" if ("names" in metadata or "stride" in metadata) else "yolox"
        channel_first = variant == "v8"
        channels = d1 if channel_first else d2
        anchors = d2 if channel_first else d1
        if channels is None or (anchors is not None and channels > anchors):
            want = "[batch, 4+classes, anchors]" if channel_first else "[batch, anchors, 5+classes]"
            _fail(
                model,
                f"app.variant {variant} needs an output {want}, the model's is {format_dims(shape)}",
                "set app.variant: auto or the variant of this model",
            )
        return variant

    def _input_size(self, model: Path, shape: tuple[int | None, ...], metadata: Mapping[str, str]) -> tuple[int, int]:
        """``(H, W)``: the model's fixed size, else ``input_size``, else Ultralytics' ``imgsz`` metadata."""
        fixed = (shape[2], shape[3])
        option = self.options.input_size
        if option is not None:
            if any(f is not None and f != o for f, o in zip(fixed, option, strict=True)):
                size = "x".join("?" if f is None else str(f) for f in fixed)
                _fail(
                    model,
                    f"the model input is fixed at {size}, but app.input_size is {option[0]}x{option[1]}",
                    f"remove app.input_size or set it to [{fixed[0] or option[0]}, {fixed[1] or option[1]}]",
                )
            return option
        if fixed[0] is not None and fixed[1] is not None:
            return (fixed[0], fixed[1])
        imgsz = _parse_imgsz(metadata.get("imgsz"))
        if imgsz is not None and all(f is None or f == i for f, i in zip(fixed, imgsz, strict=True)):
            return imgsz
        _fail(model, f"the model input has a dynamic size {format_dims(shape)}", "set app.input_size, e.g. [640, 640]")

    def _labels(self, model: Path, num_classes: int, metadata: Mapping[str, str]) -> tuple[list[str], str]:
        """Class names and where they came from: the ``names`` option, metadata, COCO-80 or the ids."""
        if self._names_option is not None:
            if len(self._names_option) != num_classes:
                _fail(
                    model,
                    f"the model has {num_classes} classes, app.names gives {len(self._names_option)} names",
                    f"give {num_classes} names, one per class id, or remove app.names",
                )
            return list(self._names_option), "option"
        meta_names = parse_metadata_names(metadata["names"]) if "names" in metadata else None
        if meta_names is not None and len(meta_names) == num_classes:
            return meta_names, "metadata"
        if num_classes == len(COCO80):
            return list(COCO80), "coco80"
        return [str(i) for i in range(num_classes)], "ids"

    def _probe(self, runner: Runner, input_size: tuple[int, int]) -> np.ndarray:
        """Run one grey frame to see the head's values: ``(N, 5 + C)`` float32 rows of image 0."""
        batch = runner.inputs[0].shape[0] or 1
        feed: Array = np.full((batch, 3, *input_size), 114.0, dtype=runner.inputs[0].dtype)
        if runner.residency is Residency.DEVICE:
            import cupy

            feed = cupy.asarray(feed)
        output = runner.infer({runner.inputs[0].name: feed})[runner.outputs[0].name]
        return np.asarray(to_host(output)[0], dtype=np.float32)

    # -- per batch -----------------------------------------------------------------------------------------
    def preprocess(self, frames: Sequence[Frame]) -> tuple[dict[str, Array], list[Any]]:
        """Letterbox and normalise a batch of frames of any sizes.

        v5/v8: centred letterbox, BGR→RGB, /255. YOLOX: top-left, BGR 0-255 (``yolox_legacy``: RGB, /255,
        ImageNet mean/std).

        Returns:
            ``({input_name: (B, 3, H, W) float32/float16 NCHW}, [LetterboxTransform per frame])``.
        """
        head = self.head
        h, w = head.input_size
        yolox = head.variant == "yolox"
        legacy = yolox and self.options.yolox_legacy
        rgb_unit = not yolox or legacy  # RGB on 0-1 (Ultralytics, legacy YOLOX), else BGR on 0-255 (YOLOX)
        batch = np.empty((len(frames), 3, h, w), dtype=np.float32)
        metas: list[LetterboxTransform] = []
        for i, frame in enumerate(frames):
            canvas, transform = letterbox(to_host(frame.image), (h, w), centered=not yolox)
            chw = canvas.transpose(2, 0, 1)
            batch[i] = chw[::-1] if rgb_unit else chw
            metas.append(transform)
        if rgb_unit:
            batch /= 255
        if legacy:
            batch -= IMAGENET_MEAN[:, None, None]
            batch /= IMAGENET_STD[:, None, None]
        return {head.input_name: batch.astype(head.input_dtype, copy=False)}, metas

    def decode(self, outputs: Mapping[str, Array], frames: Sequence[Frame], metas: Sequence[Any]) -> list[Detections]:
        """Decode, NMS and map back to each frame's pixels (boxes clipped to the frame).

        Args:
            outputs: the runner's outputs; the head is ``(B, 4 + C, N)`` (v8) or ``(B, N, 5 + C)``.
            frames: the batch's frames.
            metas: each frame's :class:`~trtapps.ops.letterbox.LetterboxTransform` from :meth:`preprocess`.
        """
        head = self.head
        pred = to_host(outputs[head.output_name])
        if pred.shape[0] != len(frames) or len(metas) != len(frames):
            raise ValueError(f"yolo decode got {pred.shape[0]} outputs and {len(metas)} metas for {len(frames)} frames")
        results = []
        for image_pred, transform in zip(pred, metas, strict=True):
            boxes, scores, class_ids = decode_head(image_pred, head.layout, self._params, self._grid)
            results.append(Detections(scale_boxes(boxes, transform, clip=self.options.clip_boxes), scores, class_ids))
        return results

    # -- the GPU data path ------------------------------------------------------------------------------------------
    supports_device = True

    def preprocess_device(
        self, images: Sequence[Array], frames: Sequence[Frame], stream: Any
    ) -> tuple[dict[str, Array], list[Any]]:
        """:meth:`preprocess` on the GPU: one fused letterbox + normalisation launch for the whole batch.

        The letterbox of each frame is :meth:`LetterboxTransform.compute` as on the CPU; the result is written
        into a device input buffer the app reuses (grown for a larger batch), returned as a ``[:B]`` view that
        is valid until the next call.

        Args:
            images: one ``(H, W, 3)`` uint8 BGR CuPy array per frame, uploaded on *stream* (an NV12
                ``(H * 3 / 2, W)`` decoder surface for a frame whose ``pixel_format`` is ``"nv12"``).
            frames: the batch's frames (only their pixel formats are read).
            stream: the CuPy stream to enqueue on.

        Returns:
            ``({input_name: (B, 3, H, W) CuPy float32/float16}, [LetterboxTransform per frame])``.
        """
        from trtapps.ops.cuda.preprocess import preprocess_batch
        from trtapps.ops.preprocess import image_size

        head = self.head
        if len(images) != len(frames):
            raise ValueError(f"yolo preprocess_device got {len(images)} images for {len(frames)} frames")
        formats = [f.pixel_format for f in frames]
        metas, rois, kernel_args = self.preprocess_arguments([image_size(im, f) for im, f in zip(images, formats)])
        shape = (len(images), 3, *head.input_size)
        out = self._input_buffer.view(shape, head.input_dtype, stream)
        if not images:
            return {head.input_name: out}, metas
        # legacy YOLOX normalises in two steps like the CPU path: RGB / 255 in float32, then ImageNet in float64
        imagenet = normalisation(head.variant, self.options.yolox_legacy).imagenet
        target = self._scratch_buffer.view(shape, np.float32, stream) if imagenet else out
        preprocess_batch(images, target, rois, stream=stream, pixel_formats=formats, **kernel_args)
        if imagenet:
            imagenet_normalise(target, out, IMAGENET_MEAN, IMAGENET_STD, stream)
        return {head.input_name: out}, metas

    def preprocess_arguments(
        self, sizes: Sequence[tuple[int, int]]
    ) -> tuple[list[LetterboxTransform], np.ndarray, dict[str, Any]]:
        """What :meth:`preprocess_device` gives the preprocessing kernel for frames of these ``(H, W)`` sizes.

        Returns:
            ``(metas, rois, kwargs)``: the letterbox transforms (as :meth:`preprocess` computes them), the
            ``(B, 4)`` regions the resized frames land in, and the normalisation keywords of
            :func:`~trtapps.ops.cuda.preprocess.preprocess_batch` (the same as those of its NumPy twin
            :func:`~trtapps.ops.preprocess.preprocess_reference`). Legacy YOLOX adds the ImageNet pass after.
        """
        from trtapps.ops.preprocess import rois_from_letterbox

        head = self.head
        norm = normalisation(head.variant, self.options.yolox_legacy)
        metas = [LetterboxTransform.compute(size, head.input_size, centered=norm.centered) for size in sizes]
        kwargs: dict[str, Any] = {"pad_value": PAD_VALUE, "swap_rb": norm.swap_rb, "std": norm.std}
        return metas, rois_from_letterbox(metas), kwargs

    def decode_device_async(
        self, outputs: Mapping[str, Array], frames: Sequence[Frame], metas: Sequence[Any], stream: Any
    ) -> Callable[[], list[Detections]]:
        """Queue :meth:`decode` on the GPU: decode kernel, ``classes`` mask, best ``max_candidates``, batched NMS,
        the letterbox inverse, then one device→host copy of the kept detections of the whole batch.

        Heads the kernels cannot take (more than 2048 classes, 2**21 anchors) are decoded on the host by
        :meth:`decode` (logged once). See :mod:`trtapps_plugins.yolo.device` for the exactness argument.

        Args:
            outputs: the runner's CuPy outputs (computed on *stream*).
            frames: the batch's frames.
            metas: each frame's :class:`~trtapps.ops.letterbox.LetterboxTransform` from :meth:`preprocess_device`.
            stream: the CuPy stream the outputs were produced on.

        Returns:
            A function that waits for the copy and returns one host :class:`Detections` per frame, as
            :meth:`decode` returns them.
        """
        import cupy

        from trtapps.ops.cuda.decode import (
            MAX_ANCHORS,
            MAX_CLASSES,
            Candidates,
            decode_yolov5,
            decode_yolov8,
            decode_yolox,
        )
        from trtapps.ops.cuda.nms import PendingCompact, nms_batched
        from trtapps.ops.decode import params_from_letterbox

        head = self.head
        pred = outputs[head.output_name]
        if pred.shape[0] != len(frames) or len(metas) != len(frames):
            raise ValueError(f"yolo decode got {pred.shape[0]} outputs and {len(metas)} metas for {len(frames)} frames")
        problem = device_decode_problem(head.layout, pred.shape, MAX_ANCHORS, MAX_CLASSES)
        if problem is not None:
            self._warn_once("host", "yolo: %s; decoding on the host instead", problem)
            on_host = self.decode({head.output_name: cupy.asnumpy(pred, stream=stream)}, frames, metas)
            return lambda: on_host
        if not frames:
            return list
        plan = self.candidate_plan(pred.shape)
        opts, params = self.options, self._params
        with stream:
            pred = cupy.ascontiguousarray(cupy.asarray(pred))
            common = {"capacity": plan.decode_capacity, "multi_label": params.multi_label, "stream": stream}
            if head.layout == "v8":
                candidates = decode_yolov8(pred, params.conf_threshold, **common)
            elif head.layout == "v5":
                candidates = decode_yolov5(pred, params.conf_threshold, **common)
            else:
                candidates = decode_yolox(
                    pred, params.conf_threshold, input_size=head.input_size, strides=self.yolox_strides, **common
                )
            if params.classes is not None:
                mask_classes(cupy, candidates.records, self._classes_on_device())
            if plan.gather:
                best = top_candidates(
                    cupy,
                    candidates.records,
                    candidates.counts,
                    plan.nms_capacity,
                    class_col=CLASS_COL,
                    anchor_col=ANCHOR_COL,
                )
                candidates = Candidates(best, candidates.counts)
            compact = nms_batched(
                candidates,
                params.iou_threshold,
                max_det=params.max_det,
                class_aware=not params.agnostic,
                params=params_from_letterbox(metas),
                clip=opts.clip_boxes,
                stream=stream,
            )
            pending = PendingCompact(compact, self._pinned, stream)
        batch = len(frames)

        def finish() -> list[Detections]:
            try:
                return self._host_detections(pending.wait(), plan, batch)
            finally:
                pending.release()

        return finish

    def _host_detections(self, host: HostCompact, plan: CandidatePlan, batch: int) -> list[Detections]:
        """One :class:`Detections` per image of a downloaded batch (copies: the pinned buffer is reused)."""
        from trtapps.ops.cuda.nms import MAX_CAPACITY

        params = self._params
        lost = plan.lost(host.found)
        if lost.any():
            b = int(np.flatnonzero(lost)[0])
            self._warn_once(
                "lost",
                "yolo: the GPU decode kept %d of the %d candidates of an image (limit %d); its detections may "
                "differ from the CPU path's: raise conf_threshold or lower max_candidates",
                min(plan.decode_capacity, plan.nms_capacity),
                int(host.found[b]),
                min(plan.limit, MAX_CAPACITY),
            )
        results = []
        for b in range(batch):
            dets = host.detections(b)
            if params.classes is not None:  # the masked candidates (score -1) come last; drop them
                keep = np.isin(dets.class_ids, params.classes)
                dets = Detections(dets.boxes[keep], dets.scores[keep], dets.class_ids[keep])
            results.append(dets)
        return results

    def candidate_plan(self, head_shape: Sequence[int]) -> CandidatePlan:
        """The candidate buffer sizes for a head output of *head_shape* (see :func:`candidate_plan`)."""
        from trtapps.ops.cuda.nms import MAX_CAPACITY

        head = self.head
        anchors = int(head_shape[2] if head.layout == "v8" else head_shape[1])
        return candidate_plan(
            anchors,
            head.num_classes,
            multi_label=self._params.multi_label,
            max_candidates=self._params.max_candidates,
            nms_max=MAX_CAPACITY,
        )

    @property
    def yolox_strides(self) -> tuple[int, ...]:
        """The strides of a raw YOLOX head, in row order (from the grid :meth:`bind` matched)."""
        if self._grid is None:
            raise RuntimeError("yolo: the model has no raw YOLOX head")
        return tuple(int(s) for s in np.unique(self._grid[1]))

    def _classes_on_device(self) -> Any:
        import cupy

        classes = self._params.classes
        assert classes is not None
        key = (cupy.cuda.Device().id, tuple(int(c) for c in classes))
        table = self._device_classes.get(key)
        if table is None:
            table = self._device_classes[key] = cupy.asarray(np.asarray(classes, dtype=np.float32))
        return table

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._logger.warning(message, *args)


def create_app(options: YoloOptions, context: RunContext) -> YoloApp:
    """The factory registered for app ``yolo``: reads the ``names`` file (relative to the config's folder).

    Raises:
        ConfigError: the names file cannot be read or is empty.
    """
    names: list[str] | None = None
    if isinstance(options.names, str):
        path = context.resolve_path(options.names)
        try:
            names = read_names_file(path)
        except OSError as exc:
            raise ConfigError(
                f"app.names: cannot read {path} ({exc.strerror or exc}); give a file with one class name per line"
            ) from exc
        if not names:
            raise ConfigError(f"app.names: {path} has no class names; write one class name per line")
    elif options.names is not None:
        names = list(options.names)
    return YoloApp(options, names=names, logger=context.logger)


def _fail(model: Path, problem: str, fix: str) -> NoReturn:
    raise ModelError(f"{model}: {problem}; {fix}")


def _parse_imgsz(text: str | None) -> tuple[int, int] | None:
    """Ultralytics' ``imgsz`` metadata (``"[640, 640]"`` or ``"640"``) as ``(H, W)``."""
    if not text:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, int):
        value = [value, value]
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return (int(value[0]), int(value[1]))
    return None
