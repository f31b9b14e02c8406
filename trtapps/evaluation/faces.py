"""Face detection accuracy: the WIDER FACE protocol (AP at IoU 0.5, easy / medium / hard).

A vectorised NumPy re-implementation of the official evaluation (``widerface_evaluate/evaluation.py`` of the
WIDER FACE toolkit, as shipped with biubug6/Pytorch_Retinaface), with the same numbers:

* detections are what ``test_widerface.py`` writes: per image, in the app's output order (best first), boxes
  as ``int``-truncated ``x, y, w, h`` (``w = int(x2) − int(x1)``) and the score;
* :func:`norm_score`: scores min-max normalised over the **whole set** (min starts at 1, max at 0);
* :func:`image_eval`: every detection, in order, is matched to the ground-truth face it overlaps most
  (IoU with ``+1`` pixel areas, boxes ``x2 = x + w``); at IoU ≥ 0.5 a match to a face that does not count in
  the setting marks the detection as not a proposal (neither TP nor FP), a match to a counted face recalls it
  (several detections may match one face: only the recall counts once);
* :func:`img_pr_info`: for 1000 thresholds ``1 − (t+1)/1000`` the proposals and recalled faces among the
  detections up to the last one scoring ≥ the threshold;
* :func:`dataset_pr_info`: summed over images, precision = recalled / proposals, recall = recalled / counted
  faces (counted faces of every image, with or without detections);
* :func:`voc_ap`: the VOC area under the precision envelope.

Ground truth: ``wider_gt.json`` (``images.<event/name.jpg>`` with ``boxes`` ``[x, y, w, h]`` and the 0-based
``easy``/``medium``/``hard`` selections of the official ``wider_*_val.mat``), or the official
``ground_truth/`` folder itself (``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``, read with
SciPy).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtapps.errors import InputError
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
from trtapps.ops.boxes import tlwh_to_xyxy, xyxy_to_tlwh
from trtapps.structures import Detections, FrameResult

SETTINGS: tuple[str, ...] = ("easy", "medium", "hard")
THRESH_NUM = 1000
IOU_THRESH = 0.5


# -- ground truth --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceImage:
    """Ground truth of one image: ``boxes`` ``(n, 4)`` float ``x, y, w, h``; per setting the 0-based indices of the
    faces that count there (the others are ignored)."""

    name: str
    boxes: np.ndarray
    selections: Mapping[str, np.ndarray]
    size: tuple[int, int] | None = None


def load_wider_gt(path: Path) -> list[FaceImage]:
    """Read ``wider_gt.json``, or the official ``ground_truth`` folder of ``.mat`` files.

    Raises:
        InputError: a missing or malformed file (one line, with the fix).
    """
    path = Path(path)
    if path.is_dir():
        return _load_mat_folder(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        images = doc["images"]
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; give wider_gt.json or the official ground_truth folder") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a WIDER ground-truth json with 'images' ({exc})") from None
    if not isinstance(images, dict):
        raise InputError(f"{path}: 'images' must map each image name (event/name.jpg) to its boxes and selections")
    return [_face_image(path, name, entry) for name, entry in images.items()]


def _face_image(path: Path, name: str, entry: Any) -> FaceImage:
    """One image of ``wider_gt.json``, checked field by field.

    Raises:
        InputError: a missing or malformed field (one line naming the file, the image and the field).
    """
    where = f"{path}: images[{name!r}]"
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object with boxes, easy, medium and hard, got {short_repr(entry)}")
    for key in ("boxes", *SETTINGS):
        if key not in entry:
            raise InputError(f"{where}: missing '{key}'; every image needs boxes, easy, medium and hard")
    raw = entry["boxes"]
    if not (isinstance(raw, list) and all(isinstance(b, list) and len(b) == 4 and all(map(is_number, b)) for b in raw)):
        raise InputError(f"{where}: 'boxes' must be a list of [x, y, w, h] (4 numbers each), got {short_repr(raw)}")
    boxes = np.asarray(raw, dtype=np.float64).reshape(-1, 4)
    selections = {}
    for setting in SETTINGS:
        indices = entry[setting]
        if not (isinstance(indices, list) and all(is_int(i) for i in indices)):
            raise InputError(
                f"{where}: '{setting}' must be a list of 0-based face indices (integers), got {short_repr(indices)}"
            )
        bad = [i for i in indices if not 0 <= i < len(boxes)]
        if bad:
            raise InputError(
                f"{where}: '{setting}' index {bad[0]} is out of range: the image has {len(boxes)} boxes "
                "(indices are 0-based)"
            )
        selections[setting] = np.asarray(indices, dtype=np.int64)
    size = None
    if "height" in entry and "width" in entry:
        for key in ("height", "width"):
            if not (is_int(entry[key]) and entry[key] > 0):
                raise InputError(f"{where}: '{key}' must be a positive integer, got {short_repr(entry[key])}")
        size = (int(entry["height"]), int(entry["width"]))
    return FaceImage(name, boxes, selections, size)



def _load_mat_folder(folder: Path) -> list[FaceImage]:
    """The official toolkit's ``wider_face_val.mat`` + ``wider_{easy,medium,hard}_val.mat`` (1-based indices)."""
    from scipy.io import loadmat

    files = {"all": folder / "wider_face_val.mat", **{s: folder / f"wider_{s}_val.mat" for s in SETTINGS}}
    for f in files.values():
        if not f.is_file():
            raise InputError(f"{f}: missing; the ground_truth folder needs wider_face_val.mat and wider_*_val.mat")
    gt = loadmat(str(files["all"]))
    lists = {s: loadmat(str(files[s]))["gt_list"] for s in SETTINGS}
    out = []
    for i, event in enumerate(gt["event_list"]):
        event_name = str(event[0][0])
        for j, file in enumerate(gt["file_list"][i][0]):
            boxes = np.asarray(gt["face_bbx_list"][i][0][j][0], dtype=np.float64).reshape(-1, 4)
            selections = {s: np.asarray(lists[s][i][0][j][0], dtype=np.int64).reshape(-1) - 1 for s in SETTINGS}
            out.append(FaceImage(f"{event_name}/{file[0][0]}.jpg", boxes, selections))
    return out


# -- the official evaluation, vectorised ---------------------------------------------------------------------------
def wider_predictions(dets: Detections) -> np.ndarray:
    """``(n, 5)`` float64 ``x, y, w, h, score`` as ``test_widerface.py`` writes them (int-truncated box)."""
    boxes = np.trunc(np.asarray(dets.boxes, dtype=np.float64))
    out = np.empty((len(dets), 5), dtype=np.float64)
    out[:, :4] = xyxy_to_tlwh(boxes)
    out[:, 4] = np.asarray(dets.scores, dtype=np.float64)
    return out


def norm_score(preds: Mapping[Any, np.ndarray]) -> dict[Any, np.ndarray]:
    """Min-max normalise column 4 over every image (official ``norm_score``; min starts at 1, max at 0).

    Returns new arrays; images without detections are kept as they are.
    """
    scores = [p[:, 4] for p in preds.values() if len(p)]
    max_score = max([0.0, *(float(s.max()) for s in scores)])
    min_score = min([1.0, *(float(s.min()) for s in scores)])
    diff = max_score - min_score
    out = {}
    for key, p in preds.items():
        q = np.array(p, dtype=np.float64, copy=True)
        if len(q):
            q[:, 4] = (q[:, 4] - min_score) / diff
        out[key] = q
    return out


def bbox_overlaps(boxes: np.ndarray, query_boxes: np.ndarray) -> np.ndarray:
    """``(N, K)`` IoU of xyxy boxes with ``+1`` pixel areas (the toolkit's Cython ``bbox_overlaps``)."""
    b = np.asarray(boxes, dtype=np.float64)[:, None, :]
    q = np.asarray(query_boxes, dtype=np.float64)[None, :, :]
    iw = np.minimum(b[..., 2], q[..., 2]) - np.maximum(b[..., 0], q[..., 0]) + 1
    ih = np.minimum(b[..., 3], q[..., 3]) - np.maximum(b[..., 1], q[..., 1]) + 1
    hit = (iw > 0) & (ih > 0)
    inter = np.where(hit, iw * ih, 0.0)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    area_q = (q[..., 2] - q[..., 0] + 1) * (q[..., 3] - q[..., 1] + 1)
    union = area_b + area_q - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hit, inter / np.where(hit, union, 1.0), 0.0)


def image_eval(
    pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray, iou_thresh: float = IOU_THRESH
) -> tuple[np.ndarray, np.ndarray]:
    """One image: faces recalled after each detection, and which detections are proposals.

    Args:
        pred: ``(P, 5)`` ``x, y, w, h, score`` in the order written (best first).
        gt: ``(G, 4)`` ``x, y, w, h``.
        ignore: ``(G,)`` 1 where the face counts in the setting, 0 where it is ignored (the official naming).
        iou_thresh: the match threshold (``>=``).

    Returns:
        ``(pred_recall, proposal_list)``: ``(P,)`` count of counted faces matched by detections ``0…h``;
        ``(P,)`` 1 for a proposal, −1 for a detection matched to an ignored face.
    """
    p = tlwh_to_xyxy(np.asarray(pred[:, :4], dtype=np.float64))
    g = tlwh_to_xyxy(np.asarray(gt[:, :4], dtype=np.float64))
    n = p.shape[0]
    if n == 0 or g.shape[0] == 0:
        return np.zeros(n), np.ones(n)
    overlaps = bbox_overlaps(p, g)
    best = overlaps.argmax(axis=1)  # first maximum, as ndarray.argmax
    matched = overlaps[np.arange(n), best] >= iou_thresh
    counts = np.asarray(ignore)[best] != 0
    proposal_list = np.where(matched & ~counts, -1.0, 1.0)
    recalls = np.flatnonzero(matched & counts)
    _, first = np.unique(best[recalls], return_index=True)  # the first detection to recall each face
    step = np.zeros(n)
    step[recalls[first]] = 1
    return np.cumsum(step), proposal_list


def img_pr_info(
    thresh_num: int, pred_info: np.ndarray, proposal_list: np.ndarray, pred_recall: np.ndarray
) -> np.ndarray:
    """``(thresh_num, 2)``: per threshold ``1 − (t+1)/thresh_num``, proposals and recalled faces among the
    detections up to the last one scoring ≥ the threshold (zeros when none does)."""
    scores = np.asarray(pred_info[:, 4], dtype=np.float64)
    thresholds = 1 - np.arange(1, thresh_num + 1) / thresh_num
    out = np.zeros((thresh_num, 2))
    if scores.size == 0:
        return out
    # the last index scoring >= t is the last index whose suffix maximum is >= t (works in any order)
    suffix_max = np.maximum.accumulate(scores[::-1])  # suffix maxima, from the last detection backwards
    last = scores.size - np.searchsorted(suffix_max, thresholds, side="left") - 1
    some = last >= 0
    proposals = np.cumsum(np.asarray(proposal_list) == 1)
    out[some, 0] = proposals[last[some]]
    out[some, 1] = np.asarray(pred_recall)[last[some]]
    return out


def dataset_pr_info(thresh_num: int, pr_curve: np.ndarray, count_face: int) -> np.ndarray:
    """``(thresh_num, 2)`` precision and recall from the summed per-image info (official: ``nan`` precision
    where no detection is a proposal)."""
    out = np.zeros((thresh_num, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, 0] = pr_curve[:, 1] / pr_curve[:, 0]
        out[:, 1] = pr_curve[:, 1] / count_face
    return out


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """VOC AP: area under the precision envelope, summed where recall changes."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def wider_ap(
    preds: Mapping[str, np.ndarray],
    gt: Sequence[FaceImage],
    iou_thresh: float = IOU_THRESH,
    thresh_num: int = THRESH_NUM,
) -> dict[str, float]:
    """AP per setting (``easy``, ``medium``, ``hard``) of predictions ``{image name: (n, 5) x y w h score}``.

    Scores are normalised here (:func:`norm_score`); images missing from *preds* have no detections.
    """
    normed = norm_score(preds)
    empty = np.zeros((0, 5))
    per_image = []
    for image in gt:
        pred = normed.get(image.name, empty)
        per_image.append((image, pred))
    aps = {}
    for setting in SETTINGS:
        count_face = 0
        pr_curve = np.zeros((thresh_num, 2))
        for image, pred in per_image:
            keep = image.selections[setting]
            count_face += len(keep)
            if len(image.boxes) == 0 or len(pred) == 0:
                continue
            ignore = np.zeros(len(image.boxes))
            if len(keep):
                ignore[keep] = 1
            pred_recall, proposal_list = image_eval(pred, image.boxes, ignore, iou_thresh)
            pr_curve += img_pr_info(thresh_num, pred, proposal_list, pred_recall)
        curve = dataset_pr_info(thresh_num, pr_curve, count_face)
        aps[setting] = voc_ap(curve[:, 1], curve[:, 0])
    return aps


# -- the whole evaluation ------------------------------------------------------------------------------------------
@dataclass
class FaceResult:
    """The result of :func:`evaluate_faces`."""

    aps: dict[str, float]
    run: EvalRun
    data: str
    gt: str
    images: int
    faces: dict[str, int]
    detections: int

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return self.run.report(
            "faces",
            {s: round(self.aps[s], 6) for s in SETTINGS},
            images=self.images,
            data=self.data,
            gt=self.gt,
            extra={"faces": self.faces, "detections": self.detections},
        )


def find_face_gt(data: Path, gt: Path | None) -> tuple[Path, Path]:
    """``(ground truth, image folder)`` of a WIDER-style set: ``--gt`` or ``DATA/wider_gt.json``; images under
    ``DATA/images`` or ``DATA``.

    Raises:
        InputError: no ground truth found.
    """
    images = image_folder(data)
    if gt is not None:
        return gt, images
    for candidate in (data / "wider_gt.json", data / "ground_truth"):
        if candidate.exists():
            return candidate, images
    raise InputError(
        f"--data {data}: no wider_gt.json or ground_truth/ folder; pass the ground truth with --gt "
        "(wider_gt.json, or the official ground_truth folder with wider_face_val.mat and wider_*_val.mat)"
    )


def evaluate_faces(
    data: str | Path,
    *,
    app: str,
    model: str,
    gt: str | Path | None = None,
    backend: str = "auto",
    precision: str = "fp32",
    batch: int = 4,
    conf: float | None = None,
    iou: float | None = None,
    app_options: Mapping[str, Any] | None = None,
    on_image: Callable[[FrameResult], None] | None = None,
    on_start: Callable[[Any, Any], None] | None = None,
) -> FaceResult:
    """WIDER FACE AP (easy / medium / hard) of a face app's pipeline, with the app's evaluation preset.

    Args:
        data: the set's folder (``images/<event>/<name>.jpg`` and ``wider_gt.json``).
        app: the app type (``retinaface`` …); model: its model path or zoo name.
        gt: ``wider_gt.json`` or the official ``ground_truth`` folder, replacing ``DATA/wider_gt.json``.
        backend, precision, batch: how to run (frames of one size share a batch at native size).
        conf, iou: replace the preset's thresholds.
        app_options: further app options (they win over the preset, like ``conf``/``iou``).
        on_image: called with every frame's result (progress).
        on_start: called with ``(pipeline, preset)`` before the first image.

    Raises:
        UserError: bad set, model, options or backend (one line each).
    """
    data = Path(data).expanduser()
    gt_path, image_dir = find_face_gt(data, Path(gt).expanduser() if gt is not None else None)
    truth = load_wider_gt(gt_path)
    items = [ImageItem(image.name, image_dir / image.name, image.size) for image in truth]
    check_images_exist(items, "of the ground truth", image_dir)
    run = evaluate_app(
        "faces",
        items,
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
    preds = {name: wider_predictions(dets) for name, dets in run.detections.items()}
    aps = wider_ap(preds, truth)
    faces = {s: int(sum(len(image.selections[s]) for image in truth)) for s in SETTINGS}
    return FaceResult(
        aps=aps,
        run=run,
        data=str(data),
        gt=str(gt_path),
        images=len(items),
        faces=faces,
        detections=int(sum(len(p) for p in preds.values())),
    )
