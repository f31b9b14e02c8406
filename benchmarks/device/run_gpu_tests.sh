#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: every gpu/tensorrt-marked test, with the 10-minute GPU
# soak started beside them (it judges its own process's memory, so the tests do not disturb its verdict).
# benchmarks/device/collect_soak.sh gathers the soak's results in a later call.
source benchmarks/device/setup.sh || exit 1
mkdir -p /tmp/soak
if [ ! -f /tmp/soak/started ]; then
  touch /tmp/soak/started
  nohup python3 benchmarks/soak.py --minutes 10 --backend onnxruntime_cuda --streams 4 \
    --json /tmp/soak/soak_gpu.json > /tmp/soak/soak_gpu.log 2>&1 &
  echo $! > /tmp/soak/pid
fi
python3 -m pytest -m "gpu or tensorrt" tests -rs -p no:cacheprovider -q --timeout 300 "$@" \
  2>&1 | tee "$OUT/gpu_tests.log" | tail -40
tail -3 /tmp/soak/soak_gpu.log
