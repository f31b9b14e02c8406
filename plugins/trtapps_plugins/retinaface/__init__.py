"""Built-in face apps ``retinaface`` (biubug6 RetinaFace) and ``scrfd`` (insightface SCRFD), 5 landmarks.

Registered through the ``trtapps`` entry-point group (``retinaface = "trtapps_plugins.retinaface"``),
exactly as a third-party plugin is. Both apps return :class:`trtapps.Detections` with ``labels = ["face"]``
and ``landmarks`` of shape ``(N, 5, 2)``: left eye, right eye, nose, left and right mouth corner (left =
smaller x).
"""

from __future__ import annotations

from trtapps.hookspecs import hookimpl
from trtapps.registry import ComponentSpec, Register

from ._common import CanvasTransform, resize_into_canvas
from .retinaface import (
    RetinaFaceApp,
    RetinaFaceOptions,
    decode_boxes,
    decode_landmarks,
    face_scores,
    make_retinaface,
    prior_boxes,
)
from .scrfd import ScrfdApp, ScrfdOptions, anchor_centers, make_scrfd

__all__ = [
    "CanvasTransform",
    "RetinaFaceApp",
    "RetinaFaceOptions",
    "ScrfdApp",
    "ScrfdOptions",
    "anchor_centers",
    "decode_boxes",
    "decode_landmarks",
    "face_scores",
    "prior_boxes",
    "resize_into_canvas",
    "trtapps_register_apps",
]


@hookimpl
def trtapps_register_apps(register: Register) -> None:
    """Register the ``retinaface`` and ``scrfd`` apps."""
    register(
        ComponentSpec(
            name="retinaface",
            options=RetinaFaceOptions,
            factory=make_retinaface,
            summary="RetinaFace faces + 5 landmarks (biubug6 priors/decode; native size or fixed input)",
        )
    )
    register(
        ComponentSpec(
            name="scrfd",
            options=ScrfdOptions,
            factory=make_scrfd,
            summary="insightface SCRFD faces + 5 landmarks (*_kps exports, fixed input, top-left resize)",
        )
    )
