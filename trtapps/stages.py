"""The contracts every stage implements: apps, sources, sinks, postprocessors and trackers.

Stages never call each other: the pipeline (``trtapps.pipeline``) is the only code that knows their order and
moves data between them (and between host and device). Each protocol is small and single-purpose; plugins
implement them with plain classes (no base class is required, though the ABCs below help).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from trtapps.structures import Array, Detections, Frame, FrameResult

if TYPE_CHECKING:
    from trtapps.runners.base import Runner


class Residency(str, enum.Enum):
    """Where a stage wants its data: on the host (NumPy) or on the device (CuPy)."""

    HOST = "host"
    DEVICE = "device"


@dataclass(frozen=True)
class FrameFailure:
    """A frame a source could not deliver (corrupt image, broken stretch of video).

    It still counts as an input frame: sinks record it with its error, so every input frame is accounted for.
    """

    source: str
    index: int
    error: str
    source_id: int = 0


class App(ABC):
    """A model family: how to turn frames into model inputs and model outputs into detections.

    An app instance is built once per pipeline by the factory its plugin registered. The pipeline calls
    :meth:`bind` once with the runner, then per batch :meth:`preprocess`, the runner, and :meth:`decode`.
    """

    #: class names, index = class id (set by :meth:`bind` from the model metadata or the options)
    labels: Sequence[str] = ()
    #: keypoints per detection (5 for faces), or None
    keypoints: int | None = None
    #: True when the app applies ``AppOptions.classes`` itself (e.g. before NMS); otherwise the pipeline filters
    #: the app's detections by class
    applies_classes: bool = False

    def bind(self, runner: Runner) -> None:  # noqa: B027 - optional hook
        """Check that the model fits this app and adapt to it (variant, input size, class names).

        Raise :class:`trtapps.errors.ModelError` naming the model and the fix when it does not fit.
        """

    def batch_key(self, frame: Frame) -> Any:
        """Frames with different keys are never put into the same batch (e.g. native-size inputs)."""
        return None

    @abstractmethod
    def preprocess(self, frames: Sequence[Frame]) -> tuple[dict[str, Array], list[Any]]:
        """Build the model inputs for a batch of frames.

        Returns:
            ``(inputs, metas)``: input tensors by name (batch-first) and one opaque meta per frame
            (e.g. the letterbox transform) that :meth:`decode` uses to map boxes back.
        """

    @abstractmethod
    def decode(
        self, outputs: Mapping[str, Array], frames: Sequence[Frame], metas: Sequence[Any]
    ) -> list[Detections]:
        """Turn the model outputs of a batch into one :class:`Detections` per frame, in original pixels."""

    # -- the GPU data path (optional) ---------------------------------------------------------------------------
    #: True when the app implements :meth:`preprocess_device` and :meth:`decode_device` (or its async form); the
    #: pipeline then keeps frames and tensors on the GPU whenever the runner's residency is DEVICE.
    supports_device: bool = False

    def preprocess_device(
        self, images: Sequence[Array], frames: Sequence[Frame], stream: Any
    ) -> tuple[dict[str, Array], list[Any]]:
        """Like :meth:`preprocess`, on the GPU.

        Args:
            images: one ``(H, W, 3)`` uint8 BGR CuPy array per frame, already uploaded on *stream*.
            frames: the host frames (sizes, sources; their pixels must not be read here).
            stream: the CuPy stream everything of this batch is enqueued on (no host synchronisation).

        Returns:
            ``(inputs, metas)`` with CuPy input tensors (they may be views of a buffer the app reuses).
        """
        raise NotImplementedError(f"{type(self).__name__} has no GPU preprocessing")

    def decode_device(
        self, outputs: Mapping[str, Array], frames: Sequence[Frame], metas: Sequence[Any], stream: Any
    ) -> list[Detections]:
        """Like :meth:`decode`, from CuPy outputs on *stream*; returns host :class:`Detections` (one small copy).

        An app implements this or :meth:`decode_device_async`; by default this one waits for the other.
        """
        if type(self).decode_device_async is App.decode_device_async:
            raise NotImplementedError(f"{type(self).__name__} has no GPU decoding")
        return self.decode_device_async(outputs, frames, metas, stream)()

    def decode_device_async(
        self, outputs: Mapping[str, Array], frames: Sequence[Frame], metas: Sequence[Any], stream: Any
    ) -> Callable[[], list[Detections]]:
        """Queue :meth:`decode_device`'s work on *stream* and return a function that waits for it.

        The pipeline calls the returned function only after it has queued the next batch, so the GPU works on
        that batch while the host turns this one's results into :class:`Detections`. An app that overrides it
        copies its results into host memory with an async copy it can wait for (an event), into a buffer that
        stays the batch's until the function has run (see :class:`trtapps.ops.cuda.nms.PendingCompact`).
        The default decodes synchronously with :meth:`decode_device` (implement one of the two).
        """
        detections = self.decode_device(outputs, frames, metas, stream)
        return lambda: detections


@runtime_checkable
class Source(Protocol):
    """Frames from one input (image set, video file, camera, stream), in order.

    A source may also have ``describe() -> dict``: JSON-ready facts about how it reads (e.g. the video decoder it
    chose), recorded per source in the run summary, and ``min_queue: int``: frames the pipeline should let it queue
    at least, whatever its share of ``queue_size`` (for sources whose waiting frames cost little memory and whose
    reader is costly to wake, see :class:`~trtapps.batching.Batcher`).
    """

    name: str

    def __iter__(self) -> Iterator[Frame | FrameFailure]: ...

    def __len__(self) -> int:
        """Total frames when known in advance, else 0."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Receives every frame result (in input order per source) and writes it somewhere."""

    #: True when the sink needs ``FrameResult.image`` (annotated media); the pipeline keeps host frames then.
    needs_images: bool

    def write(self, result: FrameResult) -> None: ...

    def close(self, summary: Any) -> None:
        """Flush and close; called once, also after errors and Ctrl-C, with the run summary."""
        ...


@runtime_checkable
class Postprocessor(Protocol):
    """Filters or edits the detections of one frame (class filter, ROI filter, min size…)."""

    def __call__(self, detections: Detections, frame: Frame) -> Detections: ...


@runtime_checkable
class Tracker(Protocol):
    """Assigns track ids to the detections of consecutive frames of one source.

    The pipeline builds one per source when its first frame comes. A tracker may also have ``close()``: it is
    called when the run ends (however it ends), e.g. to let a model of its own go.
    """

    def update(self, detections: Detections, frame: Frame) -> Detections:
        """Return the tracked detections of this frame with ``track_ids`` set."""
        ...
