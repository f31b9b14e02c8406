#!/usr/bin/env bash
# On the GPU machine, after benchmarks/device/stage.sh: where the host CPU of the NVDEC pipeline goes. py-spy samples
# only threads on a CPU (no --idle), native frames included, in the pipeline's process and its decoding worker
# processes (--subprocesses), while benchmarks/nvdec_pipeline.py runs 8 streams under its own CUDA MPS daemon
# (decode_worker auto -> process). Summaries print here; the collapsed stacks come back in $OUT.
source benchmarks/device/setup.sh >/dev/null || exit 1
M=$TRTAPPS_DATA/models/yolov8n_dequant.onnx
V=$TRTAPPS_DATA/media/face_tracker.mp4
SPY=/tmp/site/bin/py-spy
$SPY record --subprocesses --threads --format raw --rate 200 --nonblocking -o "$OUT/cpu_raw.txt" -- \
  python3 benchmarks/nvdec_pipeline.py --model "$M" --video "$V" --streams ${STREAMS:-8} --workers auto \
  --cuda-mps start 2>&1 | grep -v "^{\|never came\|plugin EP" | tail -6
python3 - "$OUT/cpu_raw.txt" <<'PY'
import collections, re, sys
per_proc = collections.Counter(); self_ = collections.defaultdict(collections.Counter)
py = collections.defaultdict(collections.Counter)
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip("\n").rpartition(" ")
    if not stack:
        continue
    frames = stack.split(";")
    proc = "worker" if "nvdec_worker" in stack else "pipeline"
    per_proc[proc] += int(n)
    leaf = re.sub(r" \(.*\)$", "", frames[-1])
    self_[proc][leaf] += int(n)
    inner = next((f for f in reversed(frames) if ".py:" in f), "?")  # the innermost Python frame
    py[proc][re.sub(r"^.*?([\w.]+ \()", r"\1", inner)] += int(n)
total = sum(per_proc.values())
for proc, count in per_proc.most_common():
    print(f"== {proc}: {count} on-CPU samples ({count / total:.0%})")
    for leaf, n in self_[proc].most_common(20):
        print(f"  {n / count:6.1%} {leaf[:150]}")
    print(f"  -- by innermost Python frame")
    for frame, n in py[proc].most_common(20):
        print(f"  {n / count:6.1%} {frame[:150]}")
PY
(cd "$OUT" && tar czf /tmp/results.tgz . ; mv /tmp/results.tgz results.tgz; find . -mindepth 1 ! -name results.tgz -delete)
