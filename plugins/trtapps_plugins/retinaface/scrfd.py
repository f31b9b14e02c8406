"""App ``scrfd``: insightface SCRFD face detection with 5 keypoints (``*_bnkps`` / ``*_kps`` exports).

Reference: insightface ``python-package/insightface/model_zoo/scrfd.py``.

* Pre-processing: resize keeping the aspect ratio, paste at the top-left of the input canvas (default the
  model's fixed size; 640×640 for a model with dynamic H/W), pad 0, BGR → RGB, ``(x − 127.5) / 128``, NCHW.
* Outputs: per stride s ∈ (8, 16, 32) a score ``[B, N_s, 1]`` (already sigmoid), a box ``[B, N_s, 4]``
  (distances l, t, r, b in stride units) and a keypoint ``[B, N_s, 10]`` head; 15 outputs with strides up to
  128 and one anchor per cell are accepted too (insightface's ``fmc = 5`` layout). Unbatched ``[N_s, k]``
  outputs (older exports) work with a batch of one. Outputs are matched to strides by their row count
  ``N_s = (H//s)·(W//s)·anchors`` when the model states it, else by a ``_<stride>`` name suffix, else by
  output order (insightface's rule).
* Decode: anchor centres ``(x·s, y·s)``, row-major, each repeated per anchor; box
  ``(cx − l·s, cy − t·s, cx + r·s, cy + b·s)``; keypoint k ``(cx + dx_k·s, cy + dy_k·s)``.
* Selection: ``score >= conf_threshold`` (insightface's ``>=``), greedy NMS in original pixels with **``+1``
  pixel areas**, as insightface's own ``SCRFD.nms`` computes ``(x2 − x1 + 1)·(y2 − y1 + 1)``, IoU ≤
  threshold kept.

One deliberate difference: insightface divides both axes by one ``det_scale = new_height / height``; here
each axis is divided by its own exact resize factor (``new_width / width`` for x). The two differ by under
one canvas pixel's worth (≤ 0.16 % at 640), and the per-axis factor is the exact inverse of the resize that
was applied.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from trtapps.errors import ModelError
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
    resize_into_canvas,
    resolve_input_size,
    select_faces,
)

if TYPE_CHECKING:
    from trtapps.context import RunContext

#: insightface's layouts: number of outputs → (strides, anchors per cell)
LAYOUTS: dict[int, tuple[tuple[int, ...], int]] = {9: ((8, 16, 32), 2), 15: ((8, 16, 32, 64, 128), 1)}
#: input size for a model whose height and width are dynamic (insightface's ``det_size`` default)
DEFAULT_SIZE: tuple[int, int] = (640, 640)
INPUT_MEAN = 127.5
INPUT_STD = 128.0


class ScrfdOptions(AppOptions):
    """insightface SCRFD with keypoints: faces with 5 landmarks (eyes, nose, mouth corners)."""

    type: str = "scrfd"
    conf_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Keep faces with a score of at least this."
    )
    iou_threshold: FaceIouThreshold = 0.4
    max_det: FaceMaxDet = 750
    input_size: InputSize | None = Field(
        None,
        description=(
            "[height, width] of the model input (multiples of 32; aspect ratio kept, image top-left, "
            "padded). "
            "Omitted: the model's fixed size, or 640×640 for a model with dynamic height and width."
        ),
    )


@functools.lru_cache(maxsize=64)
def _centres(height: int, width: int, stride: int, anchors: int) -> np.ndarray:
    rows, cols = height // stride, width // stride
    grid = np.empty((rows, cols, anchors, 2), dtype=np.float32)
    grid[..., 0] = (np.arange(cols, dtype=np.float32) * stride)[None, :, None]
    grid[..., 1] = (np.arange(rows, dtype=np.float32) * stride)[:, None, None]
    centres = grid.reshape(-1, 2)
    centres.flags.writeable = False
    return centres


def anchor_centers(height: int, width: int, stride: int, anchors: int = 2) -> np.ndarray:
    """SCRFD anchor centres of one level (cached, read-only).

    Args:
        height, width: the model input size.
        stride: the level's stride; the grid is ``(height // stride) × (width // stride)``.
        anchors: anchors per cell (each centre is repeated this many times, consecutively).

    Returns:
        ``(rows · cols · anchors, 2)`` float32 ``(x·stride, y·stride)``, row-major.
    """
    return _centres(int(height), int(width), int(stride), int(anchors))


@dataclass(frozen=True)
class _Level:
    stride: int
    score: str
    bbox: str
    kps: str


class ScrfdApp(FaceApp):
    """SCRFD on any runner (fixed-size input; batch as large as the model allows).

    Args:
        options: the validated app options.
    """

    options: ScrfdOptions

    def __init__(self, options: ScrfdOptions) -> None:
        super().__init__(options)
        self._input_size: tuple[int, int] = options.input_size or DEFAULT_SIZE
        self._levels: list[_Level] = []
        self._anchors = 2

    @property
    def input_size(self) -> tuple[int, int]:
        """The ``(H, W)`` frames are resized to."""
        return self._input_size

    # -- binding ----------------------------------------------------------------------------------------
    def bind(self, runner: Runner) -> None:
        """Check the model (NCHW 3-channel input; 9 or 15 SCRFD heads) and pick the input size.

        Raises:
            ModelError: one line naming the model file and the fix.
        """
        info, model_hw = image_input(runner, "scrfd")
        size = resolve_input_size(runner, "scrfd", model_hw, self.options.input_size, DEFAULT_SIZE)
        assert size is not None
        layout = LAYOUTS.get(len(runner.outputs))
        if layout is None:
            raise ModelError(
                f"{runner.model_path}: app 'scrfd' needs an SCRFD export with keypoints (9 outputs "
                "score/bbox/kps per stride 8, 16, 32, or 15 with strides up to 128), but the model has "
                f"{len(runner.outputs)} ({describe_outputs(runner)}); use an insightface *_kps/*_bnkps "
                "export or the app type that fits"
            )
        strides, anchors = layout
        if size[0] % strides[-1] or size[1] % strides[-1]:
            raise ModelError(
                f"{runner.model_path}: SCRFD input size {size[0]}×{size[1]} is not a multiple of "
                f"{strides[-1]}; "
                f"set app.input_size to multiples of {strides[-1]} (e.g. [640, 640])"
            )
        self._levels = _match_levels(runner, size, strides, anchors)
        self._anchors = anchors
        self._input_size = size
        self._bind_input(info)

    def batch_key(self, frame: Frame) -> Any:
        """Every frame is resized to the one input size, so any frames can share a batch."""
        return None

    # -- per batch --------------------------------------------------------------------------------------
    def preprocess(self, frames: Sequence[Frame]) -> tuple[dict[str, Array], list[Any]]:
        """BGR frames → ``{input: (B, 3, H, W)}`` float RGB ``(x − 127.5)/128``, one transform per frame."""
        name = self._require_bound()
        if not frames:
            raise ValueError("scrfd: preprocess needs at least one frame")
        height, width = self._input_size
        blob = np.empty((len(frames), 3, height, width), dtype=np.float32)
        metas = []
        for i, frame in enumerate(frames):
            canvas, transform = resize_into_canvas(to_host(frame.image), self._input_size, 0)
            # BGR → RGB and HWC → CHW as one strided view, then (x − mean) straight into the batch
            np.subtract(canvas[..., ::-1].transpose(2, 0, 1), np.float32(INPUT_MEAN), out=blob[i])
            metas.append(transform)
        blob *= np.float32(1.0 / INPUT_STD)
        return {name: self._in_input_dtype(blob)}, metas

    def decode(
        self, outputs: Mapping[str, Array], frames: Sequence[Frame], metas: Sequence[Any]
    ) -> list[Detections]:
        """Model outputs of a batch → one :class:`Detections` per frame (``(N, 5, 2)`` landmarks)."""
        self._require_bound()
        height, width = self._input_size
        heads: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        for level in self._levels:
            arrays: list[np.ndarray] = []
            for key in (level.score, level.bbox, level.kps):
                if key not in outputs:
                    raise ValueError(
                        f"scrfd: output {key!r} is missing from the model outputs {sorted(outputs)}"
                    )
                array = np.asarray(to_host(outputs[key]), dtype=np.float32)
                arrays.append(array[None] if array.ndim == 2 else array)
            expected = anchor_centers(height, width, level.stride, self._anchors).shape[0]
            for array in arrays:
                if array.shape[0] != len(metas) or array.shape[1] != expected:
                    raise ValueError(
                        f"scrfd: stride-{level.stride} output has shape {array.shape}, expected "
                        f"({len(metas)}, {expected}, k) for a batch of {len(metas)} at {height}×{width}"
                    )
            heads.append((level.stride, arrays[0], arrays[1], arrays[2]))
        return [self._decode_one(heads, b, meta) for b, meta in enumerate(metas)]

    # -- internals --------------------------------------------------------------------------------------
    def _decode_one(
        self, heads: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], b: int, meta: CanvasTransform
    ) -> Detections:
        height, width = self._input_size
        threshold = np.float32(self.options.conf_threshold)
        all_scores, all_boxes, all_points = [], [], []
        for stride, score, bbox, kps in heads:
            s = score[b].reshape(-1)
            keep = np.flatnonzero(s >= threshold)
            centres = anchor_centers(height, width, stride, self._anchors)[keep]
            distances = bbox[b][keep] * np.float32(stride)
            all_scores.append(s[keep])
            all_boxes.append(np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], axis=1))
            all_points.append(centres[:, None, :] + kps[b][keep].reshape(-1, 5, 2) * np.float32(stride))
        boxes = meta.points_to_source(np.concatenate(all_boxes))
        points = meta.points_to_source(np.concatenate(all_points))
        return select_faces(
            np.concatenate(all_scores),
            boxes,
            points,
            iou_threshold=self.options.iou_threshold,
            max_det=self.options.max_det,
        )

    def _require_bound(self) -> str:
        if self._input_name is None or not self._levels:
            raise RuntimeError("scrfd: call bind(runner) before preprocess/decode")
        return self._input_name


def _match_levels(
    runner: Runner, size: tuple[int, int], strides: tuple[int, ...], anchors: int
) -> list[_Level]:
    """Assign every output to (stride, head): by its last dimension (1/4/10), then rows, name or order."""

    def misfit(reason: str) -> ModelError:
        return ModelError(
            f"{runner.model_path}: app 'scrfd' needs per-stride outputs score [B, N, 1], bbox [B, N, 4] "
            f"and kps [B, N, 10], but {reason} ({describe_outputs(runner)}); use an insightface "
            "*_kps/*_bnkps export"
        )

    groups: dict[int, list[TensorInfo]] = {1: [], 4: [], 10: []}
    for t in runner.outputs:
        if len(t.shape) not in (2, 3) or t.shape[-1] not in groups:
            raise misfit(f"output {t.name!r} is not [B, N, 1|4|10]")
        groups[t.shape[-1]].append(t)
    expected = {s: (size[0] // s) * (size[1] // s) * anchors for s in strides}
    by_count = {n: s for s, n in expected.items()}
    assigned: dict[int, dict[int, str]] = {}
    counts = [len(g) for g in groups.values()]
    if counts != [len(strides)] * 3:
        raise misfit("it has {}/{}/{} outputs 1/4/10 wide, not {n} each".format(*counts, n=len(strides)))
    for width, tensors in groups.items():
        rows = [t.shape[-2] for t in tensors]
        suffixes = [re.search(r"(\d+)$", t.name) for t in tensors]
        if all(r is not None for r in rows):
            unknown = [r for r in rows if r not in by_count]
            if unknown or len(set(rows)) != len(rows):
                raise misfit(
                    f"the {width}-wide outputs have {rows} rows, not "
                    f"{sorted(expected.values(), reverse=True)} as a {size[0]}×{size[1]} input needs"
                )
            order = [by_count[r] for r in rows]  # type: ignore[index]
        elif all(m is not None for m in suffixes) and sorted(int(m.group(1)) for m in suffixes if m) == list(
            strides
        ):
            order = [int(m.group(1)) for m in suffixes if m]
        else:
            order = list(strides)
        assigned[width] = {stride: t.name for stride, t in zip(order, tensors, strict=True)}
    return [_Level(s, assigned[1][s], assigned[4][s], assigned[10][s]) for s in strides]


def make_scrfd(options: ScrfdOptions, context: RunContext) -> ScrfdApp:
    """Factory registered for app type ``scrfd``."""
    return ScrfdApp(options)
