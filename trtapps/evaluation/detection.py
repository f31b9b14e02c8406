"""Detection accuracy: COCO mAP of an app's pipeline on a COCO-format or YOLO-format labelled set.

Sets:

* **COCO format**: an ``instances*.json`` (``images``, ``annotations`` with ``bbox = [x, y, w, h]``,
  ``categories``) and the image folder (``DIR/images/`` or ``DIR`` itself; ``file_name`` is relative to it).
* **YOLO format** (Ultralytics): ``images/`` and ``labels/`` side by side (one ``class cx cy w h`` line per box,
  normalised; polygon lines become their bounding box), class names from ``data.yaml`` (``names``, ``val``,
  ``path``). It is converted to COCO in memory once the image sizes are known: ``x = (cx − w/2)·W`` …, pixels
  rounded to 3 decimals, ``area = w·h``. A set whose 80 names are the COCO-80 classes gets the standard
  COCO category ids (:data:`COCO80_TO_COCO91`), as ``instances_val2017.json`` has them; other sets use the
  class index as the category id.

The model's classes are matched to the set's categories by name (case-insensitive), else — for a model with
80 classes and a set with COCO ids — through :data:`COCO80_TO_COCO91`, else by index. Scoring is pycocotools'
``COCOeval`` (bbox) with its defaults (IoU 0.50:0.95, 100 detections per image and class); pycocotools'
console output is swallowed. Detections are written like Ultralytics' ``predictions.json``: ``[x, y, w, h]``
rounded to 3 decimals, scores to 5.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtapps.datasets.coco import COCO80, COCO80_TO_COCO91
from trtapps.errors import ConfigError, InputError, UserError, error_line, first_line
from trtapps.evaluation.inference import (
    EvalRun,
    ImageItem,
    check_images_exist,
    evaluate_app,
    image_folder,
    is_int,
    is_number,
    short_repr,
)
from trtapps.ops.boxes import xyxy_to_tlwh
from trtapps.structures import Detections, FrameResult

_COCO_JSON_NAMES = ("instances.json", "annotations.json")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# -- sets ----------------------------------------------------------------------------------------------------------
@dataclass
class DetectionSet:
    """A labelled detection set, ready to be scored with COCOeval.

    Attributes:
        root: the folder the set was loaded from.
        format: ``"coco"`` or ``"yolo"``.
        images: the images (``key`` = COCO image id).
        categories: COCO categories ``{"id", "name"}``.
        gt_path: the COCO json, for COCO-format sets.
        coco: the COCO ground truth (COCO format); YOLO sets build theirs with :meth:`ground_truth`.
        yolo_labels: image id → ``(n, 5)`` float ``class cx cy w h`` (normalised), YOLO format.
    """

    root: Path
    format: str
    images: list[ImageItem]
    categories: list[dict[str, Any]]
    gt_path: Path | None = None
    coco: dict[str, Any] | None = None
    yolo_labels: dict[int, np.ndarray] = field(default_factory=dict)

    def ground_truth(self, sizes: Mapping[Any, tuple[int, int]] | None = None) -> dict[str, Any]:
        """The COCO ground-truth dict (for YOLO sets, converted with the image sizes ``{id: (h, w)}``).

        Raises:
            InputError: a YOLO-set image whose size is unknown (it could not be read).
        """
        if self.coco is not None:
            return self.coco
        sizes = sizes or {}
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        ids = {i: c for i, c in enumerate(self._yolo_category_ids())}
        for item in self.images:
            if item.key not in sizes:
                raise InputError(f"{item.path}: image size unknown (the image could not be read); fix or remove it")
            h, w = sizes[item.key]
            images.append({"id": item.key, "file_name": item.path.name, "width": w, "height": h})
            for cls, cx, cy, bw, bh in self.yolo_labels.get(item.key, np.zeros((0, 5))):
                x, y = round((cx - bw / 2) * w, 3), round((cy - bh / 2) * h, 3)
                ww, hh = round(bw * w, 3), round(bh * h, 3)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": item.key,
                        "category_id": ids[int(cls)],
                        "bbox": [x, y, ww, hh],
                        "area": ww * hh,
                        "iscrowd": 0,
                    }
                )
        return {"images": images, "annotations": annotations, "categories": self.categories}

    def _yolo_category_ids(self) -> list[int]:
        return [int(c["id"]) for c in self.categories]


def load_detection_set(data: Path, gt: Path | None = None) -> DetectionSet:
    """Load a COCO-format or YOLO-format set (see the module docstring for the layouts).

    Args:
        data: the set's folder (or its ``data.yaml``).
        gt: a COCO json; makes the set COCO format with images under ``data/images`` or ``data``.

    Raises:
        InputError: the folder has neither layout, or its files are malformed (one line, with the fix).
    """
    data = Path(data).expanduser()
    if gt is not None:
        return _load_coco(Path(gt).expanduser(), image_folder(data))
    if data.is_file() and data.suffix.lower() in (".yaml", ".yml"):
        return _load_yolo(data.parent, data)
    if not data.is_dir():
        raise InputError(f"--data {data}: no such folder; give the set's folder (COCO json + images, or YOLO)")
    for name in _COCO_JSON_NAMES:
        if (data / name).is_file():
            return _load_coco(data / name, image_folder(data))
    annotations = sorted((data / "annotations").glob("instances*.json")) if (data / "annotations").is_dir() else []
    if len(annotations) == 1:
        return _load_coco(annotations[0], image_folder(data))
    if (data / "data.yaml").is_file() or ((data / "images").is_dir() and (data / "labels").is_dir()):
        return _load_yolo(data, data / "data.yaml" if (data / "data.yaml").is_file() else None)
    raise InputError(
        f"--data {data}: neither a COCO set (instances.json and images/) nor a YOLO set (images/, labels/, "
        "data.yaml); give one, or pass the COCO json with --gt"
    )


def _load_coco(path: Path, image_dir: Path) -> DetectionSet:
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--gt {path}: no such file; give a COCO instances json") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON file ({exc}); give a COCO instances json") from None
    if not isinstance(coco, dict) or not all(k in coco for k in ("images", "annotations", "categories")):
        raise InputError(f"{path}: not a COCO instances json (needs images, annotations and categories)")
    _check_coco(path, coco)
    coco = copy.deepcopy(coco)
    for ann in coco["annotations"]:  # COCOeval needs an area; box files sometimes lack it
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
        ann.setdefault("iscrowd", 0)
    items = []
    for img in coco["images"]:
        size = (int(img["height"]), int(img["width"])) if "height" in img and "width" in img else None
        items.append(ImageItem(img["id"], image_dir / img["file_name"], size))
    check_images_exist(items, f"listed in {path.name}", image_dir)
    categories = [{"id": c["id"], "name": str(c.get("name", c["id"]))} for c in coco["categories"]]
    return DetectionSet(path.parent, "coco", items, categories, gt_path=path, coco=coco)


def _load_yolo(root: Path, yaml_path: Path | None) -> DetectionSet:
    import yaml

    spec: dict[str, Any] = {}
    if yaml_path is not None:
        try:
            spec = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{yaml_path}:{mark.line + 1}:{mark.column + 1}" if mark else str(yaml_path)
            raise InputError(f"{where}: YAML syntax error: {exc.problem or first_line(exc)}") from None
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"{yaml_path}: not a readable YAML file ({error_line(exc)})") from None
        if not isinstance(spec, dict):
            raise InputError(f"{yaml_path}: expected a mapping (val, names, path), got {short_repr(spec)}")
    base = root / str(spec["path"]) if spec.get("path") else root  # an absolute path replaces root
    entries = spec.get("val") or "images"
    paths: list[Path] = []
    for entry in [entries] if isinstance(entries, str) else list(entries):
        p = Path(entry) if Path(entry).is_absolute() else base / entry
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file() and p.suffix == ".txt":
            for line in p.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    q = Path(line.strip())
                    paths.append(q if q.is_absolute() else p.parent / q)
        else:
            raise InputError(f"{yaml_path or root}: val entry {entry!r} is neither an image folder nor a list file")
    if not paths:
        raise InputError(f"{base}: no images found for the YOLO set; check data.yaml's path and val")
    labels_dirs = {d for d in (_labels_root(p) for p in paths) if d is not None}
    for labels_dir in sorted(labels_dirs):
        if not labels_dir.is_dir():
            raise InputError(
                f"{labels_dir}: labels folder missing; a YOLO set needs labels/ beside images/ (one .txt of "
                "'class cx cy w h' lines per image with objects), or pass a COCO json with --gt"
            )
    names = _yolo_names(spec, yaml_path)
    stems = [p.stem for p in paths]
    numeric = all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)
    items, labels = [], {}
    max_class = -1
    for index, path in enumerate(paths):
        key = int(path.stem) if numeric else index + 1
        items.append(ImageItem(key, path))
        rows = _read_yolo_labels(_label_path(path))
        if len(rows):
            labels[key] = rows
            max_class = max(max_class, int(rows[:, 0].max()))
    if names is None:
        names = [str(i) for i in range(max_class + 1)]
    elif max_class >= len(names):
        raise InputError(f"{yaml_path}: labels use class {max_class}, but names lists only {len(names)} classes")
    coco_ids = len(names) == len(COCO80) and [n.lower() for n in names] == list(COCO80)
    ids = list(COCO80_TO_COCO91) if coco_ids else list(range(len(names)))
    categories = [{"id": i, "name": n} for i, n in zip(ids, names)]
    return DetectionSet(root, "yolo", items, categories, yolo_labels=labels)


def _yolo_names(spec: Mapping[str, Any], yaml_path: Path | None) -> list[str] | None:
    names = spec.get("names")
    if isinstance(names, dict):
        try:
            by_id = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            by_id = {}
        if not by_id or min(by_id) < 0:
            raise InputError(f"{yaml_path}: names must map class ids 0, 1, … to names")
        return [by_id.get(i, str(i)) for i in range(max(by_id) + 1)]
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(spec.get("nc"), int):
        return list(COCO80) if spec["nc"] == len(COCO80) else [str(i) for i in range(spec["nc"])]
    return None


def _labels_root(image: Path) -> Path | None:
    """The ``labels`` folder that holds *image*'s label file (:func:`_label_path`): the path up to the last
    ``images`` component, with that component renamed; ``None`` when the path has none (labels beside images)."""
    parts = image.parts
    for i in range(len(parts) - 2, -1, -1):  # a folder, not the file itself
        if parts[i] == "images":
            return Path(*parts[:i], "labels")
    return None


def _label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/``, the suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _read_yolo_labels(path: Path) -> np.ndarray:
    """``(n, 5)`` ``class cx cy w h`` rows of a YOLO label file (none when absent: a background image)."""
    if not path.is_file():
        return np.zeros((0, 5))
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        values = line.split()
        if not values:
            continue
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            raise InputError(f"{path}:{number}: not a YOLO label line (class cx cy w h)") from None
        if len(numbers) == 5:
            rows.append(numbers)
        elif len(numbers) >= 7 and len(numbers) % 2 == 1:  # a polygon: its bounding box
            xs, ys = np.asarray(numbers[1::2]), np.asarray(numbers[2::2])
            x1, x2, y1, y2 = xs.min(), xs.max(), ys.min(), ys.max()
            rows.append([numbers[0], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        else:
            raise InputError(f"{path}:{number}: expected 5 values (class cx cy w h), got {len(numbers)}")
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def _check_coco(path: Path, coco: Mapping[str, Any]) -> None:
    """Check the fields loading and scoring read, so a malformed entry is one line now (naming the entry and the
    field) instead of a pycocotools exception after the whole run.

    Raises:
        InputError: the first malformed image, category or annotation.
    """
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco[key], list):
            raise InputError(f"{path}: '{key}' must be a list, got {short_repr(coco[key])}")
    image_ids: set[Any] = set()
    for index, img in enumerate(coco["images"]):
        where = f"{path}: images[{index}]"
        if not isinstance(img, dict):
            raise InputError(f"{where}: expected an object with id and file_name, got {short_repr(img)}")
        for key in ("id", "file_name"):
            if key not in img:
                raise InputError(f"{where}: missing '{key}'; every image needs id and file_name")
        if not _is_id(img["id"]):
            raise InputError(f"{where}: 'id' must be an integer, got {short_repr(img['id'])}")
        where += f" (id {img['id']!r})"
        if not isinstance(img["file_name"], str) or not img["file_name"]:
            raise InputError(f"{where}: 'file_name' must be a path, got {short_repr(img['file_name'])}")
        for key in ("height", "width"):
            if key in img and not (is_number(img[key]) and img[key] > 0):
                raise InputError(f"{where}: '{key}' must be a positive number, got {short_repr(img[key])}")
        image_ids.add(img["id"])
    category_ids: set[int] = set()
    for index, cat in enumerate(coco["categories"]):
        if not isinstance(cat, dict) or not is_int(cat.get("id")):
            raise InputError(
                f"{path}: categories[{index}]: expected an object with an integer 'id', got {short_repr(cat)}"
            )
        category_ids.add(cat["id"])
    for index, ann in enumerate(coco["annotations"]):
        where = f"{path}: annotations[{index}]"
        if not isinstance(ann, dict):
            raise InputError(f"{where}: expected an object with image_id, category_id and bbox, got {short_repr(ann)}")
        if "id" in ann:
            where += f" (id {short_repr(ann['id'])})"
        for key in ("image_id", "category_id", "bbox"):
            if key not in ann:
                raise InputError(f"{where}: missing '{key}'; every annotation needs image_id, category_id and bbox")
        if not _is_id(ann["image_id"]) or ann["image_id"] not in image_ids:
            raise InputError(f"{where}: 'image_id' {short_repr(ann['image_id'])} is not the id of an entry of images")
        if not _is_id(ann["category_id"]) or ann["category_id"] not in category_ids:
            raise InputError(
                f"{where}: 'category_id' {short_repr(ann['category_id'])} is not the id of an entry of categories"
            )
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
            raise InputError(f"{where}: 'bbox' must be 4 numbers [x, y, w, h], got {short_repr(bbox)}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise InputError(f"{where}: 'bbox' {bbox} has a negative width or height; it must be [x, y, w, h]")
        if "area" in ann and not is_number(ann["area"]):
            raise InputError(f"{where}: 'area' must be a number, got {short_repr(ann['area'])}")
        if "iscrowd" in ann and ann["iscrowd"] not in (0, 1):
            raise InputError(f"{where}: 'iscrowd' must be 0 or 1, got {short_repr(ann['iscrowd'])}")


def _is_id(value: Any) -> bool:
    """A COCO id: an integer (a string is accepted too, as pycocotools does)."""
    return is_int(value) or isinstance(value, str)


# -- class mapping -------------------------------------------------------------------------------------------------
def category_map(labels: Sequence[str], categories: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, str]:
    """Model class index → category id (``-1``: the set has no such category), and how it was matched.

    By name when every category of the set is a model class (case-insensitive); else COCO-80 → COCO ids for an
    80-class model on a set with COCO ids; else by index (ids ``0…C−1``, or ``1…C``).

    Raises:
        ConfigError: no rule fits (the model's classes cannot be related to the set's categories).
    """
    ids = [int(c["id"]) for c in categories]
    by_name = {str(c["name"]).strip().lower(): int(c["id"]) for c in categories}
    lowered = [str(label).strip().lower() for label in labels]
    if by_name and set(by_name) <= set(lowered):
        return np.asarray([by_name.get(n, -1) for n in lowered], dtype=np.int64), "by name"
    if len(labels) == len(COCO80) and set(ids) <= set(COCO80_TO_COCO91):
        return np.asarray(COCO80_TO_COCO91, dtype=np.int64), "COCO-80 → COCO-91 ids"
    n = len(labels)
    if set(ids) <= set(range(n)):
        return np.arange(n, dtype=np.int64), "by index"
    if set(ids) <= set(range(1, n + 1)):
        return np.arange(1, n + 1, dtype=np.int64), "by index + 1"
    raise ConfigError(
        f"the model's {n} classes cannot be matched to the set's {len(ids)} categories (names differ and the ids "
        f"are not 0…{n - 1}); give the model class names (app option names) that match the set's"
    )


def to_coco_results(detections: Mapping[Any, Detections], class_to_category: np.ndarray) -> list[dict[str, Any]]:
    """COCO result records (``image_id``, ``category_id``, ``bbox`` xywh rounded to 3 decimals, ``score`` to 5).

    Detections of classes without a category (``-1``) are left out.
    """
    results: list[dict[str, Any]] = []
    for image_id, dets in detections.items():
        if len(dets) == 0:
            continue
        boxes = np.asarray(dets.boxes, dtype=np.float64)
        xywh = xyxy_to_tlwh(boxes).round(3)
        cats = class_to_category[np.asarray(dets.class_ids)]
        scores = np.asarray(dets.scores, dtype=np.float64).round(5)
        for box, cat, score in zip(xywh.tolist(), cats.tolist(), scores.tolist()):
            if cat >= 0:
                results.append({"image_id": image_id, "category_id": cat, "bbox": box, "score": score})
    return results


# -- scoring -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassAP:
    """Per-class result: AP at IoU 0.50:0.95 and 0.50 (``nan`` when the class has no ground truth)."""

    category_id: int
    name: str
    ap: float
    ap50: float
    instances: int


@dataclass
class CocoScore:
    """What COCOeval gives: the 12 summary numbers and the per-class AP."""

    map50_95: float
    map50: float
    stats: list[float]
    per_class: list[ClassAP]


def coco_score(ground_truth: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> CocoScore:
    """Score COCO result records against a COCO ground-truth dict with pycocotools' ``COCOeval`` (bbox).

    Every image of the ground truth counts (images without detections included). pycocotools' printing is
    swallowed here.

    Raises:
        UserError: pycocotools is not installed (``pip install 'trtapps[eval]'``).
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise UserError("detection mAP needs pycocotools: pip install 'trtapps[eval]'") from None
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        gt = COCO()
        gt.dataset = copy.deepcopy(dict(ground_truth))
        gt.createIndex()
        if results:
            dt = gt.loadRes([dict(r, bbox=list(r["bbox"])) for r in results])
        else:  # loadRes cannot take an empty list
            dt = COCO()
            dt.dataset = {
                "images": list(gt.dataset["images"]),
                "categories": gt.dataset["categories"],
                "annotations": [],
            }
            dt.createIndex()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]; area "all" = 0, maxDets 100 = last
    names = {c["id"]: str(c.get("name", c["id"])) for c in ground_truth["categories"]}
    counts: dict[int, int] = {}
    for ann in ground_truth["annotations"]:
        if not ann.get("iscrowd", 0):
            counts[ann["category_id"]] = counts.get(ann["category_id"], 0) + 1
    per_class = []
    for k, cat in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        ap = float(p[p > -1].mean()) if (p > -1).any() else float("nan")
        ap50 = float(p50[p50 > -1].mean()) if (p50 > -1).any() else float("nan")
        per_class.append(ClassAP(int(cat), names.get(cat, str(cat)), ap, ap50, counts.get(cat, 0)))
    stats = [float(s) for s in evaluator.stats]
    return CocoScore(stats[0], stats[1], stats, per_class)


# -- the whole evaluation ------------------------------------------------------------------------------------------
@dataclass
class DetectionResult:
    """The result of :func:`evaluate_detection`."""

    score: CocoScore
    run: EvalRun
    data: str
    gt: str | None
    images: int
    detections: int
    class_matching: str

    @property
    def map50_95(self) -> float:
        return self.score.map50_95

    @property
    def map50(self) -> float:
        return self.score.map50

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return self.run.report(
            "detect",
            {"mAP50-95": round(self.score.map50_95, 6), "mAP50": round(self.score.map50, 6)},
            images=self.images,
            data=self.data,
            gt=self.gt,
            extra={
                "detections": self.detections,
                "class_matching": self.class_matching,
                "coco_stats": [round(s, 6) for s in self.score.stats],
                "per_class": {
                    c.name: {
                        "category_id": c.category_id,
                        "AP50-95": _num(c.ap),
                        "AP50": _num(c.ap50),
                        "instances": c.instances,
                    }
                    for c in self.score.per_class
                },
            },
        )


def evaluate_detection(
    data: str | Path,
    *,
    app: str,
    model: str,
    gt: str | Path | None = None,
    backend: str = "auto",
    precision: str = "fp32",
    batch: int = 8,
    conf: float | None = None,
    iou: float | None = None,
    app_options: Mapping[str, Any] | None = None,
    on_image: Callable[[FrameResult], None] | None = None,
    on_start: Callable[[Any, Any], None] | None = None,
) -> DetectionResult:
    """COCO mAP of an app's pipeline on a labelled set, with the app family's evaluation preset.

    Args:
        data: the set's folder (COCO json + images, or YOLO layout), or a ``data.yaml``.
        app: the app type (``yolo`` …); model: its model path or zoo name.
        gt: a COCO json replacing the set's own ground truth.
        backend, precision, batch: how to run (see ``trtapps eval detect --help``).
        conf, iou: replace the preset's thresholds.
        app_options: further app options (they win over the preset, like ``conf``/``iou``).
        on_image: called with every frame's result (progress).
        on_start: called with ``(pipeline, preset)`` before the first image.

    Raises:
        UserError: bad set, model, options or backend (one line each).
    """
    dataset = load_detection_set(Path(data), Path(gt) if gt is not None else None)
    run = evaluate_app(
        "detect",
        dataset.images,
        app=app,
        model=model,
        backend=backend,
        precision=precision,
        batch=batch,
        conf=conf,
        iou=iou,
        app_options=app_options,
        on_image=on_image,
        on_start=on_start,
    )
    ground_truth = dataset.ground_truth(run.sizes)
    mapping, how = category_map(run.labels, ground_truth["categories"])
    results = to_coco_results(run.detections, mapping)
    score = coco_score(ground_truth, results)
    return DetectionResult(
        score=score,
        run=run,
        data=str(data),
        gt=str(dataset.gt_path) if dataset.gt_path is not None else None,
        images=len(dataset.images),
        detections=len(results),
        class_matching=how,
    )


def _num(value: float) -> float | None:
    return None if np.isnan(value) else round(value, 6)
