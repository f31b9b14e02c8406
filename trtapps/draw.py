"""Drawing detections onto images: boxes, labels, landmarks, track ids and short trails.

Pure OpenCV/NumPy (no GUI calls), so it runs headless. Colours are stable: the same class (or, for tracked
detections, the same track id) always gets the same colour, in every frame and every run.
"""

from __future__ import annotations

import colorsys
from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

import cv2
import numpy as np

from trtapps.structures import Detections, to_host

Color = tuple[int, int, int]

#: BGR colours for classes 0, 1, 2, … (cycled); chosen to stay distinct from each other on photos
CLASS_PALETTE: tuple[Color, ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)

#: BGR colours of the 5 face landmarks: left eye, right eye, nose, left and right mouth corner
LANDMARK_COLORS: tuple[Color, ...] = (
    (255, 0, 0),  # blue
    (0, 0, 255),  # red
    (0, 255, 0),  # green
    (255, 0, 255),  # magenta
    (0, 255, 255),  # yellow
)


def class_color(class_id: int) -> Color:
    """The colour of a class id (stable: palette entry ``class_id mod 20``)."""
    return CLASS_PALETTE[int(class_id) % len(CLASS_PALETTE)]


def track_color(track_id: int) -> Color:
    """A colour for a track id: hues spaced by the golden ratio, so consecutive ids look different."""
    hue = (int(track_id) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return (int(b * 255), int(g * 255), int(r * 255))


def _text_color(background: Color) -> Color:
    """Black or white, whichever reads better on *background* (BGR)."""
    b, g, r = background
    return (0, 0, 0) if (0.299 * r + 0.587 * g + 0.114 * b) > 150 else (255, 255, 255)


class TrailHistory:
    """The last few box centres of every track, per source, for drawing short motion trails.

    Call :meth:`update` once per frame with that frame's tracked detections (before drawing); tracks not seen
    for ``max_age`` updates of their source are forgotten.

    Args:
        length: centres kept per track.
        max_age: updates of a source after which an unseen track of that source is dropped.
    """

    def __init__(self, length: int = 30, max_age: int = 30) -> None:
        if length < 1:
            raise ValueError(f"TrailHistory length must be at least 1, but got {length}")
        self.length = length
        self.max_age = max_age
        self._points: dict[Hashable, dict[int, deque[tuple[float, float]]]] = {}
        self._last_seen: dict[Hashable, dict[int, int]] = {}
        self._clock: dict[Hashable, int] = {}

    def update(self, source: Hashable, detections: Detections) -> None:
        """Record the box centres of the tracked detections of one frame of *source*."""
        tick = self._clock.get(source, 0) + 1
        self._clock[source] = tick
        points = self._points.setdefault(source, {})
        seen = self._last_seen.setdefault(source, {})
        dets = detections.to_host()
        if dets.track_ids is not None:
            for box, tid in zip(dets.boxes, dets.track_ids, strict=True):
                if not np.all(np.isfinite(box)):
                    continue
                centre = (float(box[0] + box[2]) / 2.0, float(box[1] + box[3]) / 2.0)
                points.setdefault(int(tid), deque(maxlen=self.length)).append(centre)
                seen[int(tid)] = tick
        for tid in [t for t, last in seen.items() if tick - last > self.max_age]:
            del seen[tid]
            points.pop(tid, None)

    def trails(self, source: Hashable) -> dict[int, list[tuple[float, float]]]:
        """Centres per live track id of *source*, oldest first."""
        return {tid: list(pts) for tid, pts in self._points.get(source, {}).items()}

    def reset(self, source: Hashable | None = None) -> None:
        """Forget one source (or all)."""
        for store in (self._points, self._last_seen, self._clock):
            if source is None:
                store.clear()
            else:
                store.pop(source, None)


def annotate(
    image: Any,
    detections: Detections | None,
    labels: Sequence[str] | None = None,
    *,
    show_labels: bool = True,
    show_scores: bool = True,
    show_track_ids: bool = True,
    show_landmarks: bool = True,
    trails: TrailHistory | None = None,
    source: Hashable = None,
    line_width: int | None = None,
    copy: bool = True,
) -> np.ndarray:
    """Draw *detections* on *image* and return the annotated image.

    Boxes get the colour of their class, or of their track id when ``detections.track_ids`` is set. The label
    reads ``"#<track id> <class name> <score>"``. Landmarks are small filled circles, one distinct colour per
    point index. With *trails*, the recorded centres of each track of *source* are drawn as a polyline (call
    ``trails.update(source, detections)`` first).

    Args:
        image: ``(H, W, 3)`` uint8 BGR, NumPy or CuPy (copied to the host).
        detections: boxes in *image* pixels; ``None`` draws nothing.
        labels: class names (index = class id); the id is shown when a name is missing.
        show_labels: draw the text label above each box.
        show_scores: include the score in the label.
        show_track_ids: include ``#id`` in the label when track ids are set.
        show_landmarks: draw keypoints when present.
        trails: track trails to draw (only tracks of *source*).
        source: the key of *image*'s source in *trails*.
        line_width: box thickness in pixels; default scales with the image size.
        copy: draw on a copy (default) instead of on *image* itself.

    Returns:
        The annotated ``(H, W, 3)`` uint8 BGR NumPy image.
    """
    canvas = to_host(image)
    if canvas.ndim != 3 or canvas.shape[2] != 3 or canvas.dtype != np.uint8:
        raise ValueError(f"annotate needs an (H, W, 3) uint8 BGR image, but got {canvas.shape} {canvas.dtype}")
    canvas = canvas.copy() if copy or not canvas.flags.writeable else np.ascontiguousarray(canvas)
    height, width = canvas.shape[:2]
    lw = line_width or max(1, round((height + width) / 2 * 0.003))
    font_scale = max(0.35, lw / 3.0)
    font_thickness = max(1, lw - 1)
    radius = max(2, lw + 1)

    if trails is not None:
        for track, points in trails.trails(source).items():
            if len(points) >= 2:
                pts = np.round(np.asarray(points)).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(canvas, [pts], False, track_color(track), max(1, lw - 1), cv2.LINE_AA)

    if detections is None or len(detections) == 0:
        return canvas
    dets = detections.to_host()
    for i in range(len(dets)):
        box = dets.boxes[i]
        if not np.all(np.isfinite(box)):
            continue
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cid = int(dets.class_ids[i])
        tid = int(dets.track_ids[i]) if dets.track_ids is not None else None
        color = track_color(tid) if tid is not None else class_color(cid)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, lw, cv2.LINE_AA)

        if show_landmarks and dets.landmarks is not None:
            for k, (px, py) in enumerate(dets.landmarks[i]):
                if np.isfinite(px) and np.isfinite(py):
                    pcolor = LANDMARK_COLORS[k] if k < len(LANDMARK_COLORS) else class_color(k)
                    cv2.circle(canvas, (round(float(px)), round(float(py))), radius, pcolor, -1, cv2.LINE_AA)

        if show_labels:
            parts = []
            if tid is not None and show_track_ids:
                parts.append(f"#{tid}")
            name = labels[cid] if labels is not None and 0 <= cid < len(labels) else str(cid)
            parts.append(str(name))
            if show_scores:
                parts.append(f"{float(dets.scores[i]):.2f}")
            _label(canvas, " ".join(parts), (x1, y1), color, font_scale, font_thickness)
    return canvas


def _label(canvas: np.ndarray, text: str, corner: tuple[int, int], color: Color, scale: float, thick: int) -> None:
    """A filled tag with *text* above the box corner (inside the box when there is no room above)."""
    (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = max(corner[0], 0), corner[1]
    pad = 3
    above = y - th - baseline - pad >= 0
    top = y - th - baseline - pad if above else max(y, 0)
    bottom = top + th + baseline + pad
    x = min(x, max(canvas.shape[1] - tw - pad, 0))
    cv2.rectangle(canvas, (x, top), (x + tw + pad, bottom), color, -1)
    cv2.putText(canvas, text, (x + 1, bottom - baseline - 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                _text_color(color), thick, cv2.LINE_AA)
