#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: where level (iii) of `trtapps bench` spends its time.
# The preprocessing kernel's variants, the batch-32 pipeline at two run lengths, then the same run under py-spy
# twice: GIL holders only (--gil: what serialises the Python threads) and every thread, idle included (where
# each thread waits). Collapsed stacks go to $OUT (analyse them with benchmarks/device/stacks.py).
source benchmarks/device/setup.sh || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
python3 benchmarks/device/preprocess_variants.py --json "$OUT/preprocess_variants.json" 2>&1 | tail -12
python3 benchmarks/gpu_kernels.py --batch 32 --real --json "$OUT/gpu_kernels.json" 2>&1 | tail -8
bench() { python3 -m trtapps bench --model "$M" --video "$V" --backend onnxruntime_cuda --batch 32 --streams 1 "$@"; }
for n in ${FRAMES:-1024 default}; do
  if [ "$n" = default ]; then args=(); else args=(--frames "$n"); fi
  bench "${args[@]}" --json "$OUT/bench_$n.json" > "$OUT/bench_$n.log" 2>&1
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=d['levels'][0]; s=d['streams'][0]; print(sys.argv[1], 'frames', r['pipeline']['frames'], '(i)', r['i_runner_img_s'], '(iii)', r['iii_pipeline_img_s'], 'iii/i', r['ratio_iii_i'], 'stream run', s['aggregate_fps'], 'stages', r['pipeline']['stages_ms_per_frame'], 'cpu', r['pipeline']['cpu'])" "$OUT/bench_$n.json"
done
SPY=/tmp/site/bin/py-spy
$SPY record --gil --threads --format raw --rate 400 --nonblocking -o "$OUT/gil.txt" -- \
  python3 -m trtapps bench --model "$M" --video "$V" --backend onnxruntime_cuda --batch 32 --streams 1 \
  --frames 16384 --json "$OUT/bench_gil.json" 2>&1 | tail -3
$SPY record --idle --threads --format raw --rate 200 --nonblocking -o "$OUT/wall.txt" -- \
  python3 -m trtapps bench --model "$M" --video "$V" --backend onnxruntime_cuda --batch 32 --streams 1 \
  --frames 16384 --json "$OUT/bench_wall.json" 2>&1 | tail -3
(cd "$OUT" && tar czf /tmp/results.tgz . ; mv /tmp/results.tgz results.tgz; find . -mindepth 1 ! -name results.tgz -delete)
