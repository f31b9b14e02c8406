"""A CUDA client that only waits: tiny GPU kernels, each followed by a blocking-sync event wait, for SECONDS.

Used beside ``batch_profile.py`` under one CUDA MPS daemon, to see whether another process's blocking waits cost
this process's CUDA event-handler thread CPU (decoding processes wait once or twice per picture).
Usage: ``python benchmarks/device/wait_noise.py SECONDS`` (prints the waits per second it made).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parents[1] / "tests"))  # gpu_spin: the tests' GPU busy-wait kernel


def main(seconds: float) -> int:
    import cupy

    from gpu_spin import busy
    from trtapps.gpu.device import configure_host_wait

    configure_host_wait(0)
    stream = cupy.cuda.Stream(non_blocking=True)
    event = cupy.cuda.Event(block=True, disable_timing=True)
    end, waits = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        busy(cupy, stream, 0.02)
        event.record(stream)
        event.synchronize()
        waits += 1
    print(f"wait_noise: {waits / seconds:.0f} blocking waits per second")
    return 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1])))
