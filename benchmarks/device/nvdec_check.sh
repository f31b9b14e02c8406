#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: the NVDEC tests, then the NVDEC pipeline benchmark for both
# decode workers (process, thread) at 8 and 16 streams. Env: STREAMS, WORKERS, CUDA_MPS=start (the benchmark starts
# its own MPS daemon, as a pipeline file's cuda_mps: start does), TESTS_EXTRA. Logs and JSON come back as one archive.
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
timeout ${TEST_TIMEOUT:-240} python3 -m pytest -m gpu tests/gpu/test_nvdec.py ${TESTS_EXTRA:-} -rs -p no:cacheprovider -q \
  --timeout 200 > "$OUT/gpu_tests_nvdec.log" 2>&1
echo "pytest exit: $?" >> "$OUT/gpu_tests_nvdec.log"
tail -15 "$OUT/gpu_tests_nvdec.log"
timeout ${BENCH_TIMEOUT:-300} python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams ${STREAMS:-8,16} \
  --workers ${WORKERS:-process,thread} --cuda-mps ${CUDA_MPS:-off} --json "$OUT/nvdec_pipeline.json" > "$OUT/nvdec_pipeline.log" 2>&1
echo "bench exit: $?" >> "$OUT/nvdec_pipeline.log"
grep -v "^{" "$OUT/nvdec_pipeline.log" | tail -14
(cd "$OUT" && tar czf /tmp/results.tgz . ; mv /tmp/results.tgz results.tgz; find . -mindepth 1 ! -name results.tgz -delete)
