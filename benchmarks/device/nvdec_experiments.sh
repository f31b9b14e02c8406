#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: what limits the 8-stream NVDEC pipeline (issue 7).
# (1) decode only with the streams spread over processes (is it the GIL or NVDEC?), (2) the pipeline at Python's
# default thread switch interval and shorter ones, (3) the 8-stream pipeline under py-spy (GIL holders; every
# thread, idle included). Logs and collapsed stacks go to $OUT.
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
python3 benchmarks/device/nvdec_processes.py --media "$V" "$TRTAPPS_DATA/media/MOT17-09.mp4" \
  --layouts ${LAYOUTS:-1x8 8x1 2x4 1x16 16x1 4x4} --json "$OUT/nvdec_processes.json" 2>&1 | grep -v Warning
for si in ${INTERVALS:-default 0.001 0.0002}; do
  if [ "$si" = default ]; then a=(); else a=(--switch-interval "$si"); fi
  python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams 8 "${a[@]}" \
    --json "$OUT/nvdec_pipeline_si_$si.json" 2>&1 | tail -3
done
if [ -n "${PROFILE:-1}" ]; then
  SPY=/tmp/site/bin/py-spy
  $SPY record --gil --threads --format raw --rate 400 --nonblocking -o "$OUT/pipe8_gil.txt" -- \
    python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams 8 2>&1 | tail -3
  echo "== GIL holders"; python3 benchmarks/device/stacks.py "$OUT/pipe8_gil.txt" --top 40
  $SPY record --idle --threads --format raw --rate 200 --nonblocking -o "$OUT/pipe8_wall.txt" -- \
    python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams 8 2>&1 | tail -3
fi
(cd "$OUT" && tar czf /tmp/results.tgz . ; mv /tmp/results.tgz results.tgz; find . -mindepth 1 ! -name results.tgz -delete)
