#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: benchmarks/nvdec_pipeline.py once per source.decode_processes
# value in PROCS (default "2 4"), STREAMS streams (default 16) of VIDEO (default MOT17-09.mp4, 1920x1080 H.264),
# decode_worker auto under the run's own MPS daemon, CUDA graphs; one row each (fps, ratio, CPU per frame of the
# pipeline's process and of the decoding processes, decode-only fps). JSON per run in $OUT.
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/${VIDEO:-MOT17-09.mp4}
for p in ${PROCS:-2 4}; do
  json="$OUT/sweep_$(basename "$V" .mp4)_${STREAMS:-16}_p$p.json"
  timeout -k 10 "${RUN_S:-200}" python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams "${STREAMS:-16}" \
    --workers auto --cuda-mps start --cuda-graph --decode-processes "$p" --json "$json" > "${json%.json}.log" 2>&1
  if [ ! -s "$json" ]; then echo "p$p: no result; log tail:"; grep -v POCs "${json%.json}.log" | tail -n 30; continue; fi
  python3 benchmarks/device/nvdec_row.py "$json" "processes $p"
done
