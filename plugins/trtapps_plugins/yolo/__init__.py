"""Built-in app ``yolo``: YOLOv5, YOLOv8/YOLO11 and YOLOX detectors (plugin registration only).

Registered through the ``trtapps`` entry-point group (``yolo = "trtapps_plugins.yolo"``), exactly as a
third-party plugin is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trtapps import ComponentSpec, hookimpl
from trtapps_plugins.yolo.app import create_app
from trtapps_plugins.yolo.options import YoloOptions

if TYPE_CHECKING:
    from trtapps.registry import Register


@hookimpl
def trtapps_register_apps(register: Register) -> None:
    register(
        ComponentSpec(
            name="yolo",
            options=YoloOptions,
            factory=create_app,
            summary="YOLOv5, YOLOv8/YOLO11 and YOLOX detection (letterbox, decode, NMS)",
        )
    )
