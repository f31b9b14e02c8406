"""App ``retinaface``: RetinaFace face detection with 5 landmarks, biubug6/Pytorch_Retinaface conventions.

Reference protocol (``detect.py`` / ``test_widerface.py``): the image is fed at its own size, BGR float
minus the per-channel mean (104, 117, 123), no scaling. Priors are built for that size (``ceil`` feature
maps), boxes and landmarks are decoded with variances (0.1, 0.2) in normalised prior space and multiplied by
(W, H). Candidates are ``score > conf_threshold``, the best ``top_k`` go through greedy NMS with ``+1``
pixel areas (``py_cpu_nms``), and ``max_det`` are kept.

Model outputs, found by name (``loc``, ``conf``, ``landmarks``/``landms``) or else by their last dimension
(4, 2, 10), each ``[B, N, k]``; or one concatenated ``[B, N, 16]`` output (``loc | conf | landmarks``,
tensorRT_Pro's export). The face score is ``conf[..., 1]``. The biubug6 test-phase exports (both shared
models) already apply the softmax; tensorRT_Pro's export drops it and gives logits. With
``conf_activation: auto`` (the default) each batch is checked: when every row is in [0, 1] and sums to 1
(±1e-3) it is used as is, otherwise the score is
``softmax(conf)[..., 1] = sigmoid(conf[..., 1] - conf[..., 0])``.

Fixed-size inputs (a model with fixed H/W, or ``input_size``): the frame is resized keeping its aspect
ratio, placed at the top-left, and the padding is the mean, i.e. exactly 0 after the subtraction. Boxes and
landmarks are divided by the per-axis resize factor. Boxes are not clipped to the image (as in the
reference).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from trtapps.errors import ModelError
from trtapps.ops.cuda.buffers import DeviceBuffer, PinnedStorage
from trtapps.ops.cuda.candidates import CandidatePlan
from trtapps.ops.decode import retinaface_priors
from trtapps.registry import AppOptions
from trtapps.runners.base import Runner, TensorInfo
from trtapps.structures import Array, Detections, Frame, to_host

from ._common import (
    CanvasTransform,
    FaceApp,
    FaceIouThreshold,
    FaceMaxDet,
    InputSize,
    describe_outputs,
    image_input,
    resolve_input_size,
    select_faces,
)
from ._device import (
    are_probabilities,
    canvas_params,
    face_plan,
    probability_stats,
    top_candidates,
)

if TYPE_CHECKING:
    from trtapps.context import RunContext

#: biubug6 ``cfg_mnet`` / ``cfg_re50``: anchor sizes per level (pixels) and the level strides
MIN_SIZES: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
STEPS: tuple[int, ...] = (8, 16, 32)
#: box-coder variances (centre, size)
VARIANCES: tuple[float, float] = (0.1, 0.2)

_NAMES = {
    "loc": "loc",
    "conf": "conf",
    "landmarks": "landmarks",
    "landms": "landmarks",
    "landmark": "landmarks",
}
_WIDTHS = {"loc": 4, "conf": 2, "landmarks": 10}
#: device prior tables kept per app (one per input size and device)
_MAX_DEVICE_PRIORS = 64

logger = logging.getLogger("trtapps.retinaface")


class RetinaFaceOptions(AppOptions):
    """RetinaFace (biubug6 conventions): faces with 5 landmarks (eyes, nose, mouth corners)."""

    type: str = "retinaface"
    conf_threshold: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Keep faces with a score above this (0.6 for display; WIDER FACE evaluation uses 0.02).",
    )
    iou_threshold: FaceIouThreshold = 0.4
    top_k: int = Field(5000, ge=1, le=1_000_000, description="Best candidates kept before NMS.")
    max_det: FaceMaxDet = 750
    input_size: InputSize | None = Field(
        None,
        description=(
            "[height, width] to resize frames to (aspect ratio kept, top-left, padded with the mean). "
            "Omitted: each frame at its own size when the model's height and width are dynamic (the "
            "reference protocol), else the model's fixed size."
        ),
    )
    mean: tuple[float, float, float] = Field(
        (104.0, 117.0, 123.0), description="Per-channel mean subtracted from the B, G, R pixel values."
    )
    conf_activation: Literal["auto", "softmax", "none"] = Field(
        "auto",
        description=(
            "How to read the 2-column conf output: 'none' = probabilities (softmax inside the model), "
            "'softmax' = logits, 'auto' = probabilities when every row sums to 1, else logits."
        ),
    )


# --------------------------------------------------------------------------------------------------------
# Priors and decoding (NumPy)
# --------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _priors(height: int, width: int) -> np.ndarray:
    priors = retinaface_priors((height, width), STEPS, MIN_SIZES)  # the core's twin of biubug6's PriorBox
    priors.flags.writeable = False
    return priors


def prior_boxes(height: int, width: int) -> np.ndarray:
    """biubug6's RetinaFace priors for an input of ``height × width`` (cached per size, read-only).

    Order: level (steps 8, 16, 32), then row ``i``, then column ``j``, then min size; feature maps are
    ``ceil(H/step) × ceil(W/step)``.

    Returns:
        ``(N, 4)`` float32 ``(cx, cy, w, h)`` normalised by (W, H): ``cx = (j + 0.5)·step/W``,
        ``cy = (i + 0.5)·step/H``, ``w = min_size/W``, ``h = min_size/H``. N = 16800 at 640×640.
    """
    return _priors(int(height), int(width))


def decode_boxes(
    loc: np.ndarray, priors: np.ndarray, variances: tuple[float, float] = VARIANCES
) -> np.ndarray:
    """Decode box regressions against priors (``box_utils.decode``).

    Args:
        loc: ``(N, 4)`` float32 offsets ``(dx, dy, dw, dh)``.
        priors: ``(N, 4)`` float32 ``(cx, cy, w, h)``, normalised.
        variances: centre and size variances.

    Returns:
        ``(N, 4)`` float32 xyxy, normalised (multiply by (W, H, W, H) for input pixels).
    """
    loc = np.asarray(loc, dtype=np.float32)
    centre = priors[:, :2] + loc[:, :2] * np.float32(variances[0]) * priors[:, 2:]
    size = priors[:, 2:] * np.exp(loc[:, 2:] * np.float32(variances[1]))
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def decode_landmarks(
    landmarks: np.ndarray, priors: np.ndarray, variances: tuple[float, float] = VARIANCES
) -> np.ndarray:
    """Decode landmark regressions against priors (``box_utils.decode_landm``).

    Args:
        landmarks: ``(N, 10)`` float32 offsets, interleaved ``x0, y0, …, x4, y4``.
        priors: ``(N, 4)`` float32 ``(cx, cy, w, h)``, normalised.
        variances: only the centre variance is used.

    Returns:
        ``(N, 5, 2)`` float32 points, normalised (multiply by (W, H) for input pixels); order left eye,
        right eye, nose, left mouth corner, right mouth corner (left = smaller x in the image).
    """
    offsets = np.asarray(landmarks, dtype=np.float32).reshape(-1, 5, 2)
    return priors[:, None, :2] + offsets * np.float32(variances[0]) * priors[:, None, 2:]


def face_scores(conf: np.ndarray, activation: str = "auto") -> np.ndarray:
    """The face probability from the 2-column ``conf`` head.

    Args:
        conf: ``(..., 2)`` ``[background, face]`` probabilities or logits.
        activation: ``"none"`` (probabilities), ``"softmax"`` (logits) or ``"auto"`` (probabilities when every
            row lies in [0, 1] and sums to 1 within 1e-3, else logits).

    Returns:
        ``(...)`` float32 face scores.
    """
    conf = np.asarray(conf, dtype=np.float32)
    if activation == "auto":
        probabilities = conf.size == 0 or (
            float(conf.min()) >= 0.0
            and float(conf.max()) <= 1.0
            and float(np.abs(conf.sum(axis=-1) - 1.0).max()) <= 1e-3
        )
        activation = "none" if probabilities else "softmax"
    if activation == "none":
        return conf[..., 1]
    if activation == "softmax":
        return (1.0 / (1.0 + np.exp(conf[..., 0] - conf[..., 1]))).astype(np.float32)
    raise ValueError(f"unknown conf activation {activation!r}; use 'auto', 'softmax' or 'none'")


# --------------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Heads:
    """Output names: three separate heads, or one packed ``[B, N, 16]`` output (all three name it)."""

    loc: str
    conf: str
    landmarks: str
    packed: bool = False


class RetinaFaceApp(FaceApp):
    """RetinaFace on any runner: native-size (dynamic H/W) or fixed-size inputs, separate or packed heads.

    Args:
        options: the validated app options.
    """

    options: RetinaFaceOptions

    def __init__(self, options: RetinaFaceOptions) -> None:
        super().__init__(options)
        self._mean = np.asarray(options.mean, dtype=np.float32)
        self._input_size: tuple[int, int] | None = options.input_size
        self._heads: _Heads | None = None
        # the GPU data path's reusable buffers and tables (allocated on first use)
        self._input_buffer = DeviceBuffer()
        self._pinned = PinnedStorage()
        self._device_priors: dict[tuple[int, int, int], Any] = {}
        self._warned: set[str] = set()

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The fixed ``(H, W)`` frames are resized to, or ``None`` when each frame is fed at its own size."""
        return self._input_size

    # -- binding ----------------------------------------------------------------------------------------
    def bind(self, runner: Runner) -> None:
        """Check the model (NCHW 3-channel input; loc/conf/landmarks heads) and pick the input size.

        Raises:
            ModelError: one line naming the model file and the fix.
        """
        info, model_hw = image_input(runner, "retinaface")
        heads = _find_heads(runner)
        size = resolve_input_size(runner, "retinaface", model_hw, self.options.input_size, None)
        names = {heads.loc, heads.conf, heads.landmarks}
        rows = {t.shape[1] for t in runner.outputs if t.name in names} - {None}
        if len(rows) > 1:
            raise ModelError(
                f"{runner.model_path}: the RetinaFace heads disagree on the number of priors "
                f"({describe_outputs(runner)}); export the model again"
            )
        if rows and size is not None:
            expected = prior_boxes(*size).shape[0]
            if rows != {expected}:
                raise ModelError(
                    f"{runner.model_path}: the heads have {rows.pop()} rows, but biubug6 priors for a "
                    f"{size[0]}×{size[1]} input are {expected} (steps 8/16/32, "
                    "2 anchors per cell); use a biubug6-style RetinaFace export or set app.input_size to the "
                    "export size"
                )
        self._heads = heads
        self._input_size = size
        self._bind_input(info)

    def batch_key(self, frame: Frame) -> Any:
        """``(H, W)`` at native size (only frames of one size can share a batch), else ``None``."""
        if self._input_size is None:
            return (frame.height, frame.width)
        return None

    # -- per batch --------------------------------------------------------------------------------------
    def preprocess(self, frames: Sequence[Frame]) -> tuple[dict[str, Array], list[Any]]:
        """BGR frames → ``{input: (B, 3, H, W)}`` float, mean subtracted, and a :class:`CanvasTransform` each.

        Raises:
            ValueError: at native size, frames of different sizes in one batch (group them by
                :meth:`batch_key`).
        """
        name = self._require_bound()
        if not frames:
            raise ValueError("retinaface: preprocess needs at least one frame")
        images = [to_host(f.image) for f in frames]
        metas: list[CanvasTransform]
        if self._input_size is None:
            size = (int(images[0].shape[0]), int(images[0].shape[1]))
            sizes = {(int(im.shape[0]), int(im.shape[1])) for im in images}
            if len(sizes) > 1:
                raise ValueError(
                    f"retinaface at native size cannot batch frames of different sizes {sorted(sizes)}; "
                    "group frames by App.batch_key or set app.input_size"
                )
            metas = [CanvasTransform.identity(*size)] * len(images)
            blob = np.empty((len(images), 3, size[0], size[1]), dtype=np.float32)
        else:
            height, width = self._input_size
            blob = np.zeros((len(images), 3, height, width), dtype=np.float32)  # 0 = the mean, subtracted
            metas = [CanvasTransform.fit((im.shape[0], im.shape[1]), (height, width)) for im in images]
        mean = self._mean[:, None, None]
        for i, (image, transform) in enumerate(zip(images, metas, strict=True)):
            new_h, new_w = transform.resized_size
            # HWC uint8 → CHW float32 minus the mean in one pass, straight into the batch (no HWC float copy)
            np.subtract(transform.resize(image).transpose(2, 0, 1), mean, out=blob[i, :, :new_h, :new_w])
        return {name: self._in_input_dtype(blob)}, metas

    def decode(
        self, outputs: Mapping[str, Array], frames: Sequence[Frame], metas: Sequence[Any]
    ) -> list[Detections]:
        """Model outputs of a batch → one :class:`Detections` per frame (``(N, 5, 2)`` landmarks)."""
        self._require_bound()
        assert self._heads is not None
        loc, conf, landmarks = self._split(outputs)
        if loc.shape[0] != len(metas):
            raise ValueError(
                f"retinaface: the model returned {loc.shape[0]} images for a batch of {len(metas)}"
            )
        scores = face_scores(conf, self.options.conf_activation)
        return [self._decode_one(loc[b], scores[b], landmarks[b], meta) for b, meta in enumerate(metas)]

    # -- internals --------------------------------------------------------------------------------------
    def _decode_one(
        self, loc: np.ndarray, scores: np.ndarray, landmarks: np.ndarray, meta: CanvasTransform
    ) -> Detections:
        height, width = meta.dst_size
        priors = prior_boxes(height, width)
        if loc.shape[0] != priors.shape[0]:
            raise ValueError(
                f"retinaface: the model gave {loc.shape[0]} rows for a {height}×{width} input, but there are "
                f"{priors.shape[0]} biubug6 priors (steps 8/16/32, 2 anchors per cell)"
            )
        opts = self.options
        candidates = np.flatnonzero(scores > opts.conf_threshold)
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")[: opts.top_k]]
        selected = priors[candidates]
        boxes = decode_boxes(loc[candidates], selected) * np.asarray(
            [width, height, width, height], np.float32
        )
        points = decode_landmarks(landmarks[candidates], selected) * np.asarray([width, height], np.float32)
        if not meta.is_identity:
            boxes = meta.points_to_source(boxes)
            points = meta.points_to_source(points)
        return select_faces(
            scores[candidates], boxes, points, iou_threshold=opts.iou_threshold, max_det=opts.max_det
        )

    def _split(self, outputs: Mapping[str, Array]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        heads = self._heads
        assert heads is not None
        try:
            if heads.packed:
                packed = np.asarray(to_host(outputs[heads.loc]), dtype=np.float32)
                return packed[..., 0:4], packed[..., 4:6], packed[..., 6:16]
            return (
                np.asarray(to_host(outputs[heads.loc]), dtype=np.float32),
                np.asarray(to_host(outputs[heads.conf]), dtype=np.float32),
                np.asarray(to_host(outputs[heads.landmarks]), dtype=np.float32),
            )
        except KeyError as exc:
            raise ValueError(
                f"retinaface: output {exc} is missing from the model outputs {sorted(outputs)}"
            ) from None

    def _require_bound(self) -> str:
        if self._input_name is None or self._heads is None:
            raise RuntimeError("retinaface: call bind(runner) before preprocess/decode")
        return self._input_name

    # -- the GPU data path ------------------------------------------------------------------------------------
    supports_device = True

    def preprocess_device(
        self, images: Sequence[Array], frames: Sequence[Frame], stream: Any
    ) -> tuple[dict[str, Array], list[Any]]:
        """:meth:`preprocess` on the GPU: one fused launch (resize into the top-left ROI at a fixed size, none at
        native size; BGR minus the mean; padding = the mean, so 0) into a device buffer the app reuses.

        Args:
            images: one ``(H, W, 3)`` uint8 BGR CuPy array per frame, uploaded on *stream* (an NV12
                ``(H * 3 / 2, W)`` decoder surface for a frame whose ``pixel_format`` is ``"nv12"``).
            frames: the batch's frames (only their pixel formats are read).
            stream: the CuPy stream to enqueue on.

        Returns:
            ``({input: (B, 3, H, W) CuPy float}, [CanvasTransform per frame])``; the tensor is a view valid until
            the next call.

        Raises:
            ValueError: at native size, frames of different sizes in one batch.
        """
        from trtapps.ops.cuda.preprocess import preprocess_batch
        from trtapps.ops.preprocess import image_size

        name = self._require_bound()
        if len(images) != len(frames):
            raise ValueError(f"retinaface: preprocess_device got {len(images)} images for {len(frames)} frames")
        formats = [f.pixel_format for f in frames]
        metas, rois, kwargs = self.preprocess_arguments([image_size(im, f) for im, f in zip(images, formats)])
        height, width = metas[0].dst_size
        out = self._input_buffer.view((len(images), 3, height, width), self._input_dtype, stream)
        preprocess_batch(images, out, rois, stream=stream, pixel_formats=formats, **kwargs)
        return {name: out}, metas

    def preprocess_arguments(
        self, sizes: Sequence[tuple[int, int]]
    ) -> tuple[list[CanvasTransform], np.ndarray, dict[str, Any]]:
        """What :meth:`preprocess_device` gives the preprocessing kernel for frames of these ``(H, W)`` sizes.

        Returns:
            ``(metas, rois, kwargs)``: the transforms (as :meth:`preprocess` computes them), the ``(B, 4)``
            top-left regions of the resized frames, and the normalisation keywords of
            :func:`~trtapps.ops.cuda.preprocess.preprocess_batch` (the same as its NumPy twin
            :func:`~trtapps.ops.preprocess.preprocess_reference` takes).

        Raises:
            ValueError: no frames, or at native size frames of different sizes.
        """
        self._require_bound()
        if not sizes:
            raise ValueError("retinaface: preprocess needs at least one frame")
        metas: list[CanvasTransform]
        if self._input_size is None:
            if len(set(sizes)) > 1:
                raise ValueError(
                    f"retinaface at native size cannot batch frames of different sizes {sorted(set(sizes))}; "
                    "group frames by App.batch_key or set app.input_size"
                )
            metas = [CanvasTransform.identity(*sizes[0])] * len(sizes)
        else:
            metas = [CanvasTransform.fit(size, self._input_size) for size in sizes]
        rois = np.array([(0, 0, m.resized_size[1], m.resized_size[0]) for m in metas], dtype=np.int64)
        mean = tuple(float(v) for v in self._mean)
        return metas, rois, {"pad_value": mean, "mean": mean, "std": 1.0}

    def decode_device_async(
        self, outputs: Mapping[str, Array], frames: Sequence[Frame], metas: Sequence[Any], stream: Any
    ) -> Callable[[], list[Detections]]:
        """Queue :meth:`decode` on the GPU: decode kernel (mapped to frame pixels), best ``top_k``, NMS with ``+1``
        areas, ``max_det``, and one device→host copy of the whole batch's faces.

        Args:
            outputs: the runner's CuPy outputs (computed on *stream*).
            frames: the batch's frames.
            metas: each frame's :class:`CanvasTransform` from :meth:`preprocess_device`.
            stream: the CuPy stream the outputs were produced on.

        Returns:
            A function that waits for the copy and returns one host :class:`Detections` per frame with
            ``(N, 5, 2)`` landmarks, as :meth:`decode` returns them.
        """
        import cupy

        from trtapps.ops.cuda.decode import Candidates, decode_retinaface
        from trtapps.ops.cuda.nms import PendingCompact, nms_batched

        self._require_bound()
        loc, conf, landmarks = self._split_device(outputs, stream)
        if loc.shape[0] != len(metas):
            raise ValueError(
                f"retinaface: the model returned {loc.shape[0]} images for a batch of {len(metas)}"
            )
        if not metas:
            return list
        dst_sizes = {tuple(m.dst_size) for m in metas}
        if len(dst_sizes) > 1:
            raise ValueError(f"retinaface: one batch has inputs of several sizes {sorted(dst_sizes)}")
        height, width = metas[0].dst_size
        priors = self._priors_on_device(height, width, stream)
        if loc.shape[1] != priors.shape[0]:
            raise ValueError(
                f"retinaface: the model gave {loc.shape[1]} rows for a {height}×{width} input, but there are "
                f"{priors.shape[0]} biubug6 priors (steps 8/16/32, 2 anchors per cell)"
            )
        opts = self.options
        plan = self.face_plan(int(priors.shape[0]))
        logits = self._conf_logits(conf, stream)
        with stream:
            candidates = decode_retinaface(
                loc,
                conf,
                landmarks,
                opts.conf_threshold,
                input_size=(height, width),
                priors=priors,
                logits=logits,
                variances=VARIANCES,
                capacity=plan.decode_capacity,
                params=canvas_params(metas),
                clip=False,
                stream=stream,
            )
            if plan.gather:
                best = top_candidates(cupy, candidates.records, candidates.counts, plan.nms_capacity)
                candidates = Candidates(best, candidates.counts)
            compact = nms_batched(
                candidates, opts.iou_threshold, max_det=opts.max_det, plus_one=True, stream=stream
            )
            pending = PendingCompact(compact, self._pinned, stream)
        batch = len(metas)

        def finish() -> list[Detections]:
            try:
                host = pending.wait()
                self._warn_lost(host.found, plan)
                return [host.detections(b) for b in range(batch)]
            finally:
                pending.release()

        return finish

    def _warn_lost(self, found: np.ndarray, plan: CandidatePlan) -> None:
        """Warn once when an image had more candidates than the GPU NMS takes."""
        lost = plan.lost(found)
        if lost.any() and "lost" not in self._warned:
            self._warned.add("lost")
            logger.warning(
                "retinaface: an image has %d candidates; the GPU NMS takes the best %d, not top_k = %d: "
                "raise conf_threshold or lower top_k",
                int(found[int(np.flatnonzero(lost)[0])]),
                plan.nms_capacity,
                plan.limit,
            )

    def face_plan(self, num_priors: int) -> CandidatePlan:
        """The candidate buffer sizes for *num_priors* priors (see :func:`face_plan`)."""
        from trtapps.ops.cuda.nms import MAX_CAPACITY

        return face_plan(num_priors, self.options.top_k, MAX_CAPACITY)

    def _conf_logits(self, conf: Any, stream: Any) -> bool:
        """Whether *conf* holds logits: the option, or ``auto``'s per-batch test (one 3-number copy)."""
        activation = self.options.conf_activation
        if activation != "auto":
            return activation == "softmax"
        import cupy

        with stream:
            stats = probability_stats(cupy, conf)
        return not are_probabilities(cupy.asnumpy(stats, stream=stream), int(conf.size))

    def _priors_on_device(self, height: int, width: int, stream: Any) -> Any:
        """:func:`prior_boxes` for this size on the current device, uploaded once."""
        import cupy

        key = (cupy.cuda.Device().id, int(height), int(width))
        table = self._device_priors.get(key)
        if table is None:
            if len(self._device_priors) >= _MAX_DEVICE_PRIORS:
                self._device_priors.clear()
            with stream:
                table = cupy.asarray(prior_boxes(height, width))
            stream.synchronize()  # once per size: later batches may run on another stream
            self._device_priors[key] = table
        return table

    def _split_device(self, outputs: Mapping[str, Array], stream: Any) -> tuple[Any, Any, Any]:
        """The loc, conf and landmarks heads as CuPy arrays (views of a packed output)."""
        import cupy

        heads = self._heads
        assert heads is not None
        try:
            arrays = {name: outputs[name] for name in {heads.loc, heads.conf, heads.landmarks}}
        except KeyError as exc:
            raise ValueError(
                f"retinaface: output {exc} is missing from the model outputs {sorted(outputs)}"
            ) from None
        with stream:
            device = {name: cupy.asarray(array) for name, array in arrays.items()}
        if heads.packed:
            packed = device[heads.loc]
            return packed[..., 0:4], packed[..., 4:6], packed[..., 6:16]
        loc, conf, landmarks = device[heads.loc], device[heads.conf], device[heads.landmarks]
        if not (loc.dtype == conf.dtype == landmarks.dtype):
            with stream:
                loc, conf, landmarks = (a.astype(cupy.float32) for a in (loc, conf, landmarks))
        return loc, conf, landmarks


def _find_heads(runner: Runner) -> _Heads:
    """Find the loc/conf/landmarks outputs by name, else by last dimension; or one packed 16-wide output."""
    outs = runner.outputs

    def misfit(reason: str) -> ModelError:
        return ModelError(
            f"{runner.model_path}: app 'retinaface' needs outputs loc [B, N, 4], conf [B, N, 2] and "
            f"landmarks [B, N, 10] (or one [B, N, 16]), but {reason} ({describe_outputs(runner)}); "
            "use a biubug6-style RetinaFace export or the app type that fits this model"
        )

    if any(len(t.shape) != 3 for t in outs):
        raise misfit("not every output has rank 3")
    if len(outs) == 1:
        if outs[0].shape[2] != 16:
            raise misfit("its single output is not 16 wide")
        return _Heads(outs[0].name, outs[0].name, outs[0].name, packed=True)
    if len(outs) != 3:
        raise misfit(f"it has {len(outs)} outputs")
    roles: dict[str, TensorInfo] = {}
    for t in outs:
        role = _NAMES.get(t.name.lower())
        if role is not None and role not in roles:
            roles[role] = t
    if len(roles) == 3:
        for role, t in roles.items():
            if t.shape[2] != _WIDTHS[role]:
                raise misfit(f"output {t.name!r} is {t.shape[2]} wide, not {_WIDTHS[role]}")
    else:
        by_width = {t.shape[2]: t for t in outs}
        if set(by_width) != {4, 2, 10}:
            raise misfit("the outputs are neither named loc/conf/landmarks nor 4, 2 and 10 wide")
        roles = {role: by_width[width] for role, width in _WIDTHS.items()}
    return _Heads(roles["loc"].name, roles["conf"].name, roles["landmarks"].name)


def make_retinaface(options: RetinaFaceOptions, context: RunContext) -> RetinaFaceApp:
    """Factory registered for app type ``retinaface``."""
    return RetinaFaceApp(options)
