#!/usr/bin/env bash
# Source this on the GPU test machine (see ../shared/device/README.md): installs the carried wheels
# (.whl and /tmp/stage/whl: pydantic & co. plus the trtapps wheel for its entry points), ONNX Runtime GPU when it
# was staged in /tmp/ortsite (benchmarks/device/stage.sh), and the shared data (.gpudata or /tmp/stage/data).
wheels=$(ls .whl/*.whl /tmp/stage/whl/*.whl 2>/dev/null)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels || return 1
export PYTHONPATH="$PWD:$PWD/plugins:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
if [ -d /tmp/ortsite ]; then export PYTHONPATH="/tmp/ortsite:$PYTHONPATH"; fi
if [ -d /tmp/stage/data ]; then data=/tmp/stage/data; else data="$PWD/.gpudata"; fi
# tests find the shared files through TRTAPPS_DATA; some also read .gpudata/ by path
if [ ! -e .gpudata ]; then ln -s "$data" .gpudata; fi
export TRTAPPS_DATA="$data" TRTAPPS_CACHE=/tmp/trtapps-cache PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import onnxruntime as o, cupy, numpy; print('onnxruntime', o.__version__, o.get_available_providers()); print('cupy', cupy.__version__, 'numpy', numpy.__version__)" | tee -a "$OUT/device.txt"
