#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: where the host CPU of the NVDEC pipeline goes. py-spy samples
# only threads on a CPU (no --idle), native frames included, in the pipeline's process and its decoding worker
# processes (--subprocesses), while benchmarks/nvdec_pipeline.py runs 8 streams under its own CUDA MPS daemon
# (decode_worker auto -> process). Summaries print here; the collapsed stacks come back in $OUT.
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
SPY=/tmp/site/bin/py-spy
$SPY record --subprocesses --threads --format raw --rate 200 --nonblocking -o "$OUT/cpu_raw.txt" -- \
  python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams ${STREAMS:-8} --workers auto \
  --cuda-mps start 2>&1 | grep -v "^{\|never came\|plugin EP" | tail -6
python3 benchmarks/device/spy_summary.py "$OUT/cpu_raw.txt" --split nvdec_worker=worker --rest pipeline
(cd "$OUT" && tar czf /tmp/results.tgz . ; mv /tmp/results.tgz results.tgz; find . -mindepth 1 ! -name results.tgz -delete)
