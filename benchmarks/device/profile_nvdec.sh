#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: where trtapps' NVDEC source spends the GIL, against
# PyNvVideoCodec's own decoder loop. Decode only, 16 streams of face_tracker.mp4, each run under py-spy twice: GIL
# holders only (--gil: what serialises the decoding threads) and every thread with native frames (what the
# decoding threads do in C). Prints the hottest functions (benchmarks/device/stacks.py); stacks come back in $OUT.
source benchmarks/device/setup.sh >/dev/null || exit 1
V=$TRTAPPS_DATA/media/face_tracker.mp4
SPY=/tmp/site/bin/py-spy
for decoder in nvdec nvdec_raw; do
  $SPY record --gil --threads --format raw --rate 400 --nonblocking -o "$OUT/nvdec_gil_$decoder.txt" -- \
    python3 benchmarks/nvdec_decode.py --media "$V" --streams 16 --frames 600 --decoders "$decoder" \
    --no-gil-probe --json "$OUT/nvdec_gil_$decoder.json" 2>&1 | tail -4
  echo "== GIL holders, $decoder"
  python3 benchmarks/device/stacks.py "$OUT/nvdec_gil_$decoder.txt" --top 30
done
$SPY record --native --threads --format raw --rate 200 -o "$OUT/nvdec_native.txt" -- \
  python3 benchmarks/nvdec_decode.py --media "$V" --streams 16 --frames 600 --decoders nvdec \
  --no-gil-probe --json "$OUT/nvdec_native.json" 2>&1 | tail -4
echo "== all samples with native frames, nvdec"
python3 benchmarks/device/stacks.py "$OUT/nvdec_native.txt" --top 30
