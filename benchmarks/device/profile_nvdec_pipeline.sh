#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: where the 8-stream NVDEC pipeline's process spends its time
# (decode_worker $WORKER, default process). py-spy twice: GIL holders (--gil) and every thread, idle included; the
# per-role summaries print here (benchmarks/device/stacks.py --roles), the collapsed stacks come back in $OUT.
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
SPY=/tmp/site/bin/py-spy
W=${WORKER:-process}
run() { python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams 8 --workers "$W" 2>&1 | grep -v "^{" | tail -3; }
$SPY record --gil --threads --format raw --rate 400 --nonblocking -o "$OUT/pipe_${W}_gil.txt" -- \
  python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams 8 --workers "$W" 2>&1 | grep -v "^{" | tail -4
echo "== GIL holders by role"; python3 benchmarks/device/stacks.py "$OUT/pipe_${W}_gil.txt" --roles --top 15
$SPY record --idle --threads --format raw --rate 200 --nonblocking -o "$OUT/pipe_${W}_wall.txt" -- \
  python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams 8 --workers "$W" 2>&1 | grep -v "^{" | tail -4
echo "== wall by role"; python3 benchmarks/device/stacks.py "$OUT/pipe_${W}_wall.txt" --roles --top 15
(cd "$OUT" && tar czf /tmp/results.tgz . ; mv /tmp/results.tgz results.tgz; find . -mindepth 1 ! -name results.tgz -delete)
