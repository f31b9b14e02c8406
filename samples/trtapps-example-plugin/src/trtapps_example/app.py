"""App ``yolo_e2e``: YOLO exports with NMS inside the model (``[batch, K, 6]`` output).

The pipeline drives an app in three steps (see :class:`trtapps.App`):

1. :meth:`YoloE2EApp.bind` once, with the runner that loaded the model: check that the model fits, read its
   input size and class names. Misfits raise :class:`trtapps.ModelError` naming the file and the fix.
2. :meth:`YoloE2EApp.preprocess` per batch: frames (BGR uint8, any size) → the model's input tensor, plus one
   opaque *meta* per frame (here the letterbox transform).
3. :meth:`YoloE2EApp.decode` per batch: the model's outputs → one :class:`trtapps.Detections` per frame, boxes
   in the frame's own pixels.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from trtapps import App, Detections, Frame, ModelError, RunContext, Runner
from trtapps.ops.letterbox import LetterboxTransform, letterbox, scale_boxes
from trtapps.structures import to_host

from trtapps_example.options import YoloE2EOptions

#: the columns of one output row
X1, Y1, X2, Y2, SCORE, CLASS = range(6)


class YoloE2EApp(App):
    """End-to-end YOLO detection: centred letterbox (Ultralytics), score threshold, boxes mapped back.

    All frames are letterboxed to the model's input size, so frames of any size share a batch
    (:meth:`~trtapps.App.batch_key` stays ``None``).

    Args:
        options: the validated ``app:`` options.
    """

    def __init__(self, options: YoloE2EOptions) -> None:
        self.options = options
        self.input_name = ""
        self.output_name = ""
        self.input_size = (0, 0)
        self.input_dtype: np.dtype[Any] = np.dtype(np.float32)

    def bind(self, runner: Runner) -> None:
        """Check for one NCHW image input and one ``[batch, K, 6]`` output; read the input size and class names.

        Raises:
            ModelError: the model is not an end-to-end YOLO detection export, or its size/names are unknown.
        """
        model = runner.model_path
        if len(runner.inputs) != 1 or len(runner.inputs[0].shape) != 4 or runner.inputs[0].shape[1] != 3:
            inputs = ", ".join(t.describe() for t in runner.inputs)
            _fail(model, f"needs one NCHW image input with 3 channels, the model has {inputs}",
                  "export the detector with an [batch, 3, height, width] input")
        image = runner.inputs[0]
        if not np.issubdtype(image.dtype, np.floating):
            _fail(model, f"input {image.describe()} is not a float tensor", "export with a float32/float16 input")
        if len(runner.outputs) != 1 or len(runner.outputs[0].shape) != 3 or runner.outputs[0].shape[2] != 6:
            outputs = ", ".join(t.describe() for t in runner.outputs)
            _fail(model, f"app yolo_e2e needs one output [batch, K, 6], the model has {outputs}",
                  "export with NMS in the model (YOLOv10/YOLO26, or Ultralytics nms=True); "
                  "use app 'yolo' for [batch, 4+classes, anchors] heads")
        self.input_name = image.name
        self.output_name = runner.outputs[0].name
        self.input_dtype = np.dtype(image.dtype)
        self.input_size = self._input_size(model, image.shape, runner.metadata)
        self.labels = tuple(self._labels(model, runner.metadata))

    def _input_size(self, model: Path, shape: tuple[int | None, ...], metadata: Mapping[str, str]) -> tuple[int, int]:
        fixed = (shape[2], shape[3])
        wanted = self.options.input_size
        if wanted is not None:
            if any(f is not None and f != w for f, w in zip(fixed, wanted, strict=True)):
                _fail(model, f"the input is fixed at {fixed[0]}x{fixed[1]}, app.input_size is {wanted[0]}x{wanted[1]}",
                      "remove app.input_size")
            return wanted
        if fixed[0] is not None and fixed[1] is not None:
            return (fixed[0], fixed[1])
        try:
            imgsz = ast.literal_eval(metadata.get("imgsz", ""))
        except (ValueError, SyntaxError):
            imgsz = None
        if isinstance(imgsz, int):
            imgsz = [imgsz, imgsz]
        if isinstance(imgsz, list) and len(imgsz) == 2 and all(isinstance(v, int) and v > 0 for v in imgsz):
            return (imgsz[0], imgsz[1])
        _fail(model, "the input has a dynamic size and no imgsz metadata", "set app.input_size, e.g. [640, 640]")

    def _labels(self, model: Path, metadata: Mapping[str, str]) -> list[str]:
        if self.options.names is not None:
            return list(self.options.names)
        try:  # Ultralytics writes names as a Python dict literal: "{0: 'person', 1: 'bicycle', ...}"
            names = ast.literal_eval(metadata.get("names", ""))
        except (ValueError, SyntaxError):
            names = None
        if isinstance(names, dict) and names and sorted(names) == list(range(len(names))):
            return [str(names[i]) for i in range(len(names))]
        _fail(model, "has no class names in its metadata", "set app.names to the class names, index = class id")

    def preprocess(self, frames: Sequence[Frame]) -> tuple[dict[str, Any], list[LetterboxTransform]]:
        """Letterbox (centred, grey 114) to the input size, BGR → RGB, scale to 0-1, NCHW.

        Returns:
            ``({input_name: (B, 3, H, W)}, [LetterboxTransform per frame])``.
        """
        height, width = self.input_size
        batch = np.empty((len(frames), 3, height, width), dtype=np.float32)
        metas = []
        for i, frame in enumerate(frames):
            canvas, transform = letterbox(to_host(frame.image), (height, width))
            batch[i] = canvas[:, :, ::-1].transpose(2, 0, 1)  # HWC BGR → CHW RGB
            metas.append(transform)
        batch /= 255.0
        return {self.input_name: batch.astype(self.input_dtype, copy=False)}, metas

    def decode(self, outputs: Mapping[str, Any], frames: Sequence[Frame], metas: Sequence[Any]) -> list[Detections]:
        """Keep rows scoring above ``conf_threshold`` and map their boxes back to each frame's pixels."""
        rows = to_host(outputs[self.output_name]).astype(np.float32, copy=False)
        if rows.shape[0] != len(frames):
            raise ValueError(f"yolo_e2e: the model returned {rows.shape[0]} results for {len(frames)} frames")
        results = []
        for image_rows, transform in zip(rows, metas, strict=True):
            kept = image_rows[image_rows[:, SCORE] > self.options.conf_threshold]
            results.append(Detections(
                boxes=scale_boxes(kept[:, X1 : Y2 + 1], transform),
                scores=kept[:, SCORE],
                class_ids=kept[:, CLASS].round().astype(np.int32),
            ))
        return results


def create_app(options: YoloE2EOptions, context: RunContext) -> YoloE2EApp:
    """The factory registered for ``yolo_e2e``: ``factory(options, context) -> App``."""
    return YoloE2EApp(options)


def _fail(model: Path, problem: str, fix: str) -> NoReturn:
    raise ModelError(f"{model}: {problem}; {fix}")
