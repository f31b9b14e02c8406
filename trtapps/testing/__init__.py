"""Test helpers for trtapps itself and for plugin authors.

* :mod:`trtapps.testing.plugin` — a pytest plugin (``pytest_plugins = ["trtapps.testing.plugin"]``) with the
  ``plugin_manager``, ``make_pipeline`` and ``synthetic_frames`` fixtures and a report-header line naming the
  installed trtapps plugins and their versions.
* :mod:`trtapps.testing.suites` — conformance suites (``AppSuite``, ``SinkSuite``, ``PostprocessorSuite``): test
  classes a plugin subclasses to prove its components honour the contract (Hydra's launcher-suite idea).
* this module — plain helpers the two build on: deterministic synthetic frames and :class:`InlinePlugin`, a
  plugin object made of ready :class:`~trtapps.ComponentSpec` records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from trtapps.errors import InputError
from trtapps.hookspecs import hookimpl
from trtapps.registry import ComponentSpec
from trtapps.structures import Frame

__all__ = [
    "DEFAULT_SIZES",
    "InlinePlugin",
    "load_frame",
    "synthetic_frames",
    "synthetic_image",
]

#: ``(height, width)`` of the frames :func:`synthetic_frames` makes by default: landscape, portrait, odd sizes
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((480, 640), (375, 500), (640, 427), (241, 319))


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic ``(height, width, 3)`` uint8 BGR picture: a colour gradient, noise, boxes and discs.

    The same arguments give the same pixels on every machine (NumPy's PCG64 generator and OpenCV's integer
    drawing). It has edges and flat areas, so preprocessing bugs (channel order, padding, resizing) change the
    model's output, but it shows no real object: detectors usually find little or nothing on it.

    Args:
        height: rows, at least 1.
        width: columns, at least 1.
        seed: selects the picture.
    """
    if height < 1 or width < 1:
        raise ValueError(f"synthetic_image needs a positive size, got {height}x{width}")
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    base = np.stack([255 * x * np.ones_like(y), 255 * y * np.ones_like(x), 255 * (1 - x) * (1 - y) * np.ones_like(x)],
                    axis=-1)
    noise = rng.normal(0.0, 12.0, (height, width, 3)).astype(np.float32)
    image = np.clip(base + noise, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 7))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x1, x2 = sorted(int(v) for v in rng.integers(0, width, 2))
        y1, y2 = sorted(int(v) for v in rng.integers(0, height, 2))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness=-1)
        else:
            centre = ((x1 + x2) // 2, (y1 + y2) // 2)
            cv2.circle(image, centre, max(1, min(x2 - x1, y2 - y1) // 2), colour, thickness=-1)
    return image


def synthetic_frames(
    count: int = 4,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    *,
    seed: int = 0,
    source: str = "synthetic",
) -> list[Frame]:
    """*count* deterministic BGR frames, cycling through *sizes* (mixed sizes by default).

    Frame ``i`` has ``index = i``, ``source = source`` and the pixels of ``synthetic_image(h, w, seed + i)``.

    Args:
        count: how many frames.
        sizes: ``(height, width)`` of each frame in turn.
        seed: selects the pictures.
        source: the ``Frame.source`` of every frame.
    """
    if not sizes:
        raise ValueError("synthetic_frames needs at least one size")
    frames = []
    for i in range(count):
        height, width = sizes[i % len(sizes)]
        frames.append(Frame(synthetic_image(height, width, seed + i), source=source, index=i))
    return frames


def load_frame(image: str | Path | np.ndarray, index: int = 0) -> Frame:
    """A :class:`Frame` from an image file or a BGR array (the array is used as is, not copied).

    Raises:
        InputError: the file cannot be read as an image.
    """
    if isinstance(image, np.ndarray):
        return Frame(image, source=f"<array {index}>", index=index)
    data = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if data is None:
        raise InputError(f"{image}: cannot read the image (missing, empty or not an image)")
    return Frame(data, source=str(image), index=index)


_HOOKS = {
    "apps": "trtapps_register_apps",
    "sources": "trtapps_register_sources",
    "sinks": "trtapps_register_sinks",
    "trackers": "trtapps_register_trackers",
    "postprocessors": "trtapps_register_postprocessors",
    "backends": "trtapps_register_backends",
}


class InlinePlugin:
    """A plugin object made of ready specs, for tests and notebooks: no module, no entry point.

    Only the registration hooks of the kinds given are implemented, so ``PluginManager.infos`` shows exactly
    what the plugin contributes. Pass it where plugin objects are accepted::

        plugin = InlinePlugin("my_test_sinks", sinks=[ComponentSpec("collect", CollectOptions, factory)])
        pipe = Pipeline.from_dict(data, plugins=[plugin])

    Args:
        name: the plugin name (provenance in registries, errors and ``trtapps plugins``).
        apps, sources, sinks, trackers, postprocessors, backends: the specs to register, per kind.
    """

    def __init__(
        self,
        name: str,
        *,
        apps: Iterable[ComponentSpec[Any]] = (),
        sources: Iterable[ComponentSpec[Any]] = (),
        sinks: Iterable[ComponentSpec[Any]] = (),
        trackers: Iterable[ComponentSpec[Any]] = (),
        postprocessors: Iterable[ComponentSpec[Any]] = (),
        backends: Iterable[ComponentSpec[Any]] = (),
    ) -> None:
        self.__name__ = name
        given = {
            "apps": tuple(apps),
            "sources": tuple(sources),
            "sinks": tuple(sinks),
            "trackers": tuple(trackers),
            "postprocessors": tuple(postprocessors),
            "backends": tuple(backends),
        }
        for kind, specs in given.items():
            if specs:
                setattr(self, _HOOKS[kind], _registration_hook(specs))

    def __repr__(self) -> str:
        return f"InlinePlugin({self.__name__!r})"


def _registration_hook(specs: tuple[ComponentSpec[Any], ...]) -> Callable[[Callable[[Any], None]], None]:
    @hookimpl
    def register_all(register: Callable[[Any], None]) -> None:
        for spec in specs:
            register(spec)

    return register_all
