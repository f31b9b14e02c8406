#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: benchmarks/device/batch_profile.py (the host CPU per frame of
# one batch on the GPU data path, NV12 frames, CUDA graphs) on each code tree in TREES (default "abtest_base ."),
# alternating, ROUNDS times (default 3), in one call: one line per run. Put an older tree beside the working tree
# first (rm -rf abtest_base && mkdir abtest_base && git archive REV trtapps plugins | tar x -C abtest_base).
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/${VIDEO:-face_tracker.mp4}
BASEPATH="$PYTHONPATH"
for round in $(seq 1 "${1:-3}"); do
  for tree in ${TREES:-abtest_base .}; do
    if [ "$tree" = . ]; then name=new; P="$BASEPATH"; else name=$(basename "$tree"); P="$PWD/$tree:$PWD/$tree/plugins:$BASEPATH"; fi
    out="$OUT/batch_profile_${name}_$round.txt"
    PYTHONPATH="$P" python3 benchmarks/device/batch_profile.py --model "$M" --video "$V" --iters "${ITERS:-300}" \
      --out "$out" > /dev/null 2>&1
    echo "$name round $round: $(head -1 "$out" 2>/dev/null || echo 'no result')"
  done
done
