#!/usr/bin/env bash
# Run on the GPU machine once per carried folder (calls back to back: its /tmp lives only while it stays warm).
#   .ortgpuN/part.*        -> /tmp/ortgpu; with all five there, ONNX Runtime GPU is joined and installed in /tmp/ortsite
#   .gpuN/{data,whl}/...   -> /tmp/stage/{data,whl}/...  (shared data and wheels, split to fit the 64 MiB carry limit)
# benchmarks/device/setup.sh then installs /tmp/stage/whl and points TRTAPPS_DATA at /tmp/stage/data.
set -euo pipefail
mkdir -p /tmp/ortgpu /tmp/stage
for d in .ortgpu*; do if [ -d "$d" ]; then cp "$d"/part.* /tmp/ortgpu/; fi; done
if [ -f .ortgpu5/WHEEL_NAME ]; then cp .ortgpu5/WHEEL_NAME /tmp/ortgpu/; fi
for d in .gpu[0-9]*; do if [ -d "$d" ]; then cp -r "$d"/. /tmp/stage/; fi; done
if [ "$(ls /tmp/ortgpu/part.* 2>/dev/null | wc -l)" -ge 5 ] && [ ! -d /tmp/ortsite ]; then
  name=$(cat /tmp/ortgpu/WHEEL_NAME)
  cat /tmp/ortgpu/part.0* > "/tmp/$name"
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/ortsite "/tmp/$name"
fi
du -sh /tmp/ortgpu /tmp/stage/* 2>/dev/null || true
