"""The runner interface shared by every inference backend.

A runner owns one loaded model. It describes its named inputs and outputs (shapes with ``None`` for dynamic
dimensions, NumPy dtypes), says where it wants its arrays (:attr:`Runner.residency`: host NumPy or device
CuPy), and runs a batch with :meth:`Runner.infer`. Feeds are checked against the model before the backend
sees them, so a wrong shape or dtype fails with a sentence, not a backend stack trace (Polygraphy's
validate-then-``_impl`` pattern). Runners are context managers; :meth:`close` releases the model.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from trtapps.errors import BackendUnavailableError, ConfigError
from trtapps.stages import Residency
from trtapps.structures import Array

if TYPE_CHECKING:
    from trtapps.registry import ComponentSpec, Registry

R = TypeVar("R", bound="Runner")


@dataclass(frozen=True)
class TensorInfo:
    """A named model input or output: ``shape`` has ``None`` where the dimension is dynamic."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype[Any]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.dtype} [{dims}]"


class Runner(ABC):
    """One loaded model on one backend.

    Attributes:
        backend: the backend name (``onnxruntime``, ``onnxruntime_cuda``, ``tensorrt``).
        device: ``"cpu"`` or ``"cuda:N"``.
        residency: where :meth:`infer` takes and returns arrays.
        model_path: the file the model came from.
        metadata: string metadata stored with the model (ONNX ``metadata_props``, engine build info).
    """

    backend: str = ""
    device: str = "cpu"
    residency: Residency = Residency.HOST
    model_path: Path
    metadata: dict[str, str]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    @property
    def max_batch(self) -> int | None:
        """Largest batch the model accepts: ``None`` when the batch dimension is dynamic and unbounded."""
        return self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else None

    def input(self, name: str | None = None) -> TensorInfo:
        """The input called *name* (default: the first)."""
        if name is None:
            return self.inputs[0]
        for t in self.inputs:
            if t.name == name:
                return t
        raise KeyError(name)

    def infer(self, feeds: Mapping[str, Array], stream: Any = None) -> dict[str, Array]:
        """Run one batch: feeds by input name (batch-first) → outputs by output name.

        Args:
            feeds: every model input; NumPy for host runners, CuPy for device runners.
            stream: the CUDA stream to enqueue on (device runners); ignored on the CPU.
        """
        self._check_feeds(feeds)
        return self._infer(feeds, stream)

    @abstractmethod
    def _infer(self, feeds: Mapping[str, Array], stream: Any) -> dict[str, Array]: ...

    def close(self) -> None:  # noqa: B027 - optional
        """Release the model and its buffers."""

    def __enter__(self: R) -> R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_feeds(self, feeds: Mapping[str, Array]) -> None:
        names = {t.name for t in self.inputs}
        missing = names - set(feeds)
        extra = set(feeds) - names
        if missing or extra:
            raise ValueError(
                f"{self.model_path.name}: feeds {sorted(feeds)} do not match the model inputs {sorted(names)}"
            )
        batch = None
        for info in self.inputs:
            array = feeds[info.name]
            if array.dtype != info.dtype:
                raise ValueError(f"{self.model_path.name}: input {info.name!r} must be {info.dtype}, got {array.dtype}")
            if array.ndim != len(info.shape):
                raise ValueError(
                    f"{self.model_path.name}: input {info.name!r} must have rank {len(info.shape)} "
                    f"({info.describe()}), got shape {tuple(array.shape)}"
                )
            for axis, (want, got) in enumerate(zip(info.shape, array.shape)):
                if want is not None and want != got:
                    what = "batch size" if axis == 0 else f"dimension {axis}"
                    raise ValueError(
                        f"{self.model_path.name}: input {info.name!r} has a fixed {what} of {want} "
                        f"({info.describe()}), got shape {tuple(array.shape)}"
                    )
            if batch is not None and array.shape[0] != batch:
                raise ValueError(f"{self.model_path.name}: inputs disagree on the batch size")
            batch = array.shape[0]


def normalize_backend_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def select_backend(name: str, registry: Registry) -> ComponentSpec[Any]:
    """The backend spec for *name*; ``auto`` takes the usable backend of highest priority.

    Raises:
        BackendUnavailableError: the named backend cannot run here (the message says why).
        ConfigError: no backend of that name is installed.
    """
    name = normalize_backend_name(os.environ.get("TRTAPPS_BACKEND", name) if name == "auto" else name)
    if name == "auto":
        reasons = []
        for spec in sorted(registry, key=lambda s: -s.priority):
            reason = spec.available() if spec.available else None
            if reason is None:
                return spec
            reasons.append(f"{spec.name}: {reason}")
        raise BackendUnavailableError("no inference backend can run here: " + "; ".join(reasons))
    if name not in registry:
        raise ConfigError(f"backend: {registry.unknown_message(name)}")
    spec = registry.get(name)
    reason = spec.available() if spec.available else None
    if reason is not None:
        raise BackendUnavailableError(f"backend {name!r} cannot run here: {reason}")
    return spec
