#!/usr/bin/env bash
# The GPU soak (benchmarks/soak.py, 4 looping streams, ONNX Runtime CUDA), on the GPU machine after stage.sh:
#   run_soak.sh [M]          in this call: M minutes (default 9, so that loading and the drain fit one call)
#   run_soak.sh start [M]    in the background (default 10 minutes): a new process session (setsid) outlives its
#                            call and runs on while the machine stays held, i.e. while later calls follow
#   run_soak.sh wait         in a later call: wait for the background soak, then put its JSON and log in $OUT
# SOAK_ARGS: more benchmarks/soak.py arguments, e.g. "--decoder nvdec --decode-worker process" (NVDEC frames, the
# shared decoding processes).
# Only this process's GPU memory is sampled (nvidia-smi per pid), so other work may share the GPU meanwhile.
source benchmarks/device/setup.sh >/dev/null || exit 1
dir=/tmp/trtapps-soak
soak() {  # soak MINUTES JSON LOG
  python3 benchmarks/soak.py --minutes "$1" --backend onnxruntime_cuda --streams 4 ${SOAK_ARGS:-} --json "$2" > "$3" 2>&1
}
report() {  # report LOG
  grep -v "co located POCs" "$1" | tail -40
}
case "${1:-9}" in
  start)
    rm -rf "$dir" && mkdir -p "$dir"
    export -f soak
    export SOAK_ARGS
    setsid nohup bash -c "soak ${2:-10} $dir/soak_gpu.json $dir/soak_gpu.log; echo \$? > $dir/rc" \
      < /dev/null > /dev/null 2>&1 &
    sleep 5
    echo "soak started in the background ($(date -u +%H:%M:%S) UTC, ${2:-10} minutes): $(pgrep -f benchmarks/soak.py | head -1)"
    ;;
  wait)
    [ -d "$dir" ] || { echo "no background soak on this machine (it went back, or start never ran)"; exit 1; }
    for _ in $(seq 570); do [ -f "$dir/rc" ] && break; sleep 1; done
    if [ ! -f "$dir/rc" ]; then
      echo "the soak is still running at $(date -u +%H:%M:%S) UTC; call wait again"; tail -3 "$dir/soak_gpu.log"; exit 2
    fi
    cp "$dir"/soak_gpu.* "$OUT"/
    echo "soak exit: $(cat "$dir/rc")"
    report "$dir/soak_gpu.log"
    ;;
  *)
    soak "$1" "$OUT/soak_gpu.json" "$OUT/soak_gpu.log"
    report "$OUT/soak_gpu.log"
    ;;
esac
