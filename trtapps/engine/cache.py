"""The TensorRT engine cache: keys, metadata and atomic files.

An engine is only valid for the ONNX file it was built from, the build options, the TensorRT version and the GPU
(name and compute capability). The cache key is the SHA-256 of all of them, so any change is a cache miss and a
new build::

    <cache>/<key>.engine     the serialized engine
    <cache>/<key>.json       EngineMetadata: build options, versions, GPU, tensor names/shapes/dtypes,
                             the ONNX metadata_props (class names survive the conversion), engine checksum
    <cache>/timing/<TensorRT version>-<GPU>-sm<cc>.cache    the builder's timing cache, shared by builds

The cache lives in ``TRTAPPS_CACHE``/engines (default ``~/.cache/trtapps/engines``). Files are written to a
temporary name in the same folder and renamed, so a reader never sees half a file; the JSON is written last, so
an entry without its JSON is incomplete and ignored. Two processes building the same engine at once both build
it and the last rename wins (same content up to TensorRT's tactic choices). Nothing here imports TensorRT.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("trtapps.engine")

#: bumped when the engine file layout or the meaning of a build option changes: old entries become misses
CACHE_FORMAT = 1
ENGINE_SUFFIX = ".engine"
META_SUFFIX = ".json"


def default_cache_dir() -> Path:
    """``TRTAPPS_CACHE``/engines, default ``~/.cache/trtapps/engines`` (models go to ``…/models`` beside it)."""
    env = os.environ.get("TRTAPPS_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "trtapps") / "engines"


@dataclass(frozen=True)
class BuildOptions:
    """What an engine is built with (every field is part of the cache key).

    Attributes:
        max_batch: the optimization profile's largest batch (and its optimum); the smallest is 1.
        input_size: ``(height, width)`` for models whose spatial input dimensions are dynamic.
        workspace_mb: the builder's workspace memory pool limit (MiB).
        fp16: ask for fp16 kernels on an fp32 graph. Only TensorRT 10 can (``BuilderFlag.FP16`` on a weakly
            typed network); TensorRT 11 takes precision from the ONNX graph, so convert the model to fp16.
        tf32: allow TF32 math for fp32 convolutions and matrix multiplies (TensorRT's own default; faster on
            Ampere and newer, about 1e-3 relative error); off keeps fp32 results close to the CPU backend.
        optimization_level: the builder optimization level (0–5, TensorRT's default 3 when ``None``).
    """

    max_batch: int = 1
    input_size: tuple[int, int] | None = None
    workspace_mb: int = 4096
    fp16: bool = False
    tf32: bool = True
    optimization_level: int | None = None

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {self.max_batch}")
        if self.workspace_mb < 1:
            raise ValueError(f"workspace_mb must be at least 1, got {self.workspace_mb}")
        if self.input_size is not None:
            if len(self.input_size) != 2 or min(self.input_size) < 1:
                raise ValueError(f"input_size must be (height, width) of positive ints, got {self.input_size}")
            object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))
        if self.optimization_level is not None and not 0 <= self.optimization_level <= 5:
            raise ValueError(f"optimization_level must be 0..5, got {self.optimization_level}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready and canonical (tuples as lists), as stored in the metadata and hashed into the key."""
        data = dataclasses.asdict(self)
        if data["input_size"] is not None:
            data["input_size"] = list(data["input_size"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildOptions:
        values = dict(data)
        if values.get("input_size") is not None:
            values["input_size"] = tuple(values["input_size"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def engine_key(
    onnx_sha256: str,
    options: BuildOptions,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
) -> str:
    """The cache key: SHA-256 (hex) of the ONNX digest, build options, TensorRT version and GPU."""
    payload = {
        "format": CACHE_FORMAT,
        "onnx_sha256": onnx_sha256,
        "build_options": options.as_dict(),
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
    }
    return sha256_bytes(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())


@dataclass
class TensorMeta:
    """One engine input or output: ``shape`` has ``-1`` for dynamic dimensions; ``profile`` is
    ``[min, opt, max]`` shapes for inputs with dynamic dimensions."""

    name: str
    shape: list[int]
    dtype: str
    profile: list[list[int]] | None = None


@dataclass
class EngineMetadata:
    """What ``<key>.json`` holds next to ``<key>.engine``."""

    key: str
    model: str
    onnx_sha256: str
    build_options: dict[str, Any]
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    engine_sha256: str
    engine_bytes: int
    inputs: list[TensorMeta] = field(default_factory=list)
    outputs: list[TensorMeta] = field(default_factory=list)
    onnx_metadata: dict[str, str] = field(default_factory=dict)
    precision: str = "graph"
    build_seconds: float = 0.0
    created: str = ""
    format: int = CACHE_FORMAT

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EngineMetadata:
        """Parse ``<key>.json``.

        Raises:
            ValueError: not JSON, or a field is missing or of the wrong type.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"missing fields {missing}")
        values = {k: v for k, v in data.items() if k in known}
        try:
            values["inputs"] = [TensorMeta(**t) for t in values.get("inputs", [])]
            values["outputs"] = [TensorMeta(**t) for t in values.get("outputs", [])]
        except TypeError as exc:
            raise ValueError(f"bad tensor entry ({exc})") from None
        meta = cls(**values)
        for name, kind in (("key", str), ("onnx_sha256", str), ("tensorrt_version", str), ("gpu_name", str),
                           ("compute_capability", str), ("engine_sha256", str), ("engine_bytes", int),
                           ("build_options", dict), ("onnx_metadata", dict)):
            if not isinstance(getattr(meta, name), kind):
                raise ValueError(f"field {name!r} must be {kind.__name__}")
        meta.onnx_metadata = {str(k): str(v) for k, v in meta.onnx_metadata.items()}
        return meta


def atomic_write(path: Path, data: bytes) -> None:
    """Write *data* to *path* through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "unknown"


@dataclass
class CacheHit:
    """A usable cache entry."""

    engine: bytes
    meta: EngineMetadata


class EngineCache:
    """Engines on disk under *root* (default :func:`default_cache_dir`)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def engine_path(self, key: str) -> Path:
        return self.root / f"{key}{ENGINE_SUFFIX}"

    def meta_path(self, key: str) -> Path:
        return self.root / f"{key}{META_SUFFIX}"

    def timing_cache_path(self, tensorrt_version: str, gpu_name: str, compute_capability: str) -> Path:
        """Where the builder's timing cache for this TensorRT version and GPU lives."""
        sm = compute_capability.replace(".", "")
        return self.root / "timing" / f"{_slug(tensorrt_version)}-{_slug(gpu_name)}-sm{sm}.cache"

    def lookup(
        self, key: str, *, tensorrt_version: str, gpu_name: str, compute_capability: str
    ) -> tuple[CacheHit | None, str]:
        """The entry for *key* if it is complete and was built for this TensorRT and GPU.

        Returns:
            ``(hit, reason)``: ``hit`` is ``None`` on a miss and ``reason`` says why (``"not cached"``,
            ``"built by TensorRT 10.13.0, this is 11.4.0"``, ``"engine file is truncated"``…).
        """
        meta_path, engine_path = self.meta_path(key), self.engine_path(key)
        if not meta_path.is_file():
            return None, "not cached"
        try:
            meta = EngineMetadata.from_json(meta_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return None, f"unreadable metadata {meta_path.name} ({exc})"
        if meta.format != CACHE_FORMAT:
            return None, f"cache format {meta.format}, this trtapps writes {CACHE_FORMAT}"
        if meta.tensorrt_version != tensorrt_version:
            return None, f"built by TensorRT {meta.tensorrt_version}, this is {tensorrt_version}"
        if (meta.gpu_name, meta.compute_capability) != (gpu_name, compute_capability):
            return None, (
                f"built for {meta.gpu_name} (sm {meta.compute_capability}), this is {gpu_name} "
                f"(sm {compute_capability})"
            )
        try:
            engine = engine_path.read_bytes()
        except OSError:
            return None, f"engine file {engine_path.name} is missing"
        if len(engine) != meta.engine_bytes or sha256_bytes(engine) != meta.engine_sha256:
            return None, f"engine file {engine_path.name} does not match its checksum (truncated or replaced)"
        return CacheHit(engine, meta), ""

    def store(self, engine: bytes, meta: EngineMetadata) -> Path:
        """Write ``<key>.engine`` then ``<key>.json`` atomically; returns the engine path."""
        meta.engine_bytes = len(engine)
        meta.engine_sha256 = sha256_bytes(engine)
        if not meta.created:
            meta.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        engine_path = self.engine_path(meta.key)
        atomic_write(engine_path, engine)
        atomic_write(self.meta_path(meta.key), meta.to_json().encode())
        return engine_path

    def remove(self, key: str) -> None:
        """Delete an entry (metadata first, so a half-removed entry is never taken for a complete one)."""
        self.meta_path(key).unlink(missing_ok=True)
        self.engine_path(key).unlink(missing_ok=True)

    def entries(self) -> list[EngineMetadata]:
        """Every readable entry's metadata (unreadable ones are skipped)."""
        found: list[EngineMetadata] = []
        if not self.root.is_dir():
            return found
        for path in sorted(self.root.glob(f"*{META_SUFFIX}")):
            try:
                found.append(EngineMetadata.from_json(path.read_text()))
            except (OSError, UnicodeDecodeError, ValueError):
                continue
        return found

    def stale(self, onnx_sha256: str, options: BuildOptions, key: str) -> list[EngineMetadata]:
        """Entries for the same ONNX and options under another key (another TensorRT version or GPU)."""
        wanted = options.as_dict()
        return [
            m for m in self.entries()
            if m.onnx_sha256 == onnx_sha256 and m.build_options == wanted and m.key != key
        ]
