#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: the NVDEC pipeline benchmark with the decoding processes
# and the pipeline's process sharing the GPU through CUDA MPS (one server context: kernels of the processes run
# side by side instead of being time-sliced). The MPS control daemon is a user process started here with private
# pipe/log folders and stopped on exit; no GPU setting is changed. Env: STREAMS, WORKERS (default process,thread),
# SWITCH (GIL switch interval), TAG (suffix of the JSON/log names, so several runs fit one call).
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
export CUDA_MPS_PIPE_DIRECTORY=/tmp/trtapps-mps/pipe CUDA_MPS_LOG_DIRECTORY=/tmp/trtapps-mps/log
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
command -v nvidia-cuda-mps-control || { echo "no nvidia-cuda-mps-control here"; exit 1; }
nvidia-cuda-mps-control -d || { echo "MPS daemon did not start"; exit 1; }
trap 'echo quit | nvidia-cuda-mps-control; sleep 1; cat $CUDA_MPS_LOG_DIRECTORY/control.log | tail -5' EXIT
ls -l "$CUDA_MPS_PIPE_DIRECTORY"  # what decode_worker auto looks for (trtapps.gpu.mps.control_pipe)
python3 -c "from trtapps.gpu.mps import control_pipe as m; print('control_pipe():', m())"
name="nvdec_pipeline_mps${TAG:+_$TAG}"
timeout 400 python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams ${STREAMS:-8,16} \
  --workers ${WORKERS:-process,thread} ${SWITCH:+--switch-interval $SWITCH} --json "$OUT/$name.json" > "$OUT/$name.log" 2>&1
echo "bench exit: $?"
grep -v "^{\|never came\|POCs\|plugin EP" "$OUT/$name.log" | tail -14
