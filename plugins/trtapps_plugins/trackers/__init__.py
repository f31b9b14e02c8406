"""Trackers (SORT, ByteTrack, DeepSORT), a ReID embedder, the ``mot`` sink and MOT evaluation commands.

Registered through the ``trtapps`` entry-point group like any third-party plugin:

* trackers ``sort``, ``bytetrack``, ``deepsort`` — reference-exact ports of abewley/sort, ifzhang/ByteTrack and
  nwojke/deep_sort with Kalman filters vectorised over all tracks;
* sink ``mot`` — MOTChallenge results files;
* commands ``trtapps mot`` (run a tracker on MOTChallenge public detections) and ``trtapps mot-eval``
  (MOTA/IDF1/… with motmetrics under the MOTChallenge protocol).

Heavy imports (motmetrics, OpenCV, ONNX Runtime) happen only when a command or the ReID model needs them.
"""

from __future__ import annotations

from typing import Any

from trtapps.hookspecs import hookimpl
from trtapps.registry import ComponentSpec, Register
from trtapps_plugins.trackers.bytetrack import ByteTracker, ByteTrackOptions
from trtapps_plugins.trackers.deepsort import DeepSortOptions, DeepSortTracker, build_deepsort
from trtapps_plugins.trackers.sink import MotSink, MotSinkOptions, build_mot_sink
from trtapps_plugins.trackers.sort import SortOptions, SortTracker

__all__ = [
    "ByteTrackOptions",
    "ByteTracker",
    "DeepSortOptions",
    "DeepSortTracker",
    "MotSink",
    "MotSinkOptions",
    "SortOptions",
    "SortTracker",
    "tracker_specs",
]


def tracker_specs() -> list[ComponentSpec[Any]]:
    """The tracker specs this plugin registers."""
    return [
        ComponentSpec(
            name="sort",
            options=SortOptions,
            factory=lambda options, context: SortTracker(options),
            summary="SORT (abewley/sort): IoU + Kalman, reference-exact",
        ),
        ComponentSpec(
            name="bytetrack",
            options=ByteTrackOptions,
            factory=lambda options, context: ByteTracker(options),
            summary="ByteTrack (ifzhang/ByteTrack): two-stage high/low score association, reference-exact",
        ),
        ComponentSpec(
            name="deepsort",
            options=DeepSortOptions,
            factory=build_deepsort,
            summary="DeepSORT (nwojke/deep_sort): appearance cascade + IoU, ReID from embeddings or a model",
        ),
    ]


@hookimpl
def trtapps_register_trackers(register: Register) -> None:
    for spec in tracker_specs():
        register(spec)


@hookimpl
def trtapps_register_sinks(register: Register) -> None:
    register(
        ComponentSpec(
            name="mot",
            options=MotSinkOptions,
            factory=build_mot_sink,
            summary="MOTChallenge results (frame,id,x,y,w,h,score,-1,-1,-1), one file per source",
        )
    )


@hookimpl
def trtapps_register_commands(cli: Any) -> None:
    from trtapps_plugins.trackers.cli import add_commands

    add_commands(cli)
