#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: the gpu/tensorrt-marked tests in two parts that each fit
# the 10-minute limit of a call (the whole set ran past it on 2026-11-24 and its log was lost):
#   run_gpu_tests.sh 1   tests/gpu (kernels, runners, staging, NVDEC, CUDA graphs, trackers, ReID)
#   run_gpu_tests.sh 2   everything else marked gpu/tensorrt (evaluation parity, fp16/int8, TensorRT)
# The log and evaluation JSON come back as one archive (few files come back per call).
source benchmarks/device/setup.sh || exit 1
export TRTAPPS_BENCH_OUT="$OUT"
part="${1:-1}"
shift || true
if [ "$part" = 1 ]; then
  targets=(tests/gpu)
else
  targets=(tests --ignore=tests/gpu)
fi
timeout 560 python3 -m pytest -m "gpu or tensorrt" "${targets[@]}" -rs -p no:cacheprovider -q --timeout 300 "$@" \
  > "$OUT/gpu_tests_$part.log" 2>&1
echo "pytest exit: $?" >> "$OUT/gpu_tests_$part.log"
tail -40 "$OUT/gpu_tests_$part.log"
# the archive is written outside $OUT first (tar of a folder it writes into fails with "file changed as we read it")
(cd "$OUT" && tar czf /tmp/results.tgz . ; mv /tmp/results.tgz results.tgz
 find . -mindepth 1 ! -name results.tgz ! -name "gpu_tests_*.log" -delete)
