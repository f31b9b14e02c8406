#!/usr/bin/env bash
# The GPU soak in one call (a background process does not outlive its call): M minutes (default 9, so that model
# loading and the drain fit the 10-minute limit of a call), results archived in $OUT.
source benchmarks/device/setup.sh >/dev/null || exit 1
python3 benchmarks/soak.py --minutes "${1:-9}" --backend onnxruntime_cuda --streams 4 --json "$OUT/soak_gpu.json" \
  > "$OUT/soak_gpu.log" 2>&1
grep -v "co located POCs" "$OUT/soak_gpu.log" | tail -40
