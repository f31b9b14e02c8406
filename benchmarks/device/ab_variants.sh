#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: the batch-32 level-(iii) bench under variants of the host
# side, alternating in one call (the host's state changes between calls). Each run prints (iii)/(i), CPU per frame,
# cores busy, and the CPU steal and busy share of the whole machine from /proc/stat (other guests would show as
# steal).
#   bash benchmarks/device/ab_variants.sh [ROUNDS] [VARIANT...]
# Variants: default; copied (TRTAPPS_STAGE=pinned: every frame copied by a copy thread, the default before sources
# decoded into page-locked buffers); copy2, copy4, copy8 (copy threads); pageable (TRTAPPS_STAGE=pageable); graphs (the runner's
# CUDA graphs on, levels (i) and (iii) both replay them); switch05 (Python's GIL switch interval 0.5 ms instead of
# 5 ms); pin8 (the process pinned to cores 0-7). Default variants: default copy2 copy4 pageable.
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
run() {  # name copy_threads(0: default) [env...]
  local name=$1 threads=$2; shift 2
  local before; before=$(head -1 /proc/stat)
  local prefix=(); if [ -n "${AB_PIN:-}" ]; then prefix=(taskset -c "$AB_PIN"); fi
  env "$@" "${prefix[@]}" python3 -c "import sys, functools
import os
threads = int(sys.argv[1])
sys.setswitchinterval(float(os.environ.get('AB_SWITCH_INTERVAL', '0.005')))
if os.environ.get('AB_CUDA_GRAPH'):
    from trtapps.pipeline import Pipeline
    build = Pipeline.from_objects.__func__
    Pipeline.from_objects = classmethod(
        lambda cls, **kw: build(cls, **{**kw, 'backend': {'type': kw['backend'], 'cuda_graph': True}}))
if threads:
    from trtapps.gpu import frames
    frames.DeviceFrameStager.__init__ = functools.partialmethod(
        frames.DeviceFrameStager.__init__, copy_threads=threads)
sys.argv = ['trtapps'] + sys.argv[2:]
from trtapps.cli import main; main()" "$threads" bench --model "$M" --video "$V" --backend onnxruntime_cuda --batch 32 \
    --streams 1 --frames 8192 --json "$OUT/var_$name.json" > "$OUT/var_$name.log" 2>&1
  python3 - "$OUT/var_$name.json" "$name" "$before" "$(head -1 /proc/stat)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); r = d["levels"][0]; p = r["pipeline"]
a = [int(x) for x in sys.argv[3].split()[1:]]; b = [int(x) for x in sys.argv[4].split()[1:]]
delta = [y - x for x, y in zip(a, b)]; total = sum(delta[:8]) or 1
steal, idle = delta[7] / total, (delta[3] + delta[4]) / total
print(f"{sys.argv[2]:<14} (i) {r['i_runner_img_s']:7.1f} (iii) {r['iii_pipeline_img_s']:7.1f} "
      f"iii/i {r['ratio_iii_i']:.3f} cpu {p['cpu']['ms_per_frame']:.3f} ms/frame, {p['cpu']['cores_busy']:.2f} cores; "
      f"machine steal {steal:.3%} busy {1 - idle - steal:.1%}; staging {p.get('staging')}; "
      f"stages {p['stages_ms_per_frame']}")
PY
}
rounds=${1:-3}; shift || true
variants=("${@:-default copy2 copy4 pageable}"); variants=(${variants[*]})
for round in $(seq 1 "$rounds"); do
  for v in "${variants[@]}"; do
    case $v in
      default) run "default_$round" 0 ;;
      copy2) run "copy2_$round" 2 ;;
      copy4) run "copy4_$round" 4 ;;
      copy8) run "copy8_$round" 8 ;;
      pageable) run "pageable_$round" 0 TRTAPPS_STAGE=pageable ;;
      copied) run "copied_$round" 0 TRTAPPS_STAGE=pinned ;;
      graphs) run "graphs_$round" 0 AB_CUDA_GRAPH=1 ;;
      switch05) run "switch05_$round" 0 AB_SWITCH_INTERVAL=0.0005 ;;
      pin8) AB_PIN=0-7 run "pin8_$round" 0 ;;
      *) echo "unknown variant $v" >&2; exit 2 ;;
    esac
  done
done
