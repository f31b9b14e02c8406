#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: the same benchmark on several code trees, alternating, in
# one call (runs on different calls, or different machines, are not comparable: the same code measured 0.55 and
# 0.94 of level (i) on 2026-11-24 with the host in different states). Before the call, put each older tree beside
# the working tree (untracked, so it travels with the checkout):
#   rm -rf abtest_old && mkdir abtest_old && git archive REV trtapps plugins | tar x -C abtest_old
# then `TREES="abtest_old ." bash ab_old_new.sh [ROUNDS]` (TREES default "abtest_old .", ROUNDS default 2; "."
# is the working tree). Default: `trtapps bench`, batch 32, one stream. MODE=nvdec measures
# benchmarks/nvdec_pipeline.py instead (STREAMS streams, default 16, decode_worker auto under the run's own MPS
# daemon, CUDA graphs): the pipeline's and the decoding processes' CPU per frame and the ratio; the decoding
# processes run the same code as their pipeline (they import trtapps from its directory). NEW_ARGS: extra
# nvdec_pipeline.py arguments for the working tree only (e.g. "--decode-processes 2"). Each run gets RUN_S seconds
# (default 240), then SIGABRT, on which Python writes every thread's stack into the log (PYTHONFAULTHANDLER); a run
# that writes no JSON prints the tail of its log instead of a row.
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
BASEPATH="$PYTHONPATH"
ROOT="$PWD"
for round in $(seq 1 "${1:-2}"); do
for tree in ${TREES:-abtest_old .}; do
  extra=""
  if [ "$tree" = . ]; then name=new; P="$BASEPATH"; extra="${NEW_ARGS:-}"; else name=$(basename "$tree"); P="$PWD/$tree:$PWD/$tree/plugins:$BASEPATH"; fi
  tag="${name}_$round"
  if [ "${MODE:-bench}" = nvdec ]; then
    json="$OUT/ab_nvdec_$tag.json"
    # in the tree's own folder: code trees before session 12 start their decoding workers with `python -m`,
    # which imports the trtapps of the working directory
    (cd "$tree" && PYTHONPATH="$P" PYTHONFAULTHANDLER=1 timeout -s ABRT -k 10 "${RUN_S:-240}" python3 \
      "$ROOT/benchmarks/nvdec_pipeline.py" --model "$M" --video "$V" --streams "${STREAMS:-16}" --workers auto \
      --cuda-mps start --cuda-graph $extra --json "$json") > "$OUT/ab_nvdec_$tag.log" 2>&1; rc=$?
    if [ ! -s "$json" ]; then echo "$tag: no result (exit $rc); log tail:"; grep -v "POCs" "$OUT/ab_nvdec_$tag.log" | tail -n 60; continue; fi
    python3 "$ROOT/benchmarks/device/nvdec_row.py" "$json" "$tag"
    continue
  fi
  json="$OUT/ab_$tag.json"
  PYTHONPATH="$P" timeout -k 10 "${RUN_S:-240}" python3 -m trtapps bench --model "$M" --video "$V" --backend onnxruntime_cuda --batch 32 --streams 1 --frames 8192 --json "$json" > "$OUT/ab_$tag.log" 2>&1; rc=$?
  if [ ! -s "$json" ]; then echo "$tag: no result (exit $rc); log tail:"; tail -n 15 "$OUT/ab_$tag.log"; continue; fi
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=d['levels'][0]; s=d['streams'][0]; print(sys.argv[2], 'frames', r['pipeline']['frames'], '(i)', r['i_runner_img_s'], '(ii)', r['ii_runner_gpu_prepost_img_s'], '(iii)', r['iii_pipeline_img_s'], 'iii/i', r['ratio_iii_i'], 'stream run', s['aggregate_fps'], 'stages', r['pipeline']['stages_ms_per_frame'], 'cpu', r['pipeline']['cpu']['ms_per_frame'])" "$json" "$tag"
done; done
