"""Built-in postprocessors (``postprocess:`` in pipeline files), registered as a core plugin module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from trtapps.context import RunContext
from trtapps.errors import ConfigError
from trtapps.hookspecs import hookimpl
from trtapps.registry import ComponentSpec, PostprocessorOptions, Register
from trtapps.structures import Detections, Frame, array_module


def resolve_classes(wanted: Sequence[int | str], labels: Sequence[str], field: str) -> list[int]:
    """Class ids for a list of ids or names; unknown names raise :class:`ConfigError` naming *field*."""
    ids = []
    lookup = {name: i for i, name in enumerate(labels)}
    for item in wanted:
        if isinstance(item, int):
            ids.append(item)
        elif item in lookup:
            ids.append(lookup[item])
        else:
            known = ", ".join(labels[:12]) + (", …" if len(labels) > 12 else "")
            raise ConfigError(f"{field}: unknown class {item!r}; the model's classes are: {known}")
    return ids


class ClassFilterOptions(PostprocessorOptions):
    """Keep (or drop) detections of some classes."""

    type: str = "class_filter"
    keep: list[int | str] | None = Field(None, description="Class ids or names to keep.")
    drop: list[int | str] | None = Field(None, description="Class ids or names to drop.")

    @model_validator(mode="after")
    def _one_of(self) -> ClassFilterOptions:
        if (self.keep is None) == (self.drop is None):
            raise ValueError("give exactly one of 'keep' and 'drop'")
        return self


class ClassFilter:
    def __init__(self, options: ClassFilterOptions, labels: Sequence[str]) -> None:
        field = "postprocess.class_filter." + ("keep" if options.keep is not None else "drop")
        self.keep = options.keep is not None
        self.ids = np.asarray(resolve_classes(options.keep or options.drop or [], labels, field), dtype=np.int32)

    def __call__(self, detections: Detections, frame: Frame) -> Detections:
        xp = array_module(detections.class_ids)
        mask = xp.isin(detections.class_ids, xp.asarray(self.ids))
        return detections[mask if self.keep else ~mask]


class MinScoreOptions(PostprocessorOptions):
    """Drop detections scoring below a threshold."""

    type: str = "min_score"
    threshold: float = Field(ge=0.0, le=1.0, description="Minimum score kept.")


class MinSizeOptions(PostprocessorOptions):
    """Drop boxes smaller than a size (pixels of the original image)."""

    type: str = "min_size"
    width: float = Field(0.0, ge=0.0, description="Minimum box width.")
    height: float = Field(0.0, ge=0.0, description="Minimum box height.")


class RoiOptions(PostprocessorOptions):
    """Keep detections whose box centre lies inside a rectangle ``[x1, y1, x2, y2]`` (pixels)."""

    type: str = "roi"
    box: tuple[float, float, float, float] = Field(description="[x1, y1, x2, y2] in original pixels.")

    @model_validator(mode="after")
    def _ordered(self) -> RoiOptions:
        x1, y1, x2, y2 = self.box
        if x2 <= x1 or y2 <= y1:
            raise ValueError("box must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1")
        return self


class TopKOptions(PostprocessorOptions):
    """Keep the k best-scoring detections."""

    type: str = "top_k"
    k: int = Field(ge=1, description="How many to keep.")


def _min_score(options: MinScoreOptions, context: RunContext) -> Any:
    return lambda d, f: d[d.scores >= options.threshold]


def _min_size(options: MinSizeOptions, context: RunContext) -> Any:
    def apply(d: Detections, f: Frame) -> Detections:
        w = d.boxes[:, 2] - d.boxes[:, 0]
        h = d.boxes[:, 3] - d.boxes[:, 1]
        return d[(w >= options.width) & (h >= options.height)]

    return apply


def _roi(options: RoiOptions, context: RunContext) -> Any:
    x1, y1, x2, y2 = options.box

    def apply(d: Detections, f: Frame) -> Detections:
        cx = (d.boxes[:, 0] + d.boxes[:, 2]) / 2
        cy = (d.boxes[:, 1] + d.boxes[:, 3]) / 2
        return d[(cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)]

    return apply


def _top_k(options: TopKOptions, context: RunContext) -> Any:
    def apply(d: Detections, f: Frame) -> Detections:
        xp = array_module(d.scores)
        order = xp.argsort(-d.scores, kind="stable") if xp is np else xp.argsort(-d.scores)
        return d[order[: options.k]]

    return apply


@hookimpl
def trtapps_register_postprocessors(register: Register) -> None:
    register(ComponentSpec("class_filter", ClassFilterOptions,
                           lambda o, c: ClassFilter(o, c.labels), "keep or drop classes by id or name"))
    register(ComponentSpec("min_score", MinScoreOptions, _min_score, "drop detections below a score"))
    register(ComponentSpec("min_size", MinSizeOptions, _min_size, "drop boxes smaller than w × h pixels"))
    register(ComponentSpec("roi", RoiOptions, _roi, "keep detections centred inside a rectangle"))
    register(ComponentSpec("top_k", TopKOptions, _top_k, "keep the k best detections"))
