"""One line for a ``benchmarks/nvdec_pipeline.py`` JSON: its first row's rate, ratio and CPU per frame.

Usage: ``python benchmarks/device/nvdec_row.py RESULT.json LABEL`` (the device scripts print one per run).
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    path, label = argv
    with open(path) as f:
        r = json.load(f)["rows"][0]
    print(label, r["streams"], "streams", r["fps"], "fps, ratio", r["ratio"], "| CPU ms/frame", r["cpu_ms_per_frame"],
          "+ decoding", r["worker_cpu_ms_per_frame"], "in", r.get("worker_processes"), "processes",
          r.get("cpu_ms_per_frame_by_thread"), "| decode only", r["decode_only_fps"], "engine", r["engine_only_fps"])
    if r.get("cpu_ms_per_frame_other_threads"):
        print("  other threads:", r["cpu_ms_per_frame_other_threads"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
