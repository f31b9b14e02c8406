"""MOTChallenge sequences: loading public detections, running a tracker over them, and scoring the results.

Layout of a sequence folder (MOTChallenge):

```
SEQ/seqinfo.ini                frameRate, seqLength, imWidth, imHeight
SEQ/det/det.txt                frame,-1,x,y,w,h,score,…           public detections (1-based frames)
SEQ/det/det_<name>.npy         optional (N, 7 + D): the det rows and a D-d appearance feature per row
SEQ/gt/gt.txt                  frame,id,x,y,w,h,flag,class,visibility
SEQ/img1/000001.jpg …          optional frames
```

Scoring follows the MOTChallenge protocol as motmetrics computes it: per frame, ground truth and tracker boxes
are paired by Hungarian assignment on IoU ≥ 0.5, and CLEAR-MOT and identity metrics are accumulated.
MOT15 counts ground-truth rows with ``flag != 0``. MOT16/17/20 count rows with ``flag != 0`` and class 1
(pedestrian), and first drop tracker boxes that match (IoU ≥ 0.5) a distractor (classes 2 person on vehicle,
7 static person, 8 distractor, 12 reflection) — the devkit's preprocessing, as motmetrics'
``utils.CLEAR_MOT_M``. This reproduces the reference numbers of the shared MOT data exactly.
"""

from __future__ import annotations

import configparser
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtapps.errors import FrameError, InputError, UserError, first_line
from trtapps.structures import Detections, Frame

log = logging.getLogger("trtapps.trackers.mot")

#: MOT16/17/20 classes whose matched tracker boxes are ignored (person on vehicle, static person,
#: distractor, reflection)
DISTRACTOR_CLASSES = (2, 7, 8, 12)

PROTOCOL = (
    "MOTChallenge, motmetrics-style: IoU >= 0.5 Hungarian pairing per frame; MOT15: gt flag != 0; "
    "MOT16/17/20: gt flag != 0 and class 1, tracker boxes matched to distractor classes 2/7/8/12 dropped"
)

#: metrics computed per sequence and overall, with the names used in tables and JSON
METRICS: dict[str, str] = {
    "mota": "MOTA",
    "idf1": "IDF1",
    "num_switches": "IDs",
    "num_false_positives": "FP",
    "num_misses": "FN",
    "mostly_tracked": "MT",
    "mostly_lost": "ML",
    "motp": "MOTP",
    "precision": "Prcn",
    "recall": "Rcll",
    "idp": "IDP",
    "idr": "IDR",
    "num_fragmentations": "Frag",
    "num_objects": "GT",
    "num_unique_objects": "GT IDs",
    "num_predictions": "Dets",
}


@dataclass
class MotSequence:
    """One MOTChallenge sequence with its public detections.

    Attributes:
        name: the folder name (``MOT17-09-FRCNN``).
        path: the sequence folder.
        frame_rate: ``seqinfo.ini`` frameRate.
        length: number of frames (``seqLength``).
        width: image width.
        height: image height.
        detections: ``(N, 7)`` float64 rows ``frame, -1, x, y, w, h, score`` (frames 1-based).
        features: ``(N, D)`` appearance features aligned with ``detections``, or ``None``.
        det_source: the file the detections came from.
        image_dir: the ``img1`` folder when it holds the frames, else ``None``.
        image_ext: the frames' file extension.
    """

    name: str
    path: Path
    frame_rate: float
    length: int
    width: int
    height: int
    detections: np.ndarray
    features: np.ndarray | None = None
    det_source: Path | None = None
    image_dir: Path | None = None
    image_ext: str = ".jpg"
    _by_frame: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def benchmark(self) -> str:
        """``MOT15``, ``MOT16``, ``MOT17`` or ``MOT20`` (from the sequence or parent folder name)."""
        for text in (self.name, self.path.parent.name):
            m = re.match(r"(MOT\d\d)", text)
            if m:
                return m.group(1)
        return "MOT15"

    @property
    def gt_path(self) -> Path:
        return self.path / "gt" / "gt.txt"

    def rows(self, frame: int) -> np.ndarray:
        """Indices of the detection rows of 1-based ``frame``."""
        if not self._by_frame:
            frames = self.detections[:, 0].astype(np.int64)
            order = np.argsort(frames, kind="stable")
            uniq, start = np.unique(frames[order], return_index=True)
            ends = np.append(start[1:], order.size)
            self._by_frame = {int(f): order[s:e] for f, s, e in zip(uniq, start, ends)}
        return self._by_frame.get(frame, np.zeros(0, dtype=np.int64))

    def frame_detections(self, frame: int) -> Detections:
        """The public detections of 1-based ``frame`` (class 0), with embeddings when the sequence has them."""
        idx = self.rows(frame)
        d = self.detections[idx]
        boxes = d[:, 2:6].copy()
        boxes[:, 2:] += boxes[:, :2]
        return Detections(
            boxes=boxes,
            scores=d[:, 6],
            class_ids=np.zeros(idx.size, dtype=np.int32),
            embeddings=None if self.features is None else self.features[idx],
        )

    def image_path(self, frame: int) -> Path | None:
        if self.image_dir is None:
            return None
        return self.image_dir / f"{frame:06d}{self.image_ext}"


def find_sequences(data: str | Path) -> list[Path]:
    """Sequence folders under ``data``: itself when it has ``seqinfo.ini``, else its sub-folders (two levels).

    Raises:
        UserError: ``data`` does not exist or holds no sequence.
    """
    root = Path(data)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; pass a MOTChallenge sequence folder or a folder of them")
    if (root / "seqinfo.ini").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("*/seqinfo.ini"))
    if not found:
        found = sorted(p.parent for p in root.glob("*/*/seqinfo.ini"))
    if not found:
        raise UserError(f"{root}: no MOTChallenge sequence (no */seqinfo.ini); check --data")
    return found


def _read_seqinfo(path: Path) -> configparser.SectionProxy:
    """The ``[Sequence]`` section of ``path/seqinfo.ini``.

    Raises:
        InputError: the file is missing, unreadable or not an INI file with a ``[Sequence]`` section.
    """
    file = path / "seqinfo.ini"
    ini = configparser.ConfigParser()
    try:
        found = ini.read(file, encoding="utf8")
    except configparser.MissingSectionHeaderError:
        raise InputError(
            f"{file}: no [Sequence] header before the first field; start the file with a [Sequence] line"
        ) from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise InputError(
            f"{file}: not a readable INI file ({first_line(exc)}); write it as MOTChallenge does: "
            "[Sequence] then one key=value per line"
        ) from None
    if not found or "Sequence" not in ini:
        raise UserError(f"{file}: missing or without a [Sequence] section")
    return ini["Sequence"]


#: the numeric fields of ``seqinfo.ini``: (type, positive, what the value is)
_SEQINFO_FIELDS: dict[str, tuple[type, bool, str]] = {
    "frameRate": (float, True, "the frames per second"),
    "seqLength": (int, True, "the number of frames"),
    "imWidth": (int, False, "the image width in pixels"),
    "imHeight": (int, False, "the image height in pixels"),
}


def _seqinfo_number(info: configparser.SectionProxy, file: Path, key: str, default: str | None) -> Any:
    """Field *key* of a ``seqinfo.ini`` as a number (see :data:`_SEQINFO_FIELDS`).

    Raises:
        InputError: the field is missing (and has no default) or not a valid number; the message names it.
    """
    kind, positive, meaning = _SEQINFO_FIELDS[key]
    what = ("a positive " if positive else "a ") + ("whole number" if kind is int else "number")
    value = info.get(key, default)
    if value is None:
        raise InputError(f"{file}: no {key} field; add {key}=<{meaning}> to the [Sequence] section")
    try:
        number = kind(value.strip())
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise InputError(f"{file}: {key}={value!r} is not {what}; set {key} to {meaning}")
    return number


def _parse_rows(path: Path, text: str) -> np.ndarray:
    """Comma-separated rows parsed line by line (the slow path, after ``np.loadtxt`` failed): blank lines and
    ``#`` comments are skipped, as ``np.loadtxt`` does.

    Raises:
        InputError: the first malformed line, by its line number in *path*.
    """
    rows: list[list[float]] = []
    width = 0
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if rows and len(fields) != width:
            raise InputError(
                f"{path}:{number}: {len(fields)} comma-separated values where the lines before have {width}; "
                "fix or remove that line"
            )
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            column = next(i for i, f in enumerate(fields, start=1) if not _is_float(f))
            raise InputError(
                f"{path}:{number}: column {column} is {fields[column - 1]!r}, not a number; fix or remove that line"
            ) from None
        width = len(fields)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load_txt(path: Path, min_cols: int) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file; MOTChallenge rows are comma-separated numbers") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or first_line(exc)})") from None
    if not text.strip():  # an empty results file is valid: the tracker output nothing
        return np.zeros((0, min_cols))
    try:
        rows = np.loadtxt(text.splitlines(), delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError:  # numpy's message gives 0-based rows and its own advice: find the line ourselves
        rows = _parse_rows(path, text)
    if rows.size == 0:
        return np.zeros((0, min_cols))
    if rows.shape[1] < min_cols:
        raise InputError(f"{path}: expected at least {min_cols} comma-separated columns, got {rows.shape[1]}")
    return rows


def load_sequence(
    path: str | Path, det_file: str | Path | None = None, *, appearance: bool = False
) -> MotSequence:
    """Load one sequence folder.

    Args:
        path: the sequence folder (with ``seqinfo.ini``).
        det_file: detections to use instead of ``det/det.txt``: a path, absolute or relative to the sequence
            folder (``det/det_acf.txt``); a ``.npy`` of ``(N, 7 + D)`` rows also gives features.
        appearance: load features from ``det/det_*.npy`` (the first one, sorted by name) when ``det_file`` is
            not given and such a file exists; its first 7 columns are then the detections.

    Raises:
        UserError: missing files or malformed rows.
    """
    seq_path = Path(path)
    info = _read_seqinfo(seq_path)
    ini = seq_path / "seqinfo.ini"
    frame_rate = _seqinfo_number(info, ini, "frameRate", "30")
    length = _seqinfo_number(info, ini, "seqLength", None)
    width = _seqinfo_number(info, ini, "imWidth", "0")
    height = _seqinfo_number(info, ini, "imHeight", "0")
    features = None
    if det_file is not None:
        source = Path(det_file)
        if not source.is_absolute():
            source = seq_path / source if (seq_path / source).exists() else source
    else:
        source = seq_path / "det" / "det.txt"
        if appearance:
            npys = sorted((seq_path / "det").glob("det_*.npy"))
            if npys:
                source = npys[0]
    if not source.is_file():
        raise UserError(f"{source}: detection file not found")
    if source.suffix == ".npy":
        try:
            array = np.load(source)
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(
                f"{source}: not a readable .npy array ({first_line(exc)}); save it again with numpy.save"
            ) from None
        if array.ndim != 2 or array.shape[1] < 7:
            raise UserError(f"{source}: expected an (N, 7 + D) array, got shape {array.shape}")
        detections = np.ascontiguousarray(array[:, :7], dtype=np.float64)
        if array.shape[1] > 7:
            features = np.ascontiguousarray(array[:, 7:], dtype=np.float32)
    else:
        detections = _load_txt(source, 7)[:, :7]
    im_dir = seq_path / info.get("imDir", "img1")
    ext = info.get("imExt", ".jpg")
    image_dir = im_dir if im_dir.is_dir() and any(im_dir.glob(f"*{ext}")) else None
    return MotSequence(
        name=seq_path.name,
        path=seq_path,
        frame_rate=frame_rate,
        length=length,
        width=width,
        height=height,
        detections=detections,
        features=features,
        det_source=source,
        image_dir=image_dir,
        image_ext=ext,
    )


@dataclass
class TrackingRun:
    """What :func:`run_tracker_on_sequence` produced.

    Attributes:
        sequence: the sequence name.
        rows: ``(K, 7)`` float64 ``frame, id, x, y, w, h, score`` (MOTChallenge order).
        frames: frames tracked.
        update_seconds: time spent inside ``tracker.update`` only.
        embed_seconds: time spent computing ReID features (not included in ``update_seconds``).
        frame_errors: one line per ``img1/`` frame that could not be read (file and reason); those frames were
            still tracked, without appearance (see :func:`run_tracker_on_sequence`).
    """

    sequence: str
    rows: np.ndarray
    frames: int
    update_seconds: float
    embed_seconds: float = 0.0
    frame_errors: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.update_seconds if self.update_seconds > 0 else float("inf")


def _blank_image(width: int, height: int) -> np.ndarray:
    """A read-only all-zero ``(H, W, 3)`` uint8 view with no memory behind it (for image-less runs)."""
    return np.broadcast_to(np.zeros((1, 1, 3), dtype=np.uint8), (max(height, 1), max(width, 1), 3))


def run_tracker_on_sequence(
    tracker: Any,
    sequence: MotSequence,
    *,
    embedder: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    read_images: bool = False,
) -> TrackingRun:
    """Feed every frame's public detections (frames 1 … seqLength) to ``tracker.update``.

    An ``img1/`` frame that cannot be read (missing, truncated, corrupt) does not stop the run: it is logged as a
    warning naming the file, listed in :attr:`TrackingRun.frame_errors`, and the frame still gets its tracking
    step, on a blank image. Its detections that would take their appearance from that image (no precomputed
    features, and an *embedder* or *read_images*) are withheld from that step, since no appearance can be computed
    for them: the tracks coast on their motion model for that frame, as over a frame without detections.

    Args:
        tracker: a :class:`trtapps.Tracker`, fresh for this sequence.
        sequence: from :func:`load_sequence`.
        embedder: ``embedder(image, boxes_xyxy) -> (N, D)`` features, run on the ``img1`` frames for
            detections without features; its time is counted apart from the tracker's.
        read_images: decode the ``img1`` frames and hand them to the tracker (needed by trackers that embed
            crops themselves); otherwise the tracker gets a blank frame of the right size.

    Raises:
        UserError: images are needed but the sequence has none.
    """
    from trtapps.sources import read_image

    need_images = read_images or (embedder is not None and sequence.features is None)
    if need_images and sequence.image_dir is None:
        raise UserError(
            f"{sequence.path}: no img1/ frames to compute ReID features from; provide det/det_*.npy features"
        )
    blank = _blank_image(sequence.width, sequence.height)
    out: list[np.ndarray] = []
    errors: list[str] = []
    update_s = embed_s = 0.0
    clock = time.perf_counter
    for frame_no in range(1, sequence.length + 1):
        dets = sequence.frame_detections(frame_no)
        image = blank
        if need_images:
            p = sequence.image_path(frame_no)
            assert p is not None  # image_dir is set
            try:
                image = read_image(p)
            except FrameError as exc:
                errors.append(str(exc))
                if dets.embeddings is None and len(dets):  # no appearance can be computed for them
                    how = f"without its {len(dets)} detections (no appearance without the image)"
                    dets = Detections.empty()
                else:
                    how = "on a blank image"
                log.warning("%s; frame %d is tracked %s", exc, frame_no, how)
        if embedder is not None and dets.embeddings is None and len(dets):
            t0 = clock()
            dets = dets.replace(embeddings=embedder(image, dets.boxes))
            embed_s += clock() - t0
        frame = Frame(image=image, source=sequence.name, index=frame_no - 1)
        t0 = clock()
        result = tracker.update(dets, frame)
        update_s += clock() - t0
        result = result.to_host()
        k = len(result)
        if k:
            rows = np.empty((k, 7))
            rows[:, 0] = frame_no
            rows[:, 1] = result.track_ids
            rows[:, 2:4] = result.boxes[:, :2]
            rows[:, 4:6] = result.boxes[:, 2:] - result.boxes[:, :2]
            rows[:, 6] = result.scores
            out.append(rows)
    rows = np.concatenate(out) if out else np.zeros((0, 7))
    return TrackingRun(sequence.name, rows, sequence.length, update_s, embed_s, errors)


def format_mot_rows(rows: np.ndarray) -> str:
    """MOTChallenge text ``frame,id,x,y,w,h,score,-1,-1,-1`` (boxes to 2 decimals, as the references write)."""
    return "".join(
        f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]:.4g},-1,-1,-1\n" for r in rows
    )


def write_mot(path: str | Path, rows: np.ndarray) -> Path:
    """Write tracking rows as a MOTChallenge results file (parents created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(format_mot_rows(rows))
    return p


# ---------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------


def _iou_distance(gt_tlwh: np.ndarray, hyp_tlwh: np.ndarray, max_dist: float = 0.5) -> np.ndarray:
    """motmetrics' ``iou_matrix``: ``1 − IoU``, NaN where it exceeds ``max_dist`` (do not pair)."""
    import motmetrics as mm

    if gt_tlwh.size == 0 or hyp_tlwh.size == 0:
        return np.empty((0, 0))
    iou = mm.distances.boxiou(gt_tlwh[:, None], hyp_tlwh[None, :])
    dist = 1 - iou
    return np.where(dist > max_dist, np.nan, dist)


def _group(rows: np.ndarray) -> dict[int, np.ndarray]:
    if rows.size == 0:
        return {}
    frames = rows[:, 0].astype(np.int64)
    order = np.argsort(frames, kind="stable")
    uniq, start = np.unique(frames[order], return_index=True)
    ends = np.append(start[1:], order.size)
    return {int(f): rows[order[s:e]] for f, s, e in zip(uniq, start, ends)}


def accumulate(gt: np.ndarray, hyp: np.ndarray, benchmark: str, length: int | None = None) -> Any:
    """A motmetrics ``MOTAccumulator`` for one sequence under the MOTChallenge protocol of ``benchmark``.

    Args:
        gt: ``gt.txt`` rows ``frame, id, x, y, w, h, flag, class, visibility``.
        hyp: tracker rows ``frame, id, x, y, w, h, …``.
        benchmark: ``MOT15`` (ground truth with ``flag != 0``) or ``MOT16``/``MOT17``/``MOT20`` (``flag != 0``
            and class 1, tracker boxes matching distractors dropped first).
        length: ``seqLength``; distractor preprocessing only looks at frames ``1 … length``.
    """
    import motmetrics as mm

    mot16 = benchmark in ("MOT16", "MOT17", "MOT20")
    gt_frames = _group(gt)
    hyp_frames = _group(hyp)
    acc = mm.MOTAccumulator(auto_id=False)
    frames = sorted(set(gt_frames) | set(hyp_frames))
    for f in frames:
        g = gt_frames.get(f, np.zeros((0, 9)))
        h = hyp_frames.get(f, np.zeros((0, 7)))
        if mot16 and g.size and h.size and (length is None or 1 <= f <= length):
            # motmetrics preprocessResult: drop tracker boxes matched to a distractor (or negative visibility)
            dist = _iou_distance(g[:, 2:6], h[:, 2:6])
            rows_i, cols_i = mm.lap.linear_sum_assignment(dist)
            distractor = np.isin(g[:, 7].astype(np.int64), DISTRACTOR_CLASSES) | (g[:, 8] < 0)
            drop = [c for r, c in zip(rows_i, cols_i) if np.isfinite(dist[r, c]) and distractor[r]]
            if drop:
                keep = np.ones(h.shape[0], dtype=bool)
                keep[drop] = False
                h = h[keep]
        if mot16:
            g = g[(g[:, 6] >= 0.99) & (g[:, 7] == 1)]
        else:
            g = g[g[:, 6] != 0]
        dist = _iou_distance(g[:, 2:6], h[:, 2:6])
        if dist.size == 0:
            dist = np.empty((g.shape[0], h.shape[0]))
        acc.update(g[:, 1].astype(np.int64), h[:, 1].astype(np.int64), dist, frameid=f)
    return acc


@dataclass
class EvalReport:
    """MOT metrics per sequence and overall (``OVERALL``), as plain numbers.

    Attributes:
        rows: ``{sequence: {metric: value}}`` with the keys of :data:`METRICS`; ratios in [0, 1].
        missing: sequences that have ground truth but no results file.
    """

    rows: dict[str, dict[str, float]]
    missing: list[str] = field(default_factory=list)

    @property
    def overall(self) -> dict[str, float]:
        return self.rows["OVERALL"]

    def to_json(self) -> dict[str, Any]:
        return {"protocol": PROTOCOL, "sequences": self.rows, "missing": self.missing}


def evaluate(
    data: str | Path,
    results: str | Path | dict[str, np.ndarray],
    sequences: Iterable[str] | None = None,
) -> EvalReport:
    """Score tracking results against the ground truth of every sequence under ``data``.

    Args:
        data: a sequence folder or a folder of them (as :func:`find_sequences`).
        results: a folder of ``<SEQ>.txt`` files, or ``{SEQ: rows}`` arrays (``frame, id, x, y, w, h, …``).
        sequences: only these sequence names (default: every sequence with ground truth).

    Raises:
        UserError: nothing to evaluate, or motmetrics is not installed.
    """
    try:
        import motmetrics as mm
    except ImportError:
        raise UserError("MOT evaluation needs motmetrics: pip install 'trtapps[eval]'") from None

    wanted = None if sequences is None else set(sequences)
    accs: list[Any] = []
    names: list[str] = []
    missing: list[str] = []
    for seq_path in find_sequences(data):
        name = seq_path.name
        if wanted is not None and name not in wanted:
            continue
        gt_file = seq_path / "gt" / "gt.txt"
        if not gt_file.is_file():
            continue
        if isinstance(results, dict):
            if name not in results:
                missing.append(name)
                continue
            hyp = np.asarray(results[name], dtype=np.float64)
        else:
            res_file = Path(results) / f"{name}.txt"
            if not res_file.is_file():
                missing.append(name)
                continue
            hyp = _load_txt(res_file, 6)
        info = _read_seqinfo(seq_path)
        gt = _load_txt(gt_file, 9)
        bench = MotSequence(name, seq_path, 0, 0, 0, 0, np.zeros((0, 7))).benchmark
        length = _seqinfo_number(info, seq_path / "seqinfo.ini", "seqLength", None) if "seqLength" in info else None
        accs.append(accumulate(gt, hyp, bench, length))
        names.append(name)
    if not accs:
        where = "the given arrays" if isinstance(results, dict) else str(results)
        raise UserError(f"nothing to evaluate: no sequence under {data} has both gt/gt.txt and results in {where}")
    mh = mm.metrics.create()
    summary = mh.compute_many(accs, names=names, metrics=list(METRICS), generate_overall=True)
    rows = {
        str(index): {k: float(summary.loc[index, k]) for k in METRICS} for index in summary.index
    }
    return EvalReport(rows=rows, missing=missing)

