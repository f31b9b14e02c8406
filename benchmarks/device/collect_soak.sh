#!/usr/bin/env bash
# Waits for the soak started by run_gpu_tests.sh (at most $1 seconds, default 560) and copies its results to $OUT.
deadline=$(( $(date +%s) + ${1:-560} ))
while kill -0 "$(cat /tmp/soak/pid)" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
cp /tmp/soak/soak_gpu.* "$OUT/" 2>/dev/null
tail -30 /tmp/soak/soak_gpu.log
