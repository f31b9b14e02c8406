#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: the decoding processes' host CPU split by variant and CUDA
# wait mode (decode_cpu.py), then native py-spy profiles (all frames, C and C++ included) of one process decoding
# with PyNvVideoCodec alone (raw) and with trtapps' source, to see which native calls hold the CPU.
source benchmarks/device/setup.sh >/dev/null || exit 1
V=$TRTAPPS_DATA/media/face_tracker.mp4
python3 benchmarks/device/decode_cpu.py --video "$V" --procs ${PROCS:-1 8} ${VARIANTS:+--variants $VARIANTS} \
  --json "$OUT/decode_cpu.json" 2>&1 | grep -v "plugin EP"
SPY=/tmp/site/bin/py-spy
for variant in ${SPY_VARIANTS:-raw source}; do
  TRTAPPS_CUDA_WAIT=block $SPY record --native --rate 250 --format raw -o "$OUT/native_$variant.txt" -- python3 -c "
import sys; sys.path.insert(0, 'benchmarks/device'); import decode_cpu as d
d._set_wait('block', 0); d._decode('$variant', '$V', 3000, 0)" >/dev/null 2>&1 || echo "py-spy $variant failed"
  python3 benchmarks/device/spy_summary.py "$OUT/native_$variant.txt" --top 18
done
gzip -f "$OUT"/native_*.txt
