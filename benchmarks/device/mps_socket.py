"""What kind of Unix socket the MPS control daemon listens on (GPU machine): starts a private daemon, connects to
its ``control`` socket as a stream, seqpacket and datagram client, prints each outcome, then stops the daemon.
``trtapps.gpu.mps.control_pipe`` tells a live daemon from a dead one's leftover socket by such a connection."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time

folder = tempfile.mkdtemp(prefix="mps")
env = dict(os.environ, CUDA_MPS_PIPE_DIRECTORY=folder, CUDA_MPS_LOG_DIRECTORY=folder)
subprocess.run(["nvidia-cuda-mps-control", "-d"], env=env, check=True)
control = os.path.join(folder, "control")
for _ in range(100):
    if os.path.exists(control):
        break
    time.sleep(0.05)
for kind in ("SOCK_STREAM", "SOCK_SEQPACKET", "SOCK_DGRAM"):
    probe = socket.socket(socket.AF_UNIX, getattr(socket, kind))
    try:
        probe.connect(control)
        print(kind, "connected")
    except OSError as exc:
        print(kind, "failed:", exc.errno, exc)
    finally:
        probe.close()
os.environ.update(CUDA_MPS_PIPE_DIRECTORY=folder)
from trtapps.gpu.mps import control_pipe  # noqa: E402

print("control_pipe():", control_pipe())
subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", text=True, env=env, timeout=30, check=False)
time.sleep(1)
print("after quit, control exists:", os.path.exists(control), "control_pipe():", control_pipe())
