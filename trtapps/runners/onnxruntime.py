"""ONNX Runtime backend: the embedded default that runs every pipeline on a machine without a GPU.

Registered as backend ``onnxruntime`` (CPU execution provider). Inputs and outputs are host NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from trtapps.errors import ModelError
from trtapps.hookspecs import hookimpl
from trtapps.paths import unreadable
from trtapps.registry import BackendOptions, ComponentSpec, Register
from trtapps.runners.base import Runner, TensorInfo
from trtapps.stages import Residency
from trtapps.structures import Array

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class OnnxRuntimeOptions(BackendOptions):
    """ONNX Runtime on the CPU."""

    type: str = "onnxruntime"
    threads: int = Field(0, ge=0, description="Intra-op threads (0: ONNX Runtime's default, one per core).")


def _dim(d: Any) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


#: session option that lets idle intra-op threads spin (ONNX Runtime's default) or makes them block
ALLOW_SPINNING = "session.intra_op.allow_spinning"


def load_session(model_path: Path, providers: list[Any], threads: int = 0, spinning: bool = True) -> Any:
    """An ``onnxruntime.InferenceSession``; unreadable or invalid files raise :class:`ModelError`.

    *threads* sets the intra-op pool (0: ONNX Runtime's default, one per physical core); with *spinning* false its
    idle threads block instead of busy-waiting for the next run (ONNX Runtime's default is to spin).
    """
    import onnxruntime as ort

    if why := unreadable(model_path):
        raise ModelError(f"{model_path}: model file {why}; check the path (app.model) or use a model-zoo name")
    if model_path.stat().st_size == 0:
        raise ModelError(f"{model_path}: model file is empty; download or export it again")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    if not spinning:
        so.add_session_config_entry(ALLOW_SPINNING, "0")
    try:
        return ort.InferenceSession(str(model_path), sess_options=so, providers=providers)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{model_path}: not a loadable ONNX model ({first}); export it again or check that the file is complete"
        ) from exc


class OnnxRuntimeRunner(Runner):
    """A model on ONNX Runtime's CPU execution provider."""

    backend = "onnxruntime"
    device = "cpu"
    residency = Residency.HOST

    def __init__(self, model_path: str | Path, threads: int = 0) -> None:
        self.model_path = Path(model_path)
        self.session = load_session(self.model_path, ["CPUExecutionProvider"], threads)
        self.inputs, self.outputs, self.metadata = describe_session(self.session)

    def _infer(self, feeds: Mapping[str, Array], stream: Any) -> dict[str, Array]:
        names = [t.name for t in self.outputs]
        results = self.session.run(names, {k: np.ascontiguousarray(v) for k, v in feeds.items()})
        return dict(zip(names, results))

    def close(self) -> None:
        self.session = None


def describe_session(session: Any) -> tuple[list[TensorInfo], list[TensorInfo], dict[str, str]]:
    """Inputs, outputs and metadata of an ONNX Runtime session."""

    def info(arg: Any) -> TensorInfo:
        dtype = _ORT_DTYPES.get(arg.type)
        if dtype is None:
            raise ModelError(f"tensor {arg.name!r} has unsupported type {arg.type}")
        return TensorInfo(arg.name, tuple(_dim(d) for d in arg.shape), np.dtype(dtype))

    meta = session.get_modelmeta()
    return (
        [info(a) for a in session.get_inputs()],
        [info(a) for a in session.get_outputs()],
        dict(meta.custom_metadata_map or {}),
    )


def _available() -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "the onnxruntime package is not installed (pip install onnxruntime)"
    return None


def _factory(options: OnnxRuntimeOptions, context: Any, model_path: Path) -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(model_path, threads=options.threads)


@hookimpl
def trtapps_register_backends(register: Register) -> None:
    register(
        ComponentSpec(
            name="onnxruntime",
            options=OnnxRuntimeOptions,
            factory=_factory,
            summary="ONNX Runtime, CPU execution provider (runs everywhere)",
            available=_available,
            priority=0,
        )
    )
