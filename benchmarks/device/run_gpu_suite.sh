#!/usr/bin/env bash
# Everything the GPU issue asks to run on the GPU machine, in one go: the gpu-marked tests, the runner tests,
# the kernel benchmark and the three-level pipeline benchmark. Logs and JSON go to $OUT.
source benchmarks/device/setup.sh || exit 1
set -o pipefail
python3 -m pytest -m "gpu or tensorrt" tests/gpu tests/unit/test_tensorrt_api.py -rs -p no:cacheprovider -q \
  2>&1 | tee "$OUT/gpu_tests.log" | tail -25
python3 benchmarks/gpu_kernels.py --batch 32 --real --json "$OUT/gpu_kernels.json" 2>&1 | tail -12
python3 benchmarks/gpu_pipeline.py --model .gpudata/models/yolov8n_dequant.onnx \
  --video .gpudata/media/face_tracker.mp4 --json "$OUT/gpu_pipeline.json" 2>&1 | tee "$OUT/gpu_pipeline.log" | tail -12
