#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: where the pipeline's process spends its host CPU in the
# steady window only (first batch out to last result), py-spy sampling on-CPU threads (nvdec_pipeline.py --spy),
# N NVDEC streams under the run's own CUDA MPS daemon (decode_worker auto -> process), CUDA graphs unless GRAPH=0.
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
graph=--cuda-graph; [ "${GRAPH:-1}" = 0 ] && graph=
python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams ${STREAMS:-16} --workers auto \
  --cuda-mps start $graph --spy "$OUT/spy" --spy-bin /tmp/site/bin/py-spy --json "$OUT/nvdec_pipeline_spy.json" 2>&1 \
  | grep -v "^{\|plugin EP" | tail -5
for f in "$OUT"/spy/*.txt; do python3 benchmarks/device/spy_summary.py "$f" --top 25; done
gzip -f "$OUT"/spy/*.txt
