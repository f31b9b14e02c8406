"""Trackers on a MOTChallenge sequence that is not in the shared data: TUD-Stadtmitte (MOT15, train).

Usage::

    python benchmarks/mot_unseen.py [--work DIR] [--out benchmarks/results]
        [--ref-python /tmp/venv-ref/bin/python] [--boxmot-python /tmp/boxmot-venv/bin/python] [--install-ref]

The ground truth is the MOTChallenge ``gt.txt`` of TUD-Stadtmitte that the ``motmetrics`` package ships as test
data (``motmetrics/data/TUD-Stadtmitte/gt.txt``: 179 frames, 10 identities, 1156 boxes; its sha256 is checked).
MOT15's public detections for it are not available here, so two detection sets are derived reproducibly and
written as a standard sequence folder (``seqinfo.ini``, ``gt/gt.txt``, ``det/*.txt``):

* ``det/det.txt`` ("gt-jitter"): the ground-truth boxes with seeded position/size noise, independent misses,
  occlusion gaps of 2-6 frames, duplicate boxes, scattered and persistent false positives, and scores drawn so
  that a quarter of the true boxes fall between ByteTrack's low and high thresholds (0.1 < s < 0.6);
* ``det/det_testtxt.txt`` ("motmetrics test.txt"): the boxes of ``motmetrics/data/TUD-Stadtmitte/test.txt``
  (an old tracker's output shipped for motmetrics' own tests) with the ids dropped and every score set to 1.

These are not MOT15's public detections, so published MOT15 scores do not apply. What is compared is our
trackers, run through the real commands (``trtapps mot`` then ``trtapps mot-eval``), against the reference
implementations on identical detections, scored by the same ``trtapps mot-eval``:

* SORT: ``sort-track`` 0.0.8 from PyPI (a packaging of abewley/sort's ``sort.py``; its ``Sort.update`` logic is
  unchanged, only the assignment always uses scipy's ``linear_sum_assignment`` where abewley/sort uses
  ``lap.lapjv`` when ``lap`` is importable), run as shipped and with abewley/sort's ``lap.lapjv`` assignment
  restored; in its own virtualenv (``--ref-python``, ``--install-ref`` creates /tmp/venv-ref);
* ByteTrack: boxmot 25.0.0's ``ByteTrack`` (as ``benchmarks/trackers.py`` runs it) in its own virtualenv
  (``--boxmot-python``). Our ByteTrack follows ifzhang/ByteTrack, which boxmot does not reproduce exactly (it
  starts tracks at ``score >= track_thresh`` where ifzhang/ByteTrack needs ``track_thresh + 0.1``, among other
  things), so ours is also run with ``new_track_thresh=0.6`` to show how much of the gap that one setting is.

DeepSORT is not run: it needs appearance features, and there are neither frames nor features for this sequence.

Writes ``mot_unseen.json`` and ``mot_unseen.md`` under ``--out``. ``tests/e2e/test_mot_unseen.py`` loads this
file for :func:`build_sequence` and checks the committed reference numbers in CI (no network, no boxmot).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

SEQUENCE = "TUD-Stadtmitte"
#: MOT15's seqinfo for TUD-Stadtmitte: 179 frames (= the gt's frame range), 25 fps, 640x480 (motchallenge.net)
SEQINFO = {"frameRate": 25, "seqLength": 179, "imWidth": 640, "imHeight": 480}
#: sha256 of motmetrics 1.4.0's data/TUD-Stadtmitte/gt.txt and test.txt
GT_SHA256 = "275e53717f0397c19484fd42198fc5c4dc7b3de7ba5ca15ef53e2b8188696650"
TEST_TXT_SHA256 = "454611aef78f84dea47ed22369fe518e76c3625871835270eaee0ea36fd387f3"
#: motmetrics' own test (test_motchallenge_files) expects these for its TUD-Stadtmitte test.txt against gt.txt
MOTMETRICS_TEST_TXT = {"mota": 0.564014, "idf1": 0.644619, "num_false_positives": 45, "num_misses": 452,
                       "num_switches": 7}
#: the seed of the gt-jitter detections
SEED = 2015

#: detection sets: name -> (file inside the sequence folder, --det-file value or None for det/det.txt)
DETECTIONS = {
    "gt-jitter": ("det/det.txt", None),
    "motmetrics test.txt": ("det/det_testtxt.txt", "det/det_testtxt.txt"),
}
#: the parameters of the MANIFEST's reference runs (benchmarks/trackers.py)
PARAMS: dict[str, dict[str, Any]] = {
    "sort": {"max_age": 1, "min_hits": 3, "iou_threshold": 0.3},
    "bytetrack": {"track_thresh": 0.6, "low_thresh": 0.1, "match_thresh": 0.9, "track_buffer": 30},
}
#: metrics kept per run (mot-eval JSON keys)
KEEP = ("mota", "idf1", "num_switches", "num_false_positives", "num_misses", "mostly_tracked", "mostly_lost",
        "precision", "recall", "num_predictions")


# ---------------------------------------------------------------------------------------------------------------
# The sequence
# ---------------------------------------------------------------------------------------------------------------


def motmetrics_file(name: str) -> Path:
    """``motmetrics/data/TUD-Stadtmitte/<name>`` of the installed motmetrics, checked against its sha256."""
    import motmetrics

    path = Path(motmetrics.__file__).resolve().parent / "data" / SEQUENCE / name
    expected = {"gt.txt": GT_SHA256, "test.txt": TEST_TXT_SHA256}[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not shipped by this motmetrics ({metadata.version('motmetrics')})")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ValueError(f"{path}: sha256 {digest}, expected {expected} (motmetrics 1.4.0's file)")
    return path


def _normal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard normal draws by Box-Muller from ``rng.random`` only (plain PCG64 doubles, no sampler method that a
    NumPy release might change; the test still checks the sha256 of the result)."""
    u1, u2 = rng.random(size), rng.random(size)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * math.pi * u2)


def _score(value: float) -> float:
    """A score rounded to 3 decimals and kept off the thresholds 0.1, 0.6 and 0.7 (no ties to argue about)."""
    s = round(float(value), 3)
    return s + 0.001 if s in (0.1, 0.6, 0.7) else s


def jittered_detections(gt: np.ndarray, seed: int = SEED) -> np.ndarray:
    """Detector-like rows ``frame, -1, x, y, w, h, score, -1, -1, -1`` derived from ground truth, seeded.

    Per ground-truth box (frames in order, ids ascending): an occlusion gap of 2-6 frames starts with
    probability 0.03; otherwise the box is missed with probability 0.10; a kept box is moved by N(0, 0.04 w)
    and N(0, 0.03 h), scaled by exp(N(0, 0.05)) in width and height, clipped to the image, and scored
    U(0.15, 0.6) (a quarter of them) or U(0.6, 0.98); 4 % of kept boxes get a shifted duplicate scored lower.
    Per frame: a Poisson(0.7) number of pedestrian-sized false positives scored U(0.02, 0.65), plus 4
    persistent false positives (8-25 frames each, at fixed places with small jitter) scored U(0.3, 0.75).
    """
    rng = np.random.default_rng(seed)
    width, height = SEQINFO["imWidth"], SEQINFO["imHeight"]
    rows: list[list[float]] = []

    def add(frame: int, x: float, y: float, w: float, h: float, score: float) -> None:
        x1, y1 = max(0.0, x), max(0.0, y)
        x2, y2 = min(float(width), x + w), min(float(height), y + h)
        if x2 - x1 >= 4 and y2 - y1 >= 4:
            rows.append([frame, -1, round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2), _score(score),
                         -1, -1, -1])

    ghosts = []
    for _ in range(4):
        u = rng.random(5)
        start = 1 + int(u[0] * (SEQINFO["seqLength"] - 25))
        gh = 110 + 120 * u[1]
        ghosts.append((start, start + 8 + int(17 * u[2]), u[3] * (width - 0.4 * gh), 80 + u[4] * (height - 80 - gh),
                       0.4 * gh, gh))
    occluded_until: dict[int, int] = {}
    gt = gt[np.lexsort((gt[:, 1], gt[:, 0]))]
    for frame in range(1, SEQINFO["seqLength"] + 1):
        for g in gt[(gt[:, 0] == frame) & (gt[:, 6] != 0)]:
            tid = int(g[1])
            if occluded_until.get(tid, 0) >= frame:
                continue
            u = rng.random(8)
            if u[0] < 0.03:
                occluded_until[tid] = frame + 1 + int(5 * u[1])  # this frame and 1-5 more
                continue
            if u[2] < 0.10:
                continue
            n = _normal(rng, 4)
            x, y, w, h = g[2:6]
            w2, h2 = w * math.exp(0.05 * n[2]), h * math.exp(0.05 * n[3])
            cx, cy = x + w / 2 + 0.04 * w * n[0], y + h / 2 + 0.03 * h * n[1]
            score = 0.15 + 0.45 * u[4] if u[3] < 0.25 else 0.6 + 0.38 * u[4]
            add(frame, cx - w2 / 2, cy - h2 / 2, w2, h2, score)
            if u[5] < 0.04:
                add(frame, cx - w2 / 2 + 0.15 * w2 * (1 if u[6] < 0.5 else -1), cy - h2 / 2, w2, h2,
                    max(0.05, score - 0.1 - 0.3 * u[7]))
        # false positives: Poisson(0.7) by inversion of one uniform
        draw, k, p = rng.random(), 0, math.exp(-0.7)
        cdf = p
        while draw > cdf:
            k += 1
            p *= 0.7 / k
            cdf += p
        for _ in range(k):
            v = rng.random(5)
            fh = 100 + 150 * v[0]
            fw = fh * (0.3 + 0.2 * v[1])
            add(frame, v[2] * (width - fw), 60 + v[3] * (height - 60 - fh), fw, fh, 0.02 + 0.63 * v[4])
        for start, end, gx, gy, gw, gh in ghosts:
            if start <= frame <= end:
                n = _normal(rng, 2)
                add(frame, gx + 2 * n[0], gy + 2 * n[1], gw, gh, 0.3 + 0.45 * rng.random())
    return np.asarray(rows, dtype=np.float64)


def test_txt_detections(test_rows: np.ndarray) -> np.ndarray:
    """motmetrics' test.txt boxes as detections: ids dropped, score 1 (all above any threshold)."""
    out = np.full((len(test_rows), 10), -1.0)
    out[:, 0] = test_rows[:, 0]
    out[:, 2:6] = test_rows[:, 2:6]
    out[:, 6] = 1.0
    return out[np.argsort(out[:, 0], kind="stable")]


def format_det_rows(rows: np.ndarray) -> str:
    return "".join(
        f"{int(r[0])},-1,{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]:.6g},-1,-1,-1\n" for r in rows
    )


def build_sequence(root: Path) -> Path:
    """Write ``root/TUD-Stadtmitte`` (seqinfo.ini, gt/gt.txt, det/det.txt, det/det_testtxt.txt); its path."""
    seq = Path(root) / SEQUENCE
    (seq / "gt").mkdir(parents=True, exist_ok=True)
    (seq / "det").mkdir(parents=True, exist_ok=True)
    info = "\n".join(["[Sequence]", f"name={SEQUENCE}", "imDir=img1"] + [f"{k}={v}" for k, v in SEQINFO.items()]
                     + ["imExt=.jpg", ""])
    (seq / "seqinfo.ini").write_text(info)
    gt_file = motmetrics_file("gt.txt")
    shutil.copyfile(gt_file, seq / "gt" / "gt.txt")
    gt = np.loadtxt(gt_file, delimiter=",", ndmin=2)
    (seq / "det" / "det.txt").write_text(format_det_rows(jittered_detections(gt)))
    test_rows = np.loadtxt(motmetrics_file("test.txt"), delimiter=",", ndmin=2)
    (seq / "det" / "det_testtxt.txt").write_text(format_det_rows(test_txt_detections(test_rows)))
    return seq


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def describe_detections(path: Path) -> dict[str, Any]:
    d = np.loadtxt(path, delimiter=",", ndmin=2)
    s = d[:, 6]
    return {
        "file": path.name, "sha256": sha256(path), "rows": len(d),
        "frames_with_detections": len(np.unique(d[:, 0])),
        "score_le_0.1": int((s <= 0.1).sum()), "score_0.1_to_0.6": int(((s > 0.1) & (s < 0.6)).sum()),
        "score_ge_0.6": int((s >= 0.6).sum()),
    }


# ---------------------------------------------------------------------------------------------------------------
# Running trackers
# ---------------------------------------------------------------------------------------------------------------


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def mot_command(seq: Path, tracker: str, params: dict[str, Any], det_file: str | None, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "trtapps", "mot", "--data", str(seq), "--tracker", tracker]
    for k, v in params.items():
        cmd += ["-p", f"{k}={v}"]
    if det_file:
        cmd += ["--det-file", det_file]
    return [*cmd, "--output", str(out)]


def mot_eval(seq: Path, results: Path) -> dict[str, float]:
    """``trtapps mot-eval`` on one results folder; the sequence's metrics."""
    metrics = results / "metrics.json"
    _run([sys.executable, "-m", "trtapps", "mot-eval", "--data", str(seq), "--results", str(results),
          "--json", str(metrics)])
    row = json.loads(metrics.read_text())["sequences"][SEQUENCE]
    return {k: row[k] for k in KEEP}


REF_SORT_SCRIPT = r"""
import json, sys
import numpy as np
import sort.tracker as st
job = json.loads(sys.stdin.read())
if job["assignment"] == "lapjv":
    import lap
    def lapjv_pairs(cost):
        # abewley/sort's linear_assignment when lap is importable: lapjv with extend_cost, (row, col) pairs
        _, x, _ = lap.lapjv(cost, extend_cost=True)
        return np.array([[r, c] for r, c in enumerate(x) if c >= 0])
    st.linear_assignment = lapjv_pairs
st.KalmanBoxTracker.count = 0
p = job["params"]
tracker = st.SortTracker(max_age=p["max_age"], min_hits=p["min_hits"], iou_threshold=p["iou_threshold"])
d = np.loadtxt(job["det"], delimiter=",", ndmin=2)
out = []
for f in range(1, job["length"] + 1):
    r = d[d[:, 0] == f]
    dets = np.c_[r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5], r[:, 6], np.zeros(len(r))]
    for x1, y1, x2, y2, tid, cls, conf in tracker.update(dets, None):
        out.append(f"{f},{int(tid)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{conf:.4g},-1,-1,-1\n")
with open(job["out"], "w") as fh:
    fh.writelines(out)
from importlib.metadata import version
print(json.dumps({k: version(k) for k in ("sort-track", "filterpy", "numpy", "scipy", "lap")}))
"""

BOXMOT_SCRIPT = r"""
import json, sys
import numpy as np
import boxmot
from boxmot import ByteTrack
job = json.loads(sys.stdin.read())
p = job["params"]
tr = ByteTrack(track_thresh=p["track_thresh"], match_thresh=p["match_thresh"], track_buffer=p["track_buffer"],
               frame_rate=int(round(job["fps"])), min_conf=p["low_thresh"])
img = np.zeros((job["height"], job["width"], 3), np.uint8)
d = np.loadtxt(job["det"], delimiter=",", ndmin=2)
out = []
for f in range(1, job["length"] + 1):
    r = d[d[:, 0] == f]
    dets = np.c_[r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5], r[:, 6], np.zeros(len(r))]
    for x1, y1, x2, y2, tid, conf, *_ in np.asarray(tr.update(dets, img)).reshape(-1, 8):
        out.append(f"{f},{int(tid) + 1},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{conf:.4g},-1,-1,-1\n")
with open(job["out"], "w") as fh:
    fh.writelines(out)
from importlib.metadata import version
print(json.dumps({k: version(k) for k in ("boxmot", "numpy", "scipy", "torch")}))
"""


def run_reference(python: str, script: str, job: dict[str, Any]) -> dict[str, str]:
    """A reference tracker in another interpreter; writes ``job['out']``, returns that interpreter's versions."""
    proc = _run([python, "-c", script], input=json.dumps(job), timeout=900)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load_rows(path: Path) -> np.ndarray:
    text = Path(path).read_text().strip()
    return np.loadtxt(text.splitlines(), delimiter=",", ndmin=2) if text else np.zeros((0, 10))


def compare_rows(ours: Path, ref: Path, tol: float = 0.011) -> dict[str, Any]:
    """Two results files row by row: per frame, boxes paired when every coordinate is within ``tol`` (the files
    round to 0.01, and float32 / float64 or a different Kalman implementation can differ in the last digit).

    ``same_tracks``: every row paired and the ids map one-to-one; ``same_ids``: and the ids are equal too.
    """
    a, b = _load_rows(ours), _load_rows(ref)
    pairs: dict[tuple[int, int], int] = {}
    paired = 0
    max_diff = 0.0
    for frame in np.unique(np.r_[a[:, 0], b[:, 0]]):
        ra, rb = a[a[:, 0] == frame], b[b[:, 0] == frame]
        free = np.ones(len(rb), dtype=bool)
        for row in ra:
            if not free.any():
                break
            diff = np.where(free, np.abs(rb[:, 2:6] - row[2:6]).max(axis=1), np.inf)
            j = int(np.argmin(diff))
            if diff[j] <= tol:
                free[j] = False
                paired += 1
                max_diff = max(max_diff, float(diff[j]))
                key = (int(row[1]), int(rb[j, 1]))
                pairs[key] = pairs.get(key, 0) + 1
    ours_ids = [k[0] for k in pairs]
    ref_ids = [k[1] for k in pairs]
    one_to_one = len(set(ours_ids)) == len(ours_ids) and len(set(ref_ids)) == len(ref_ids)
    same_tracks = paired == len(a) == len(b) and one_to_one
    return {
        "rows_ours": len(a), "rows_reference": len(b), "rows_paired": paired,
        "max_box_diff": round(max_diff, 4), "ids_one_to_one": one_to_one, "same_tracks": same_tracks,
        "same_ids": same_tracks and all(x == y for x, y in pairs),
    }


def frame_id_digest(path: Path) -> str:
    """sha256 of the sorted ``frame,id`` pairs of a results file: which ids are reported in which frames, without
    the boxes (whose last digit can differ between implementations)."""
    rows = _load_rows(path)
    pairs = sorted({(int(r[0]), int(r[1])) for r in rows})
    return hashlib.sha256("".join(f"{f},{i}\n" for f, i in pairs).encode()).hexdigest()


def describe_comparison(c: dict[str, Any]) -> str:
    if c["same_ids"]:
        return f"identical: {c['rows_paired']}/{c['rows_ours']} rows, same ids"
    if c["same_tracks"]:
        return f"same tracks: {c['rows_paired']}/{c['rows_ours']} rows, ids numbered differently"
    return f"differ: {c['rows_paired']} rows paired of {c['rows_ours']} (ours) / {c['rows_reference']} (ref)"


def install_ref(venv: Path) -> None:
    """/tmp/venv-ref: sort-track 0.0.8 (no deps: it pins scipy 1.9.3) with filterpy, scipy, numpy and lap."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, "numpy", "scipy", "filterpy==1.4.5", "lap"], check=True)
    subprocess.run([*pip, "--no-deps", "sort-track==0.0.8"], check=True)


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pkg in ("trtapps", "numpy", "scipy", "lap", "motmetrics"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="keep the sequence and results here (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--ref-python", default="/tmp/venv-ref/bin/python", help="a Python with sort-track")
    parser.add_argument("--boxmot-python", default="/tmp/boxmot-venv/bin/python", help="a Python with boxmot")
    parser.add_argument("--install-ref", action="store_true", help="create /tmp/venv-ref (sort-track) first")
    args = parser.parse_args(argv)

    if args.install_ref and not Path(args.ref_python).exists():
        install_ref(Path(args.ref_python).parents[1])
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="mot_unseen_")
        work = Path(tmp.name)
    else:
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    seq = build_sequence(work)
    rel = lambda p: "$WORK/" + str(Path(p).relative_to(work))  # noqa: E731
    print(f"sequence: {seq}")

    results: list[dict[str, Any]] = []
    ref_versions: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    data: dict[str, Any] = {}

    # sanity check of the sequence folder and the scoring: motmetrics' own expected numbers for its test.txt
    check_dir = work / "results" / "motmetrics-test.txt"
    check_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(motmetrics_file("test.txt"), check_dir / f"{SEQUENCE}.txt")
    eval_check = {"ours": mot_eval(seq, check_dir), "motmetrics_expects": MOTMETRICS_TEST_TXT}

    for det_name, (det_path, det_flag) in DETECTIONS.items():
        data[det_name] = describe_detections(seq / det_path)
        folder = work / "results" / det_name.replace(" ", "-")
        # (run name, tracker, implementation, params, our runs to compare with); ours first, through the CLI
        runs: list[tuple[str, str, str, dict[str, Any], list[str]]] = [
            ("sort", "sort", "trtapps", PARAMS["sort"], []),
            ("bytetrack", "bytetrack", "trtapps", PARAMS["bytetrack"], []),
            ("bytetrack-new0.6", "bytetrack", "trtapps, new_track_thresh=0.6 (boxmot's start threshold)",
             {**PARAMS["bytetrack"], "new_track_thresh": 0.6}, []),
        ]
        commands: dict[str, list[str]] = {}
        for name, tracker, _, params, _ in runs:
            commands[name] = mot_command(seq, tracker, params, det_flag, folder / name)
            _run(commands[name])

        job = {"det": str(seq / det_path), "length": SEQINFO["seqLength"], "fps": SEQINFO["frameRate"],
               "width": SEQINFO["imWidth"], "height": SEQINFO["imHeight"]}
        if Path(args.ref_python).exists():
            for assignment, label in (("lapjv", "abewley/sort (sort-track 0.0.8 + abewley's lap.lapjv assignment)"),
                                      ("scipy", "sort-track 0.0.8 as packaged (scipy assignment)")):
                name = f"ref-sort-{assignment}"
                (folder / name).mkdir(parents=True, exist_ok=True)
                ref_versions["sort"] = run_reference(args.ref_python, REF_SORT_SCRIPT, {
                    **job, "params": PARAMS["sort"], "assignment": assignment,
                    "out": str(folder / name / f"{SEQUENCE}.txt")})
                runs.append((name, "sort", label, PARAMS["sort"], ["sort"]))
                commands[name] = [args.ref_python, "-c", f"REF_SORT_SCRIPT (assignment={assignment})"]
        else:
            notes.append(f"reference SORT not run: {args.ref_python} not found (use --install-ref)")
        if Path(args.boxmot_python).exists():
            name = "ref-boxmot-bytetrack"
            (folder / name).mkdir(parents=True, exist_ok=True)
            ref_versions["bytetrack"] = run_reference(args.boxmot_python, BOXMOT_SCRIPT, {
                **job, "params": PARAMS["bytetrack"], "out": str(folder / name / f"{SEQUENCE}.txt")})
            runs.append((name, "bytetrack", f"boxmot {ref_versions['bytetrack']['boxmot']} ByteTrack (min_conf=0.1)",
                         PARAMS["bytetrack"], ["bytetrack", "bytetrack-new0.6"]))
            commands[name] = [args.boxmot_python, "-c", "BOXMOT_SCRIPT"]
        else:
            notes.append(f"boxmot not run: {args.boxmot_python} not found")

        for name, tracker, impl, params, compare_with in runs:
            entry: dict[str, Any] = {"detections": det_name, "run": name, "tracker": tracker,
                                     "implementation": impl, "params": params, **mot_eval(seq, folder / name),
                                     "frame_id_sha256": frame_id_digest(folder / name / f"{SEQUENCE}.txt")}
            if name in commands:
                entry["command"] = " ".join("python" if c == sys.executable else c for c in commands[name]).replace(
                    str(work) + "/", "$WORK/")
            entry["vs_ours"] = {
                other: compare_rows(folder / other / f"{SEQUENCE}.txt", folder / name / f"{SEQUENCE}.txt")
                for other in compare_with
            }
            results.append(entry)
            print(f"{det_name:20s} {tracker:9s} {impl[:64]:64s} MOTA {100 * entry['mota']:5.1f}  "
                  f"IDF1 {100 * entry['idf1']:5.1f}  IDs {int(entry['num_switches']):3d}  "
                  f"FP {int(entry['num_false_positives']):4d}  FN {int(entry['num_misses']):4d}")
            for other, c in entry["vs_ours"].items():
                print(f"{'':31s}vs ours ({other}): {describe_comparison(c)}")

    payload = {
        "sequence": SEQUENCE,
        "ground_truth": {"source": "motmetrics package data: motmetrics/data/TUD-Stadtmitte/gt.txt",
                         "sha256": GT_SHA256, "seqinfo": SEQINFO},
        "detections": data,
        "seed": SEED,
        "mot_eval_check": eval_check,
        "sequence_folder": rel(seq),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count(),
                    "versions": versions(), "reference_versions": ref_versions,
                    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")},
        "command": "python benchmarks/mot_unseen.py" + (f" --work {args.work}" if args.work else ""),
        "eval_command": f"python -m trtapps mot-eval --data {rel(seq)} --results $WORK/results/<set>/<run> "
                        "--json $WORK/results/<set>/<run>/metrics.json (every row, ours and the references)",
        "detections_note": "Not MOT15's public detections (not available here): derived from the ground truth "
                           "(gt-jitter, seeded) and from motmetrics' test.txt; published MOT15 scores do not "
                           "apply. The comparison is ours vs the reference implementations on identical inputs.",
        "notes": notes,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mot_unseen.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "mot_unseen.md").write_text(render_markdown(payload))
    print(f"wrote {args.out / 'mot_unseen.json'} and mot_unseen.md")
    if tmp is not None:
        tmp.cleanup()
    return 0


def render_markdown(payload: dict[str, Any]) -> str:
    """The results table; the last column compares a reference's output file with ours, row by row."""
    lines = [
        "| detections | tracker | implementation | MOTA | IDF1 | ID sw. | FP | FN | output vs ours |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in payload["results"]:
        same = "; ".join(f"vs `{k}`: {describe_comparison(c)}" for k, c in r["vs_ours"].items())
        lines.append(
            f"| {r['detections']} | {r['tracker']} | {r['implementation']} | {100 * r['mota']:.1f} | "
            f"{100 * r['idf1']:.1f} | {int(r['num_switches'])} | {int(r['num_false_positives'])} | "
            f"{int(r['num_misses'])} | {same} |"
        )
    check, expected = payload["mot_eval_check"]["ours"], payload["mot_eval_check"]["motmetrics_expects"]
    lines += [
        "",
        f"Check of the sequence folder and of `mot-eval`: motmetrics' test.txt scored as a results file gives "
        f"MOTA {100 * check['mota']:.2f}, IDF1 {100 * check['idf1']:.2f}, FP {int(check['num_false_positives'])}, "
        f"FN {int(check['num_misses'])}, ID sw. {int(check['num_switches'])} (motmetrics' own test expects "
        f"{100 * expected['mota']:.2f} / {100 * expected['idf1']:.2f} / {expected['num_false_positives']} / "
        f"{expected['num_misses']} / {expected['num_switches']}).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
