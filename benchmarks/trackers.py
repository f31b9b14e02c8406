"""Tracker-only speed (time inside ``update``) of sort / bytetrack / deepsort on MOT17-09 and MOT15.

Usage::

    python benchmarks/trackers.py [--data ../shared/mot] [--runs 3] [--boxmot-python /tmp/boxmot-venv/bin/python]

Each tracker runs over the public detections of every sequence of a set, ``--runs`` times; the reported fps
is frames / seconds spent inside ``tracker.update`` (detections are built beforehand), the median of the
runs. MOTA / IDF1 of the last run are scored with ``mot.evaluate`` so speed and accuracy come from one run.

boxmot (the reference's ByteTrack speed) is measured in the same run when a Python with boxmot installed is
available (``--boxmot-python``; ``--install-boxmot`` makes a throwaway virtualenv at /tmp/boxmot-venv with
``pip install boxmot``): it runs in that interpreter on the same detections, timed inside ``update`` only.

Writes ``benchmarks/results/trackers.json`` and ``trackers.md`` with the machine and package versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from trtapps.bench.resources import cpu_description
from trtapps.ops.boxes import xyxy_to_tlwh
from trtapps_plugins.trackers.bytetrack import ByteTracker, ByteTrackOptions
from trtapps_plugins.trackers.deepsort import DeepSortOptions, DeepSortTracker
from trtapps_plugins.trackers.mot import evaluate, find_sequences, load_sequence
from trtapps_plugins.trackers.sort import SortOptions, SortTracker

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SETS = {
    "MOT17-09 (FRCNN+SDP)": ["MOT17-09-FRCNN", "MOT17-09-SDP"],
    "MOT15 (6 sequences)": ["ADL-Rundle-6", "ETH-Bahnhof", "ETH-Sunnyday", "KITTI-13", "TUD-Campus", "Venice-2"],
}
#: the reference implementations' tracker-only fps on a 2-core machine (mot/MANIFEST.md, median of 3, ±20 %)
REFERENCE_FPS = {
    ("sort", "MOT17-09 (FRCNN+SDP)"): ("abewley/sort", 2746),
    ("sort", "MOT15 (6 sequences)"): ("abewley/sort", 2661),
    ("bytetrack", "MOT17-09 (FRCNN+SDP)"): ("boxmot 25.0.0 ByteTrack", 1013),
    ("bytetrack", "MOT15 (6 sequences)"): ("boxmot 25.0.0 ByteTrack", 952),
    ("deepsort", "MOT17-09 (FRCNN+SDP)"): ("nwojke/deep_sort", 1340),
}
#: parameters of the MANIFEST's reference runs
PARAMS = {
    "sort": "max_age=1, min_hits=3, iou_threshold=0.3",
    "bytetrack": "track_thresh=0.6, low_thresh=0.1, match_thresh=0.9, track_buffer=30, frame_rate from seqinfo",
    "deepsort": "min_confidence=0.3, max_cosine_distance=0.2, nn_budget=100 (det_mars128.npy features)",
}


def make_tracker(name: str, frame_rate: float) -> Any:
    if name == "sort":
        return SortTracker(SortOptions(max_age=1, min_hits=3, iou_threshold=0.3))
    if name == "bytetrack":
        return ByteTracker(
            ByteTrackOptions(track_thresh=0.6, low_thresh=0.1, match_thresh=0.9, track_buffer=30, frame_rate=frame_rate)
        )
    return DeepSortTracker(DeepSortOptions(min_confidence=0.3, max_cosine_distance=0.2, nn_budget=100))


def time_tracker(name: str, sequences: list[Any], runs: int) -> tuple[list[float], dict[str, np.ndarray], int]:
    """fps of each run over all sequences, and the rows of the last run."""
    prepared = [(seq, [seq.frame_detections(f) for f in range(1, seq.length + 1)]) for seq in sequences]
    frames = sum(len(d) for _, d in prepared)
    fps: list[float] = []
    rows: dict[str, np.ndarray] = {}
    for _ in range(runs):
        seconds = 0.0
        rows = {}
        for seq, per_frame in prepared:
            tracker = make_tracker(name, seq.frame_rate)
            out = []
            for index, dets in enumerate(per_frame):
                t0 = time.perf_counter()
                result = tracker.update(dets, None)
                seconds += time.perf_counter() - t0
                if len(result):
                    r = np.empty((len(result), 7))
                    r[:, 0] = index + 1
                    r[:, 1] = result.track_ids
                    r[:, 2:6] = xyxy_to_tlwh(result.boxes)
                    r[:, 6] = result.scores
                    out.append(r)
            rows[seq.name] = np.concatenate(out) if out else np.zeros((0, 7))
        fps.append(frames / seconds)
    return fps, rows, frames


BOXMOT_SCRIPT = r"""
import json, sys, time
import numpy as np
import boxmot
from boxmot import ByteTrack
job = json.loads(sys.stdin.read())
fps = []
for run in range(job["runs"]):
    seconds, frames = 0.0, 0
    for seq in job["sequences"]:
        d = np.loadtxt(seq["det"], delimiter=",", ndmin=2)
        tr = ByteTrack(track_thresh=0.6, match_thresh=0.9, track_buffer=30, frame_rate=int(round(seq["fps"])),
                       min_conf=0.1)
        img = np.zeros((seq["height"], seq["width"], 3), np.uint8)
        out = []
        for f in range(1, seq["length"] + 1):
            r = d[d[:, 0] == f]
            dets = np.c_[r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5], r[:, 6], np.zeros(len(r))]
            t0 = time.perf_counter()
            o = tr.update(dets, img)
            seconds += time.perf_counter() - t0
            frames += 1
            for x1, y1, x2, y2, tid, conf, *_ in np.asarray(o).reshape(-1, 8):
                out.append(f"{f},{int(tid) + 1},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{conf:.4g},-1,-1,-1\n")
        if run == job["runs"] - 1:
            with open(seq["out"], "w") as fh:
                fh.writelines(out)
    fps.append(frames / seconds)
print(json.dumps({"fps": fps, "version": boxmot.__version__}))
"""


def run_boxmot(python: str, sequences: list[Any], runs: int, out_dir: Path) -> dict[str, Any]:
    """boxmot's ByteTrack in its own interpreter on the same detections: fps per run and results files."""
    job = {
        "runs": runs,
        "sequences": [
            {
                "det": str(s.det_source), "fps": s.frame_rate, "length": s.length, "width": s.width,
                "height": s.height, "out": str(out_dir / f"{s.name}.txt"),
            }
            for s in sequences
        ],
    }
    proc = subprocess.run(
        [python, "-c", BOXMOT_SCRIPT], input=json.dumps(job), capture_output=True, text=True, timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "boxmot run failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine_info() -> dict[str, Any]:
    cpu = cpu_description()
    versions = {}
    for pkg in ("trtapps", "numpy", "scipy", "lap", "motmetrics", "opencv-python-headless", "onnxruntime"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def main(argv: list[str] | None = None) -> int:
    default_data = Path(os.environ.get("TRTAPPS_DATA", ROOT.parent / "shared")) / "mot"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data, help="folder of MOTChallenge sequences")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--boxmot-python", default="/tmp/boxmot-venv/bin/python",
                        help="a Python with boxmot installed (skipped when missing)")
    parser.add_argument("--install-boxmot", action="store_true",
                        help="create /tmp/boxmot-venv with 'pip install boxmot' first")
    parser.add_argument("--no-boxmot", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    if args.install_boxmot and not Path(args.boxmot_python).exists():
        venv = Path(args.boxmot_python).parents[1]
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "boxmot"], check=True)

    paths = {p.name: p for p in find_sequences(args.data)}
    results: list[dict[str, Any]] = []
    boxmot_note = None
    for set_name, names in SETS.items():
        missing = [n for n in names if n not in paths]
        if missing:
            print(f"skipping {set_name}: missing {missing}")
            continue
        for tracker in ("sort", "bytetrack", "deepsort"):
            sequences = [load_sequence(paths[n], appearance=tracker == "deepsort") for n in names]
            if tracker == "deepsort" and any(s.features is None for s in sequences):
                print(f"{set_name} / deepsort: no det_*.npy features, skipped")
                continue
            fps, rows, frames = time_tracker(tracker, sequences, args.runs)
            report = evaluate(args.data, rows, names)
            ref = REFERENCE_FPS.get((tracker, set_name))
            entry = {
                "set": set_name, "tracker": tracker, "implementation": "trtapps", "params": PARAMS[tracker],
                "frames": frames, "fps_runs": [round(v, 1) for v in fps], "fps": round(statistics.median(fps), 1),
                "mota": round(100 * report.overall["mota"], 3), "idf1": round(100 * report.overall["idf1"], 3),
                "id_switches": int(report.overall["num_switches"]),
                "reference": ref[0] if ref else None, "reference_fps": ref[1] if ref else None,
                "speedup_vs_reference": round(statistics.median(fps) / ref[1], 2) if ref else None,
            }
            results.append(entry)
            print(f"{set_name:22s} {tracker:10s} {entry['fps']:9,.0f} fps  MOTA {entry['mota']:.1f}  "
                  f"IDF1 {entry['idf1']:.1f}  IDs {entry['id_switches']}"
                  + (f"  ({entry['speedup_vs_reference']}x {ref[0]} {ref[1]} fps)" if ref else ""))
        if not args.no_boxmot and Path(args.boxmot_python).exists():
            sequences = [load_sequence(paths[n]) for n in names]
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    measured = run_boxmot(args.boxmot_python, sequences, args.runs, Path(tmp))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    boxmot_note = f"boxmot run failed: {exc}"
                    print(boxmot_note)
                    continue
                report = evaluate(args.data, tmp, names)
            fps_m = statistics.median(measured["fps"])
            ours = next(r for r in results if r["set"] == set_name and r["tracker"] == "bytetrack")
            entry = {
                "set": set_name, "tracker": "bytetrack", "implementation": f"boxmot {measured['version']}",
                "params": PARAMS["bytetrack"] + " (boxmot ByteTrack, min_conf=0.1)",
                "frames": ours["frames"], "fps_runs": [round(v, 1) for v in measured["fps"]], "fps": round(fps_m, 1),
                "mota": round(100 * report.overall["mota"], 3), "idf1": round(100 * report.overall["idf1"], 3),
                "id_switches": int(report.overall["num_switches"]),
                "reference": None, "reference_fps": None, "speedup_vs_reference": None,
            }
            ours["speedup_vs_boxmot_same_run"] = round(ours["fps"] / fps_m, 2)
            results.append(entry)
            print(f"{set_name:22s} {'boxmot':10s} {fps_m:9,.0f} fps  MOTA {entry['mota']:.1f}  "
                  f"IDF1 {entry['idf1']:.1f}  IDs {entry['id_switches']}  (trtapps bytetrack "
                  f"{ours['speedup_vs_boxmot_same_run']}x)")
        elif not args.no_boxmot:
            boxmot_note = f"boxmot not measured: {args.boxmot_python} not found (use --install-boxmot)"

    info = machine_info()
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "runs": args.runs, "timing": "tracker.update only, median of runs",
               "boxmot_note": boxmot_note, "results": results}
    (args.out / "trackers.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "trackers.md").write_text(render_markdown(payload))
    print(f"wrote {args.out / 'trackers.json'} and trackers.md")
    return 0


def render_markdown(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = [
        "# Tracker-only speed (time inside `update`)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + f". {m['date']}.",
        "",
        f"Median of {payload['runs']} runs; detections prepared before timing; MOTA/IDF1 from the last run "
        "(MOTChallenge protocol, motmetrics). Reference fps: `mot/MANIFEST.md` (reference implementations on a "
        "2-core machine, ±20 %); boxmot rows are measured in this run on the same detections.",
        "",
        "| set | tracker | implementation | fps | MOTA | IDF1 | ID sw. | reference fps | speed-up |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in payload["results"]:
        ref = f"{r['reference_fps']:,} ({r['reference']})" if r["reference_fps"] else ""
        speed = f"{r['speedup_vs_reference']}×" if r["speedup_vs_reference"] else ""
        if r.get("speedup_vs_boxmot_same_run"):
            speed += f" ({r['speedup_vs_boxmot_same_run']}× boxmot, same run)"
        lines.append(
            f"| {r['set']} | {r['tracker']} | {r['implementation']} | {r['fps']:,.0f} | {r['mota']:.1f} | "
            f"{r['idf1']:.1f} | {r['id_switches']} | {ref} | {speed} |"
        )
    lines += ["", "Parameters:"] + [f"- {k}: {v}" for k, v in PARAMS.items()]
    if payload.get("boxmot_note"):
        lines += ["", f"Note: {payload['boxmot_note']}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
