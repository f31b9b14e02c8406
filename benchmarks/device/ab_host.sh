#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: is the slow state of level (iii) the host (CPU steal by
# other guests) or the process (GIL hand-offs between the pipeline's threads)? Alternates, in one call, the batch-32
# bench with Python's default GIL switch interval (5 ms), a short one (0.5 ms) and the process pinned to 8 cores,
# recording for each run the CPU steal and busy share of the whole machine from /proc/stat.
#   bash benchmarks/device/ab_host.sh [ROUNDS]
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
stat() { head -1 /proc/stat; }
run() {  # name switch_interval_s [taskset cpus]
  local name=$1 sw=$2 pin=${3:-}
  local before; before=$(stat)
  local prefix=(); if [ -n "$pin" ]; then prefix=(taskset -c "$pin"); fi
  "${prefix[@]}" python3 -c "import sys; sys.setswitchinterval(float(sys.argv[1])); sys.argv = ['trtapps'] + sys.argv[2:]
from trtapps.cli import main; main()" "$sw" bench --model "$M" --video "$V" --backend onnxruntime_cuda --batch 32 \
    --streams 1 --frames 8192 --json "$OUT/host_$name.json" > "$OUT/host_$name.log" 2>&1
  python3 - "$OUT/host_$name.json" "$name" "$before" "$(stat)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); r = d["levels"][0]; p = r["pipeline"]
a = [int(x) for x in sys.argv[3].split()[1:]]; b = [int(x) for x in sys.argv[4].split()[1:]]
delta = [y - x for x, y in zip(a, b)]; total = sum(delta[:8]) or 1
steal, idle = delta[7] / total, (delta[3] + delta[4]) / total
print(f"{sys.argv[2]:<12} (i) {r['i_runner_img_s']:7.1f} (iii) {r['iii_pipeline_img_s']:7.1f} iii/i {r['ratio_iii_i']:.3f} "
      f"cpu {p['cpu']['ms_per_frame']:.3f} ms/frame, {p['cpu']['cores_busy']:.2f} cores; machine steal {steal:.3%} "
      f"busy {1 - idle - steal:.1%}; stages {p['stages_ms_per_frame']}")
PY
}
for round in $(seq 1 "${1:-3}"); do
  run "default_$round" 0.005
  run "switch05_$round" 0.0005
  run "pin8_$round" 0.005 0-7
done
