"""The data that flows through a pipeline: frames, detections and per-frame results.

``Detections`` is the one result type that crosses every stage boundary. Its arrays are NumPy on the host
or CuPy on the device (never mixed within one object) and are validated when it is built, with messages that
say the expected and the actual shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or cupy.ndarray; kept loose so CuPy stays optional


def array_module(array: Any) -> Any:
    """Return ``numpy`` or ``cupy``, whichever owns *array*."""
    module = type(array).__module__
    if module.startswith("cupy"):
        import cupy

        return cupy
    return np


def is_device_array(array: Any) -> bool:
    """True when *array* lives on a GPU (CuPy, or anything exposing ``__cuda_array_interface__``)."""
    return hasattr(array, "__cuda_array_interface__")


def to_host(array: Any) -> np.ndarray:
    """A NumPy copy (or view) of *array*, wherever it lives."""
    if is_device_array(array):
        return array.get() if hasattr(array, "get") else np.asarray(array)
    return np.asarray(array)


#: pixel layouts a :class:`Frame` may carry: interleaved BGR (every source), or the NV12 surface a hardware
#: video decoder leaves in device memory (luma plane ``H`` rows, interleaved chroma ``H/2`` rows, one array of
#: shape ``(H * 3 // 2, W)``), which the GPU preprocessing kernel reads directly
PIXEL_FORMATS = ("bgr", "nv12")

#: ``Frame.meta`` key of the source's own host pixels when the pipeline has moved ``Frame.image`` to the GPU
HOST_IMAGE_KEY = "host_image"


@dataclass
class Frame:
    """One input image.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR, host (NumPy) or device (CuPy); with ``pixel_format="nv12"`` a device
            ``(H * 3 // 2, W)`` uint8 NV12 surface.
        source: the image path, video path or stream URL it came from.
        index: 0-based index of the frame within its source (0 for a single image).
        timestamp: seconds since the start of the source (video/stream), or ``None``.
        source_id: position of the source in a multi-source pipeline.
        meta: free-form per-frame metadata for plugins.
        pixel_format: ``"bgr"`` (default) or ``"nv12"`` (see :data:`PIXEL_FORMATS`).
    """

    image: Array
    source: str
    index: int = 0
    timestamp: float | None = None
    source_id: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    pixel_format: str = "bgr"

    def __post_init__(self) -> None:
        shape = getattr(self.image, "shape", None)
        if self.pixel_format == "nv12":
            if shape is None or len(shape) != 2 or shape[0] < 3 or shape[0] % 3 or shape[1] < 2 or shape[1] % 2:
                raise ValueError(f"an NV12 Frame.image must be (H * 3 / 2, W) with even H and W, got {shape}")
        elif self.pixel_format != "bgr":
            raise ValueError(f"Frame.pixel_format must be one of {PIXEL_FORMATS}, got {self.pixel_format!r}")
        elif shape is None or len(shape) != 3 or shape[2] != 3 or shape[0] < 1 or shape[1] < 1:
            raise ValueError(f"Frame.image must be an (H, W, 3) BGR array, but got shape {shape}")
        if self.image.dtype != np.uint8:
            raise ValueError(f"Frame.image must be uint8, but got {self.image.dtype}")

    @property
    def height(self) -> int:
        if self.pixel_format == "nv12":
            return int(self.image.shape[0]) * 2 // 3
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def host_image(self) -> np.ndarray:
        """The frame as ``(H, W, 3)`` uint8 BGR in host memory, for code that needs pixels on the CPU.

        On the GPU data path ``image`` is the frame's device copy and the source's own array is still at hand,
        so this costs nothing; otherwise a device frame is downloaded (NV12 converted to BGR on the GPU first).
        """
        host = self.meta.get(HOST_IMAGE_KEY)
        if host is not None:
            return host
        if self.pixel_format == "nv12":
            from trtapps.gpu.color import nv12_to_bgr

            return to_host(nv12_to_bgr(self.image))
        return to_host(self.image)


_OPTIONAL_FIELDS = ("landmarks", "track_ids", "embeddings")


@dataclass
class Detections:
    """Detections of one frame, boxes in original image pixels.

    Attributes:
        boxes: ``(N, 4)`` float32 ``[x1, y1, x2, y2]``.
        scores: ``(N,)`` float32.
        class_ids: ``(N,)`` int32.
        landmarks: ``(N, K, 2)`` float32 keypoints (faces: K = 5), or ``None``.
        track_ids: ``(N,)`` int64 track identities (set by a tracker), or ``None``.
        embeddings: ``(N, D)`` float32 appearance features (set by a ReID stage), or ``None``.
    """

    boxes: Array
    scores: Array
    class_ids: Array
    landmarks: Array | None = None
    track_ids: Array | None = None
    embeddings: Array | None = None

    def __post_init__(self) -> None:
        xp = array_module(self.boxes)
        self.boxes = xp.asarray(self.boxes, dtype=xp.float32)
        if self.boxes.size == 0:
            self.boxes = self.boxes.reshape(0, 4)
        self.scores = xp.asarray(self.scores, dtype=xp.float32)
        self.class_ids = xp.asarray(self.class_ids, dtype=xp.int32)
        n = self.boxes.shape[0] if self.boxes.ndim == 2 else -1
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (n, 4), but got shape {tuple(self.boxes.shape)}")
        _expect(self.scores, (n,), "scores")
        _expect(self.class_ids, (n,), "class_ids")
        if self.landmarks is not None:
            self.landmarks = xp.asarray(self.landmarks, dtype=xp.float32)
            if self.landmarks.ndim != 3 or self.landmarks.shape[0] != n or self.landmarks.shape[2] != 2:
                raise ValueError(
                    f"landmarks must have shape ({n}, k, 2), but got shape {tuple(self.landmarks.shape)}"
                )
        if self.track_ids is not None:
            self.track_ids = xp.asarray(self.track_ids, dtype=xp.int64)
            _expect(self.track_ids, (n,), "track_ids")
        if self.embeddings is not None:
            self.embeddings = xp.asarray(self.embeddings, dtype=xp.float32)
            if self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
                raise ValueError(
                    f"embeddings must have shape ({n}, d), but got shape {tuple(self.embeddings.shape)}"
                )
        for name in ("scores", "class_ids", *_OPTIONAL_FIELDS):
            value = getattr(self, name)
            if value is not None and array_module(value) is not xp:
                raise ValueError(f"{name} lives on another device than boxes; keep all fields host or all device")

    # -- constructors -----------------------------------------------------------------------------------------
    @classmethod
    def unchecked(
        cls, boxes: Array, scores: Array, class_ids: Array, landmarks: Array | None = None
    ) -> Detections:
        """Detections from arrays that already have the field's dtypes and shapes, on one device: no checks, no
        conversions. For decoders that build the arrays themselves, once per frame (the checks of the ordinary
        constructor cost several microseconds per frame there); anything else uses ``Detections(...)``."""
        dets = cls.__new__(cls)
        dets.boxes, dets.scores, dets.class_ids, dets.landmarks = boxes, scores, class_ids, landmarks
        dets.track_ids = dets.embeddings = None
        return dets

    @classmethod
    def empty(cls, *, landmarks: int | None = None, xp: Any = np) -> Detections:
        """No detections (``landmarks=K`` gives an empty ``(0, K, 2)`` landmarks array)."""
        return cls(
            boxes=xp.zeros((0, 4), xp.float32),
            scores=xp.zeros((0,), xp.float32),
            class_ids=xp.zeros((0,), xp.int32),
            landmarks=None if landmarks is None else xp.zeros((0, landmarks, 2), xp.float32),
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Detections]) -> Detections:
        """Join the detections of several parts (all host or all device)."""
        if not parts:
            return cls.empty()
        xp = array_module(parts[0].boxes)

        def cat(name: str) -> Array | None:
            values = [getattr(p, name) for p in parts]
            if all(v is None for v in values):
                return None
            if any(v is None for v in values):
                raise ValueError(f"cannot concatenate detections where only some have {name}")
            return xp.concatenate(values)

        return cls(
            boxes=cat("boxes"),
            scores=cat("scores"),
            class_ids=cat("class_ids"),
            landmarks=cat("landmarks"),
            track_ids=cat("track_ids"),
            embeddings=cat("embeddings"),
        )

    # -- access -----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        """Select detections by boolean mask, integer array or slice."""
        return Detections(
            boxes=self.boxes[index].reshape(-1, 4),
            scores=self.scores[index].reshape(-1),
            class_ids=self.class_ids[index].reshape(-1),
            landmarks=None if self.landmarks is None else self.landmarks[index],
            track_ids=None if self.track_ids is None else self.track_ids[index].reshape(-1),
            embeddings=None if self.embeddings is None else self.embeddings[index],
        )

    @property
    def on_device(self) -> bool:
        return is_device_array(self.boxes)

    def to_host(self) -> Detections:
        """A NumPy copy; returns ``self`` when already on the host."""
        if not self.on_device:
            return self
        return Detections(
            boxes=to_host(self.boxes),
            scores=to_host(self.scores),
            class_ids=to_host(self.class_ids),
            landmarks=None if self.landmarks is None else to_host(self.landmarks),
            track_ids=None if self.track_ids is None else to_host(self.track_ids),
            embeddings=None if self.embeddings is None else to_host(self.embeddings),
        )

    def replace(self, **changes: Any) -> Detections:
        """A copy with some fields replaced (validated again)."""
        fields = {
            "boxes": self.boxes,
            "scores": self.scores,
            "class_ids": self.class_ids,
            "landmarks": self.landmarks,
            "track_ids": self.track_ids,
            "embeddings": self.embeddings,
        }
        fields.update(changes)
        return Detections(**fields)


def _expect(array: Any, shape: tuple[int, ...], name: str) -> None:
    if tuple(array.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, but got shape {tuple(array.shape)}")


@dataclass
class FrameResult:
    """What the sinks receive for every input frame, in input order per source.

    Exactly one of ``detections`` and ``error`` is set: a frame that could not be read or processed carries
    the error text and no detections.
    """

    source: str
    index: int
    width: int
    height: int
    detections: Detections | None = None
    error: str | None = None
    source_id: int = 0
    image: Array | None = None  # the host frame, kept only when a sink asked for images
    timestamp: float | None = None
    labels: Sequence[str] | None = None  # class names of the app that produced the detections

    @property
    def ok(self) -> bool:
        return self.error is None

    def label(self, class_id: int) -> str:
        if self.labels is not None and 0 <= class_id < len(self.labels):
            return str(self.labels[class_id])
        return str(class_id)

    def to_json(self) -> dict[str, Any]:
        """The JSONL record of this frame (see the README for the format).

        ``source_id`` (the source's position in the pipeline) tells lines of different sources apart when several
        sources run at once: their lines interleave, each source's in frame order.
        """
        if self.error is not None:
            return {"source": self.source, "source_id": self.source_id, "frame": self.index, "error": self.error}
        dets = self.detections.to_host() if self.detections is not None else Detections.empty()
        items: list[dict[str, Any]] = []
        for i in range(len(dets)):
            item: dict[str, Any] = {
                "box": [round(float(v), 2) for v in dets.boxes[i]],
                "score": round(float(dets.scores[i]), 5),
                "class_id": int(dets.class_ids[i]),
                "label": self.label(int(dets.class_ids[i])),
            }
            if dets.landmarks is not None:
                item["landmarks"] = [[round(float(x), 2), round(float(y), 2)] for x, y in dets.landmarks[i]]
            if dets.track_ids is not None:
                item["track_id"] = int(dets.track_ids[i])
            items.append(item)
        return {
            "source": self.source,
            "source_id": self.source_id,
            "frame": self.index,
            "width": self.width,
            "height": self.height,
            "detections": items,
        }
