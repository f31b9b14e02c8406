"""Summarise the decoding processes' CPU by step from the files ``cpu_split/sitecustomize.py`` wrote.

Per frame (a frame = one picture copied out of the decoder), microseconds of the decoding processes' CPU:
``process`` (user + system over their whole lives, start-up included), the wrapped steps (inclusive), and the
exclusive parts worth reading: ``decode`` = ``step`` - ``demux`` - ``take`` (PyNvVideoCodec's ``Decode`` with
the loop's bookkeeping of the packet), ``copy`` - ``slot``, ``wait`` (trtapps' wait for its copies).

The pipeline's process is summarised by thread step (``reader.*``, ``inference.*``, ``main.*``).
Processes that started within 2 s of each other form a group, summarised apart (``nvdec_pipeline.py`` runs a
decode-only phase, then the pipeline). Usage: ``python benchmarks/device/cpu_split.py FOLDER [--json OUT.json]``
(files of processes that decoded nothing, such as the pipeline's own, are left out).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def groups(folder: Path, gap: float = 2.0) -> list[list[dict[str, Any]]]:
    """The decoding processes' files, in groups that started together (a benchmark's phases: decode only, then
    the pipeline), ordered by start."""
    files = [json.loads(path.read_text()) for path in folder.glob("cpu_*.json")]
    files = sorted((f for f in files if f["steps"].get("copy", {}).get("calls")), key=lambda f: f["started"])
    out: list[list[dict[str, Any]]] = []
    for data in files:
        if out and data["started"] - out[-1][-1]["started"] <= gap:
            out[-1].append(data)
        else:
            out.append([data])
    return out


def summarise(files: list[dict[str, Any]]) -> dict[str, Any]:
    steps: dict[str, list[int]] = {}
    user = system = 0.0
    processes = 0
    for data in files:
        processes += 1
        user += data["user_s"]
        system += data["system_s"]
        for key, value in data["steps"].items():
            total = steps.setdefault(key, [0, 0])
            total[0] += value["calls"]
            total[1] += value["cpu_ns"]
    frames = steps.get("copy", [0, 0])[0]
    if not frames:
        return {"processes": 0, "frames": 0}

    def us(key: str) -> float:
        return steps.get(key, [0, 0])[1] / frames / 1e3

    per_frame = {key: round(us(key), 2) for key in sorted(steps)}
    derived = {
        "process": round(1e6 * (user + system) / frames, 2),
        "process_user": round(1e6 * user / frames, 2),
        "process_system": round(1e6 * system / frames, 2),
        "decode": round(us("step") - us("demux") - us("take"), 2),
        "copy_without_slot": round(us("copy") - us("slot"), 2),
        "outside_steps": round(1e6 * (user + system) / frames - us("task_step") - us("open") - us("destroy"), 2),
    }
    return {"processes": processes, "frames": frames, "us_per_frame": derived,
            "inclusive_us_per_frame": per_frame, "calls": {k: v[0] for k, v in sorted(steps.items())}}


def pipeline_steps(folder: Path) -> dict[str, float] | None:
    """The pipeline's process: microseconds of CPU per frame of each timed step (inclusive): the median call's
    times calls per frame, and the mean (``(mean)``, one-time costs included); ``reader.*`` per frame received
    from a decoding process, ``inference.*`` and ``main.*`` per frame finished."""
    for path in folder.glob("cpu_*.json"):
        steps = json.loads(path.read_text())["steps"]
        if not steps.get("inference.submit", {}).get("calls"):
            continue
        received = steps.get("reader.frame", {}).get("calls") or 1
        finished = steps.get("main.finish_frame", {}).get("calls") or 1
        out = {}
        for key, value in sorted(steps.items()):
            if "." not in key or not value["calls"]:
                continue
            frames = received if key.startswith("reader.") else finished
            # the median call times the calls per frame: one-time costs (graph captures, first calls) left out
            out[key] = round(value.get("median_ns", 0) * value["calls"] / frames / 1e3, 2)
            out[key + " (mean)"] = round(value["cpu_ns"] / frames / 1e3, 2)
        return out
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = [summarise(group) for group in groups(args.folder)]
    if not results:
        print(f"{args.folder}: no decoding process wrote a file")
        return 1
    for number, result in enumerate(results, 1):
        print(f"{args.folder.name} group {number}: {result['processes']} decoding processes, {result['frames']} "
              "frames; CPU microseconds per frame:")
        print("  " + ", ".join(f"{k} {v}" for k, v in result["us_per_frame"].items()))
        print("  inclusive: " + ", ".join(f"{k} {v}" for k, v in result["inclusive_us_per_frame"].items()))
    pipeline = pipeline_steps(args.folder)
    if pipeline:
        print("  the pipeline's process, CPU microseconds per frame: "
              + ", ".join(f"{k} {v}" for k, v in pipeline.items()))
    if args.json:
        args.json.write_text(json.dumps({"decoding_processes": results, "pipeline_process": pipeline}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
