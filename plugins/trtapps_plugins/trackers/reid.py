"""Person re-identification embeddings for DeepSORT: crop each box, run a ReID model, L2-normalise.

The embedder is split in two so either side can change without touching the trackers:

* a **cropper** turns ``(image, boxes)`` into the model's input batch ``(N, 3, H, W)``. Both croppers cut the
  same integer rectangles (:func:`crop_rects`: each box rounded outwards to whole pixels, clipped to the image,
  at least one pixel) and resize them with OpenCV's bilinear arithmetic (plain resize — no letterbox, as
  boxmot/torchreid), then BGR → RGB, scale to [0, 1] and the ImageNet mean/std:

  - :func:`crop_boxes_host` cuts with NumPy and resizes with ``cv2.resize``, box by box;
  - :func:`crop_boxes_device` cuts every box of a frame in **one** launch of the fused preprocessing kernel
    (:func:`trtapps.ops.cuda.preprocess.preprocess_batch` with ``src_rects``, bit-identical to ``cv2.resize``)
    straight into the runner's input buffer, so the crops never leave the GPU;

* :class:`ReidEmbedder` batches the crops through any :class:`trtapps.runners.base.Runner` and normalises the
  output rows to unit length. It picks the cropper from the runner's residency: on a device runner the frame
  is used where it already is (a CuPy frame of the GPU data path; an NV12 decoder surface is read in place, the
  kernel converting while it samples) or uploaded once (a host frame), inference and the normalisation run on
  the device, and only the ``(N, D)`` embeddings come back.

The two paths cut identical uint8 crops and differ only by float32 rounding (the kernel divides by ``255·std``
where the host multiplies by its reciprocal; the model's kernels differ between backends), so GPU and CPU
embeddings of the same boxes agree within fp32 rounding (``tests/gpu/test_reid_gpu.py`` asks for a cosine ≥ 0.999).

Default conventions are OSNet's (``osnet_x0_25_msmt17.onnx``: input ``images`` ``[B, 3, 256, 128]``, output 512-d):
the input size comes from the model, the normalisation from :class:`CropSpec`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtapps.context import RunContext
from trtapps.errors import BackendUnavailableError, ConfigError, InputError, ModelError
from trtapps.ops.preprocess import rects_from_boxes
from trtapps.runners.base import Runner, select_backend
from trtapps.stages import Residency
from trtapps.structures import is_device_array, to_host

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropSpec:
    """How crops become model input.

    Attributes:
        height: model input height (OSNet: 256).
        width: model input width (OSNet: 128).
        rgb: feed RGB (torchreid/boxmot models) rather than BGR.
        mean: per-channel mean subtracted after scaling to [0, 1], in the model's channel order.
        std: per-channel std divided by.
    """

    height: int = 256
    width: int = 128
    rgb: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def pixel_mean(self) -> np.ndarray:
        """The mean in pixel units (``mean · 255``, float32), as both croppers subtract it."""
        return np.asarray(self.mean, dtype=np.float32) * np.float32(255.0)

    def pixel_std(self) -> np.ndarray:
        """The std in pixel units (``std · 255``, float32)."""
        return np.asarray(self.std, dtype=np.float32) * np.float32(255.0)


Cropper = Callable[[Any, Any, CropSpec], Any]


def crop_rects(boxes: Any, image_size: tuple[int, int]) -> np.ndarray:
    """The integer crop ``(x, y, w, h)`` of each xyxy box, as both croppers cut it.

    Boxes are rounded outwards to whole pixels (``floor`` of the top-left corner, ``ceil`` of the bottom-right
    one, so no part of the person is lost) and then clipped by :func:`trtapps.ops.preprocess.rects_from_boxes`:
    inside the ``(H, W)`` image, at least one pixel (a box outside the image or degenerate becomes the 1-pixel
    crop nearest to it).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    outward = np.concatenate([np.floor(b[:, :2]), np.ceil(b[:, 2:])], axis=1)
    return rects_from_boxes(outward, image_size)


def crop_boxes_host(image: np.ndarray, boxes: np.ndarray, spec: CropSpec) -> np.ndarray:
    """Host cropper: ``(H, W, 3)`` uint8 BGR image and ``(N, 4)`` xyxy boxes → ``(N, 3, h, w)`` float32."""
    import cv2

    n = int(boxes.shape[0])
    out = np.empty((n, spec.height, spec.width, 3), dtype=np.float32)
    if n == 0:
        return out.transpose(0, 3, 1, 2)
    for i, (x, y, w, h) in enumerate(crop_rects(boxes, image.shape[:2]).tolist()):
        out[i] = cv2.resize(image[y : y + h, x : x + w], (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    if spec.rgb:
        out = out[..., ::-1]
    out = (out - spec.pixel_mean()) * (np.float32(1.0) / spec.pixel_std())
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def crop_boxes_device(
    image: Any, boxes: Any, spec: CropSpec, *, out: Any = None, stream: Any = None, pixel_format: str = "bgr"
) -> Any:
    """Device cropper: every box of one frame cut, resized and normalised in one kernel launch.

    Args:
        image: CuPy ``(H, W, 3)`` uint8 BGR frame (rows may be padded; pixels must be packed), or with
            ``pixel_format="nv12"`` an ``(H * 3 / 2, W)`` NV12 surface, read in place by the kernel (its BT.601
            conversion equals ``cv2.cvtColor(nv12, COLOR_YUV2BGR_NV12)`` bit for bit).
        boxes: ``(N, 4)`` xyxy boxes (host), ``N ≥ 1``.
        spec: crop size and normalisation.
        out: CuPy ``(M, 3, h, w)`` float32 or float16 buffer with ``M ≥ N`` rows, C-contiguous (the runner's input
            buffer); rows past ``N`` are filled with copies of the last crop, so every element is written and a
            padded batch never feeds stale memory to the model. Default: a new ``(N, 3, h, w)`` float32 array.
        stream: CuPy stream to run on (default: the current one).
        pixel_format: ``"bgr"`` or ``"nv12"``; boxes are in picture pixels either way.

    Returns:
        *out*.
    """
    from trtapps.gpu.kernels import cupy_module
    from trtapps.ops.cuda.preprocess import preprocess_batch

    cp = cupy_module()
    nv12 = pixel_format == "nv12"
    height = int(image.shape[0]) * 2 // 3 if nv12 else int(image.shape[0])
    rects = crop_rects(to_host(boxes), (height, int(image.shape[1])))
    n = rects.shape[0]
    if n == 0:
        raise ValueError("crop_boxes_device needs at least one box")
    if out is None:
        with image.device:
            out = cp.empty((n, 3, spec.height, spec.width), dtype=np.float32)
    rows = int(out.shape[0])
    if rows < n or tuple(out.shape[2:]) != (spec.height, spec.width):
        raise ValueError(f"out {tuple(out.shape)} cannot hold {n} crops of {spec.height}x{spec.width}")
    if rows > n:
        rects = np.concatenate([rects, np.repeat(rects[-1:], rows - n, axis=0)])
    rois = np.tile(np.array([[0, 0, spec.width, spec.height]], dtype=np.int64), (rows, 1))
    formats: dict[str, Any] = {"pixel_formats": ["nv12"] * rows} if nv12 else {}  # BGR: the kernel's default
    return preprocess_batch(
        [image] * rows,
        out,
        rois,
        swap_rb=spec.rgb,
        scale=1.0,
        mean=spec.pixel_mean().tolist(),  # float32 values, exactly as the host cropper's
        std=spec.pixel_std().tolist(),
        src_rects=rects,
        stream=stream,
        **formats,
    )


def build_reid_runner(
    path: str | Path,
    backend: str = "onnxruntime",
    context: RunContext | None = None,
    *,
    batch_size: int = 32,
    threads: int = 0,
) -> Runner:
    """The ReID model on *backend*, built by the backend's own factory (as the pipeline builds its model).

    A device backend gets the run's device and CUDA stream from *context* (the pipeline's), so the crops, the
    ReID inference and the detector queue on one stream; its buffers are sized for *batch_size* crops.

    Raises:
        ConfigError: no backend of that name; BackendUnavailableError: it cannot run here.
    """
    if backend == "onnxruntime":  # the default: no plugin discovery needed
        from trtapps.runners.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, threads=threads)
    from trtapps.plugins import PluginManager

    try:
        spec = select_backend(backend, PluginManager().registries.backend)
    except ConfigError as exc:
        raise ConfigError(f"tracker.reid_backend: {str(exc).removeprefix('backend: ')}") from None
    except BackendUnavailableError as exc:
        raise BackendUnavailableError(f"tracker.reid_backend: {exc}") from None
    fields: dict[str, Any] = {"type": spec.name}
    if "device" in spec.options.model_fields and context is not None:
        fields["device"] = context.device
    if "max_batch" in spec.options.model_fields:
        fields["max_batch"] = batch_size
    if "threads" in spec.options.model_fields and threads:
        fields["threads"] = threads
    runner: Runner = spec.factory(spec.options.model_validate(fields), context, Path(path))
    return runner


class ReidEmbedder:
    """Appearance features of boxes in a frame, through a ReID model on any runner.

    Args:
        runner: the loaded model; its first input is ``[B, 3, H, W]``, its first output ``[B, D]``.
        spec: crop size and normalisation; ``height``/``width`` are taken from the model when it fixes them.
        batch_size: crops per inference call (capped by a fixed model batch).
        cropper: overrides the cropper chosen from the runner's residency; it gets the frame as passed (host or
            device) and returns the ``(N, 3, h, w)`` batch (uploaded when the runner is on the device and the batch
            is not).

    Call it as ``embedder(image, boxes_xyxy) -> (N, D)`` float32 unit vectors (host NumPy, wherever it ran).

    On a device runner a partial last batch is padded to the full batch (or the model's fixed batch), so the
    model always sees one input shape: on the H100, ONNX Runtime CUDA calls alternating between 4 and 8 rows took
    ~100 ms each, calls of one fixed shape 5 ms whether 1 or 32 rows (``benchmarks/results/trackers.md``).
    """

    def __init__(
        self,
        runner: Runner,
        spec: CropSpec | None = None,
        *,
        batch_size: int = 32,
        cropper: Cropper | None = None,
    ) -> None:
        self.runner = runner
        info = runner.input()
        self.input_name = info.name
        self.input_dtype = info.dtype
        model = runner.model_path.name
        if len(info.shape) != 4 or info.shape[1] not in (3, None):
            raise ModelError(
                f"{model}: a ReID model must take [batch, 3, height, width] images; got input {info.describe()}; "
                "give a ReID model (e.g. osnet_x0_25_msmt17.onnx)"
            )
        first = runner.outputs[0] if runner.outputs else None
        if first is None or (first.shape and len(first.shape) != 2):  # an unknown rank is checked on the first call
            got = "no output" if first is None else f"output {first.describe()}"
            raise ModelError(
                f"{model}: a ReID model must output [batch, features]; got {got}; "
                "give a ReID model (e.g. osnet_x0_25_msmt17.onnx)"
            )
        spec = spec or CropSpec()
        h = info.shape[2] or spec.height
        w = info.shape[3] or spec.width
        self.spec = CropSpec(h, w, spec.rgb, spec.mean, spec.std)
        fixed = info.shape[0]
        self.batch_size = min(batch_size, fixed) if fixed else batch_size
        self.fixed_batch = fixed
        self.output_name = runner.outputs[0].name
        #: set by :meth:`close`; a closed embedder cannot embed
        self.closed = False
        self.on_device = runner.residency is Residency.DEVICE
        self.cropper: Cropper = cropper or (crop_boxes_device if self.on_device else crop_boxes_host)
        self.dim: int | None = runner.outputs[0].shape[-1] if runner.outputs[0].shape else None
        #: device path: the input buffer the crops are cut into (grown to the most rows seen), and the stream
        self.device_buffer: Any = None
        self.stream: Any = None
        if self.on_device:
            from trtapps.gpu.stream import new_stream

            self.device_id = int(getattr(runner, "device_id", 0))
            self.stream = getattr(runner, "stream", None) or new_stream(self.device_id)

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        *,
        batch_size: int = 32,
        threads: int = 0,
        backend: str = "onnxruntime",
        context: RunContext | None = None,
    ) -> ReidEmbedder:
        """An embedder for the model at ``path`` on *backend* (see :func:`build_reid_runner`)."""
        runner = build_reid_runner(path, backend, context, batch_size=batch_size, threads=threads)
        return cls(runner, batch_size=batch_size)

    def __call__(self, image: Any, boxes: Any, pixel_format: str = "bgr") -> np.ndarray:
        """``(N, D)`` float32 unit-length features of the ``(N, 4)`` xyxy *boxes* in *image*.

        Args:
            image: the frame, host NumPy or CuPy ``(H, W, 3)`` uint8 BGR, or a CuPy NV12 surface; a device frame
                is read in stream order after the work queued so far on the caller's current CuPy stream.
            boxes: xyxy boxes in the frame's pixels.
            pixel_format: the frame's :attr:`~trtapps.structures.Frame.pixel_format`.
        """
        boxes = np.asarray(to_host(boxes))
        n = int(boxes.shape[0])
        if n == 0:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        if self.on_device:
            return self._embed_on_device(image, boxes, pixel_format)
        return self._embed_on_host(self._host_frame(image, pixel_format), boxes)

    # -- host ------------------------------------------------------------------------------------------------------
    def _host_frame(self, image: Any, pixel_format: str) -> np.ndarray:
        """The frame as host ``(H, W, 3)`` uint8 BGR (a device frame is downloaded, NV12 converted first)."""
        if pixel_format == "nv12":
            if is_device_array(image):
                return to_host(_nv12_to_bgr(image))
            import cv2

            return np.asarray(cv2.cvtColor(np.asarray(image), cv2.COLOR_YUV2BGR_NV12))
        _check_format(pixel_format, self.runner)
        return to_host(image)

    def _embed_on_host(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        n = int(boxes.shape[0])
        batch = self.cropper(image, boxes, self.spec)
        outputs = []
        for start in range(0, n, self.batch_size):
            chunk = batch[start : start + self.batch_size].astype(self.input_dtype, copy=False)
            k = chunk.shape[0]
            if self.fixed_batch and k < self.fixed_batch:  # pad a fixed-batch model's last call
                pad = np.zeros((self.fixed_batch - k, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            out = self.runner.infer({self.input_name: chunk})[self.output_name]
            self._check_output(out.shape, chunk.shape[0])
            outputs.append(np.asarray(out, dtype=np.float32)[:k])
        feats = np.concatenate(outputs)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)

    # -- device ----------------------------------------------------------------------------------------------------
    def padded_rows(self, n: int) -> int:
        """Rows of the device input for *n* crops: whole batches, then the last one padded (see the class)."""
        full, rest = divmod(n, self.batch_size)
        if rest == 0:
            return n
        return (full + 1) * (self.fixed_batch or self.batch_size)

    def _device_frame(self, image: Any, pixel_format: str) -> Any:
        """The frame as a CuPy array on the runner's device the crop kernel can read (one upload at most): BGR
        ``(H, W, 3)`` with packed pixels, or NV12 ``(H * 3 / 2, W)`` with packed rows (read in place)."""
        import cupy as cp

        _check_format(pixel_format, self.runner)
        if not is_device_array(image):
            host = np.ascontiguousarray(image, dtype=np.uint8)
            device = cp.empty(host.shape, dtype=np.uint8)
            device.set(host, stream=self.stream)
            return device
        image = cp.asarray(image)  # a CuPy view of any __cuda_array_interface__ array
        if image.device.id != self.device_id:
            image = image.copy()  # CuPy copies onto the current device: the runner's
        packed = image.strides[-1] == 1 and (image.ndim == 2 or image.strides[1] == 3)
        if not packed:
            image = cp.ascontiguousarray(image)  # the kernel reads packed pixels (rows may be padded)
        return image

    def _input_rows(self, rows: int) -> Any:
        import cupy as cp

        if self.device_buffer is None or self.device_buffer.shape[0] < rows:
            shape = (rows, 3, self.spec.height, self.spec.width)
            self.device_buffer = cp.empty(shape, dtype=self.input_dtype)
        return self.device_buffer[:rows]

    def _embed_on_device(self, image: Any, boxes: np.ndarray, pixel_format: str) -> np.ndarray:
        import cupy as cp

        from trtapps.gpu.stream import wait_for

        n = int(boxes.shape[0])
        rows = self.padded_rows(n)
        stream = self.stream
        # a device frame is complete on the caller's current stream (the runners' convention): order after it
        wait_for(stream, cp.cuda.get_current_stream())
        with cp.cuda.Device(self.device_id), stream:
            batch = self._input_rows(rows)
            if self.cropper is crop_boxes_device:
                frame = self._device_frame(image, pixel_format)
                crop_boxes_device(frame, boxes, self.spec, out=batch, stream=stream, pixel_format=pixel_format)
            else:  # a custom cropper gets the frame as it is; a host batch is uploaded
                crops = cp.asarray(self.cropper(image, boxes, self.spec))
                batch[:n] = crops
                batch[n:] = crops[-1:]
            feats: Any = None
            for start in range(0, n, self.batch_size):
                k = min(self.batch_size, n - start)
                chunk = batch[start : start + min(self.batch_size, rows - start)]
                out = self.runner.infer({self.input_name: chunk}, stream)[self.output_name]
                self._check_output(out.shape, chunk.shape[0])
                out = out[:k]
                if feats is None:
                    feats = cp.empty((n, out.shape[1]), dtype=np.float32)
                feats[start : start + k] = out  # copied before the next call overwrites the runner's output
            norms = cp.linalg.norm(feats, axis=1, keepdims=True)
            feats /= cp.maximum(norms, np.float32(1e-12))
            result: np.ndarray = feats.get(stream=stream)  # blocks until the stream is done
        self.dim = int(result.shape[1])
        return result

    def _check_output(self, shape: tuple[int, ...], rows: int) -> None:
        """Refuse an output that is not ``[rows, D]`` (a model whose output rank the file leaves open)."""
        if len(shape) != 2 or shape[0] != rows:
            raise ModelError(
                f"{self.runner.model_path.name}: a ReID model must output [batch, features]; got "
                f"{self.output_name} of shape {list(shape)} for {rows} crops; give a ReID model "
                "(e.g. osnet_x0_25_msmt17.onnx)"
            )

    def close(self) -> None:
        self.runner.close()
        self.device_buffer = None
        self.closed = True


def _check_format(pixel_format: str, runner: Runner) -> None:
    if pixel_format not in ("bgr", "nv12"):
        raise InputError(f"{runner.model_path.name}: ReID crops need BGR or NV12 frames, got {pixel_format!r}")


def _nv12_to_bgr(image: Any) -> Any:
    """A device NV12 surface as a BGR CuPy array, through the core's colour conversion (for the host cropper)."""
    import importlib

    try:
        nv12_to_bgr = importlib.import_module("trtapps.gpu.color").nv12_to_bgr
    except (ImportError, AttributeError):
        raise InputError(
            "ReID on the CPU from an NV12 device frame needs trtapps.gpu.color.nv12_to_bgr, which this trtapps "
            "lacks; run the ReID model on the GPU (tracker.reid_backend: onnxruntime_cuda), which reads NV12 directly"
        ) from None
    return nv12_to_bgr(image)
