#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: every gpu/tensorrt-marked test (evaluation JSON in $OUT).
source benchmarks/device/setup.sh || exit 1
export TRTAPPS_BENCH_OUT="$OUT"
python3 -m pytest -m "gpu or tensorrt" tests -rs -p no:cacheprovider -q --timeout 300 "$@" \
  2>&1 | tee "$OUT/gpu_tests.log" | tail -40
