#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: what a host wait costs (wait_cpu.py), then
# benchmarks/nvdec_pipeline.py at STREAMS streams (default 16) of each video in VIDEOS (default face_tracker.mp4
# MOT17-09.mp4), decode_worker auto under the run's MPS daemon, CUDA graphs, with the decoding processes' steps
# timed by benchmarks/device/cpu_split/sitecustomize.py; cpu_split.py prints their CPU per frame by step, and the
# pipeline's process's by thread step. SKIP_WAIT=1 leaves wait_cpu.py out.
source benchmarks/device/setup.sh >/dev/null || exit 1
if [ -z "${SKIP_WAIT:-}" ]; then python3 benchmarks/device/wait_cpu.py --json "$OUT/wait_cpu.json" > "$OUT/wait_cpu.txt" 2>&1; fi
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
for video in ${VIDEOS:-face_tracker.mp4 MOT17-09.mp4}; do
  name="split_$(basename "$video" .mp4)_${STREAMS:-16}"
  mkdir -p "/tmp/$name"
  PYTHONPATH="$PWD/benchmarks/device/cpu_split:$PYTHONPATH" TRTAPPS_CPU_SPLIT="/tmp/$name" \
    timeout -k 10 "${RUN_S:-200}" python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$TRTAPPS_DATA/media/$video" \
    --streams "${STREAMS:-16}" --workers auto --cuda-mps start --cuda-graph --json "$OUT/$name.json" > "/tmp/$name.log" 2>&1
  if [ -s "$OUT/$name.json" ]; then python3 benchmarks/device/nvdec_row.py "$OUT/$name.json" "$name"; else
    echo "$name: no result; log tail:"; grep -v POCs "/tmp/$name.log" | tail -n 20; cp "/tmp/$name.log" "$OUT/"; fi
  python3 benchmarks/device/cpu_split.py "/tmp/$name" --json "$OUT/${name}_steps.json"
done
