#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: the batch-32 pipeline of an older commit against the working
# tree, alternating, in one call (runs on different calls are not comparable: the same code measured 0.55 and 0.94
# of level (i) on 2026-11-24, with the host in different states). Before the call, put the older code beside the
# tree (untracked, so it travels with the checkout); `bash ab_old_new.sh [ROUNDS]` (default 2):
#   rm -rf abtest_old && mkdir abtest_old && git archive REV trtapps plugins | tar x -C abtest_old
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
NEWPATH="$PYTHONPATH"
OLDPATH="$PWD/abtest_old:$PWD/abtest_old/plugins:$PYTHONPATH"
for round in $(seq 1 "${1:-2}"); do
for which in old new; do
  if [ $which = old ]; then P="$OLDPATH"; else P="$NEWPATH"; fi
  PYTHONPATH="$P" python3 -m trtapps bench --model "$M" --video "$V" --backend onnxruntime_cuda --batch 32 --streams 1 --frames 8192 --json "$OUT/ab_${which}_$round.json" > "$OUT/ab_${which}_$round.log" 2>&1
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=d['levels'][0]; s=d['streams'][0]; print(sys.argv[2], 'frames', r['pipeline']['frames'], '(i)', r['i_runner_img_s'], '(ii)', r['ii_runner_gpu_prepost_img_s'], '(iii)', r['iii_pipeline_img_s'], 'iii/i', r['ratio_iii_i'], 'stream run', s['aggregate_fps'], 'stages', r['pipeline']['stages_ms_per_frame'], 'cpu', r['pipeline']['cpu']['ms_per_frame'])" "$OUT/ab_${which}_$round.json" "$which$round"
done; done
