#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: the batch-32 level-(iii) bench under variants of the frame
# staging, alternating in one call (the host's state changes between calls): the default copy threads, 2 and 4 copy
# threads, pageable staging, and the runner's CUDA graphs on (levels (i) and (iii) both replay them). Prints
# (iii)/(i), CPU per frame and cores busy.
#   bash benchmarks/device/ab_variants.sh [ROUNDS] [VARIANT...]   (variants: default copy2 copy4 pageable graphs)
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
run() {  # name copy_threads(0: default) [env...]
  local name=$1 threads=$2; shift 2
  env "$@" python3 -c "import sys, functools
import os
threads = int(sys.argv[1])
if os.environ.get('AB_CUDA_GRAPH'):
    from trtapps.pipeline import Pipeline
    build = Pipeline.from_objects.__func__
    Pipeline.from_objects = classmethod(lambda cls, **kw: build(cls, **{**kw, 'backend': {'type': kw['backend'], 'cuda_graph': True}}))
if threads:
    from trtapps.gpu import frames
    frames.DeviceFrameStager.__init__ = functools.partialmethod(frames.DeviceFrameStager.__init__, copy_threads=threads)
sys.argv = ['trtapps'] + sys.argv[2:]
from trtapps.cli import main; main()" "$threads" bench --model "$M" --video "$V" --backend onnxruntime_cuda --batch 32 \
    --streams 1 --frames 8192 --json "$OUT/var_$name.json" > "$OUT/var_$name.log" 2>&1
  python3 - "$OUT/var_$name.json" "$name" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); r = d["levels"][0]; p = r["pipeline"]
print(f"{sys.argv[2]:<14} (i) {r['i_runner_img_s']:7.1f} (iii) {r['iii_pipeline_img_s']:7.1f} iii/i {r['ratio_iii_i']:.3f} "
      f"cpu {p['cpu']['ms_per_frame']:.3f} ms/frame, {p['cpu']['cores_busy']:.2f} cores; stages {p['stages_ms_per_frame']}")
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
      pageable) run "pageable_$round" 0 TRTAPPS_STAGE=pageable ;;
      graphs) run "graphs_$round" 0 AB_CUDA_GRAPH=1 ;;
    esac
  done
done
