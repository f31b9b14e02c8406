"""When does a process join a CUDA MPS daemon that it starts itself? (GPU machine, after stage.sh)

``python benchmarks/device/mps_attach.py fresh|after_init|after_context``: starts a user-level MPS control daemon
with private pipe/log folders, points this process at it (``CUDA_MPS_PIPE_DIRECTORY``) and then does CUDA work:

* ``fresh``: nothing CUDA happened before;
* ``after_init``: ``cuInit`` and ``cudaGetDeviceCount`` ran first (what choosing a backend does);
* ``after_context``: a CUDA context existed first (what building a GPU runner does).

It prints whether the daemon started an MPS server for this process (``get_server_list``) and ``nvidia-smi``'s
process table (an MPS client shows type ``M+C``), then tells the daemon to quit. This decides whether trtapps could start
MPS for a run from its configuration, and how early it would have to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def control(command: str, env: dict[str, str]) -> str:
    done = subprocess.run(["nvidia-cuda-mps-control"], input=command + "\n", env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    return (done.stdout + done.stderr).strip()


def main() -> None:
    mode = sys.argv[1]
    if mode in ("after_init", "after_context"):
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        if mode == "after_context":
            cupy.ones(8).sum().item()
    pipe, log = tempfile.mkdtemp(prefix="mps-pipe-"), tempfile.mkdtemp(prefix="mps-log-")
    env = dict(os.environ, CUDA_MPS_PIPE_DIRECTORY=pipe, CUDA_MPS_LOG_DIRECTORY=log)
    subprocess.run(["nvidia-cuda-mps-control", "-d"], env=env, check=True)
    os.environ["CUDA_MPS_PIPE_DIRECTORY"], os.environ["CUDA_MPS_LOG_DIRECTORY"] = pipe, log
    try:
        import cupy

        total = float(cupy.arange(1000, dtype=cupy.float32).sum().item())
        with cupy.cuda.Device(0):
            _free, whole = cupy.cuda.runtime.memGetInfo()
        servers = control("get_server_list", env)
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False).stdout
        rows = [line for line in smi.splitlines() if "python" in line or "mps" in line.lower()]
        print(f"{mode}: sum {total:.0f}, MPS servers: {servers or 'none'}; memGetInfo total {whole / 2**30:.1f} GiB")
        print("\n".join(rows) or "(no process rows)")
    finally:
        # quit waits until the daemon's clients have gone, this process among them: send it and do not wait
        # (the 12:49 run waited and timed out after printing its findings)
        quitter = subprocess.Popen(["nvidia-cuda-mps-control"], stdin=subprocess.PIPE, env=env,
                                   start_new_session=True)
        assert quitter.stdin is not None
        quitter.stdin.write(b"quit\n")
        quitter.stdin.close()


if __name__ == "__main__":
    main()
