#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: one stream of NV12 frames already on the device ran the
# pipeline at 362 fps against 2,976 for eight (session 8). The NVDEC pipeline with one stream, then the one-stream
# device-frame run under py-spy (every thread, idle included), summarised per pipeline role.
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams 1 --workers thread \
  --json "$OUT/nvdec_pipeline_1.json" 2>&1 | grep -A2 "  N   worker"
python3 benchmarks/device/engine_under_decode.py --only-pipeline --model "$M" --video "$V" --streams 1 \
  --json "$OUT/pipeline_nv12_on_device_1.json" 2>&1 | grep -v "EP device"
/tmp/site/bin/py-spy record --idle --threads --format raw --rate 200 --nonblocking -o "$OUT/one_stream_wall.txt" -- \
  python3 benchmarks/device/engine_under_decode.py --only-pipeline --model "$M" --video "$V" --streams 1 2>&1 | grep pipeline
python3 benchmarks/device/stacks.py "$OUT/one_stream_wall.txt" --roles --top 12
python3 benchmarks/device/stacks.py "$OUT/one_stream_wall.txt" --within pipeline_without_decoding --top 25 | head -60
