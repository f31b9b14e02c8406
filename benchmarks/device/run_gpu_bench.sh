#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: the benchmarks of the GPU and throughput issues, in
# parts that each fit a 10-minute call: `run_gpu_bench.sh 1` (kernels, the three levels and streams, CUDA graphs)
# `run_gpu_bench.sh 2` (NVDEC decode and pipeline), `run_gpu_bench.sh 3` (fp16/int8 on the GPU) and
# `run_gpu_bench.sh 4` (Ultralytics, ReID). JSON and logs go to $OUT.
source benchmarks/device/setup.sh || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
if [ "${1:-1}" = 1 ]; then
  python3 benchmarks/gpu_kernels.py --batch 32 --real --json "$OUT/gpu_kernels.json" 2>&1 | tail -12
  python3 -m trtapps bench --model "$M" --video "$V" --backend onnxruntime_cuda --batch 1,8,32 --streams 1,8,16 \
    --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log" | tail -30
  # the same batch-32 run with the other frame staging (pageable copies; pinned is the default), for gpu.md
  TRTAPPS_STAGE=pageable python3 -m trtapps bench --model "$M" --video "$V" --backend onnxruntime_cuda --batch 32 \
    --streams 1,16 --json "$OUT/bench_pageable.json" 2>&1 | tee "$OUT/bench_pageable.log" | tail -12
  python3 benchmarks/cuda_graphs.py --model "$M" --json "$OUT/cuda_graphs.json" 2>&1 | tail -15
elif [ "$1" = 3 ]; then
  TRTAPPS_BENCH_OUT="$OUT" python3 -m pytest -m "gpu or tensorrt" tests/onnx_precision/test_onnx_precision_gpu.py \
    -q -rs -p no:cacheprovider 2>&1 | tail -15
elif [ "$1" = 2 ]; then
  python3 benchmarks/nvdec_decode.py --media "$V" "$TRTAPPS_DATA/media/MOT17-09.mp4" --streams 1 8 16 --frames 600 \
    --raw --threaded --json "$OUT/nvdec_decode.json" 2>&1 | tee "$OUT/nvdec_decode.log" | tail -25
  python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams 8,16 --json "$OUT/nvdec_pipeline.json" \
    2>&1 | tail -8
else
  python3 benchmarks/peer_ultralytics.py --model "$M" --video "$V" --out "$OUT/peer" 2>&1 | tail -15
  python3 benchmarks/reid_gpu.py --json "$OUT/reid_gpu.json" --markdown "$OUT/reid_gpu.md" 2>&1 | tail -15
fi
# few files come back per call: one archive of everything
(cd "$OUT" && tar czf /tmp/results.tgz . ; mv /tmp/results.tgz results.tgz; find . -mindepth 1 ! -name results.tgz -delete)
