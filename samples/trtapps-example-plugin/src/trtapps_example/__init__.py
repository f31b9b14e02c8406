"""trtapps-example-plugin: app ``yolo_e2e`` (end-to-end YOLO exports) and sink ``csv``.

This module holds only the hook implementations; trtapps finds it through the entry point declared in
``pyproject.toml``::

    [project.entry-points.trtapps]
    yolo_e2e = "trtapps_example"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trtapps import ComponentSpec, hookimpl

from trtapps_example.app import create_app
from trtapps_example.options import CsvSinkOptions, YoloE2EOptions
from trtapps_example.sinks import create_csv_sink

if TYPE_CHECKING:
    from trtapps.registry import Register

__version__ = "0.1.0"


@hookimpl
def trtapps_register_apps(register: Register) -> None:
    register(
        ComponentSpec(
            name="yolo_e2e",
            options=YoloE2EOptions,
            factory=create_app,
            summary="end-to-end YOLO exports with NMS inside ([batch, K, 6]: YOLOv10, YOLO26, nms=True)",
        )
    )


@hookimpl
def trtapps_register_sinks(register: Register) -> None:
    register(ComponentSpec("csv", CsvSinkOptions, create_csv_sink, summary="one CSV row per detection"))
