"""Host CPU spent by one thread waiting for the GPU, per way of waiting, with and without CUDA MPS.

Profiles of the decoding processes (session 13) put a quarter of their on-CPU samples inside
``cuEventSynchronize`` of a blocking-sync event, which should sleep. This measures what each way of waiting costs:
a kernel that keeps the GPU busy for ``--ms`` milliseconds is launched, then the thread waits for it, ``--waits``
times; CPU = the waiting thread's CPU time (``time.thread_time_ns``, user + system) over the waits, less the
same loop with no wait (launch and record only). Ways:

* ``event_block``: ``cupy.cuda.Event(block=True)`` recorded and synchronized (trtapps' waits);
* ``event_spin``: an event without the blocking-sync flag;
* ``stream``: ``Stream.synchronize()`` (follows the context's scheduling flag);
* ``poll``: ``Event.done`` polled with ``time.sleep(--poll-us)`` in between.

Each condition runs in a fresh process (the context's scheduling flag and MPS membership are fixed when CUDA
starts): ``TRTAPPS_CUDA_WAIT`` = ``block`` (trtapps' default) or ``auto``, without MPS and then as an MPS client
(the daemon started by :func:`trtapps.gpu.mps.start_for_run`).

Usage (GPU machine)::

    python benchmarks/device/wait_cpu.py --json "$OUT/wait_cpu.json"
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parents[1] / "tests"))  # gpu_spin: the tests' GPU busy-wait kernel

WAYS = ("event_block", "event_spin", "stream", "poll")


def _measure(conn: Any, host_wait: str, mps: bool, ms_list: list[float], waits: int, poll_us: float) -> None:
    try:
        os.environ["TRTAPPS_CUDA_WAIT"] = host_wait
        import cupy

        from gpu_spin import busy
        from trtapps.gpu.device import configure_host_wait, host_wait_flags

        configure_host_wait(0)
        stream = cupy.cuda.Stream(non_blocking=True)
        busy(cupy, stream, 0.01)  # compile the kernel
        stream.synchronize()
        rows = []
        for ms in ms_list:
            for way in ("none", *WAYS):
                event = cupy.cuda.Event(block=way == "event_block", disable_timing=True)
                cpu0, wall0 = time.thread_time_ns(), time.perf_counter()
                for _ in range(waits):
                    busy(cupy, stream, ms)
                    event.record(stream)
                    if way in ("event_block", "event_spin"):
                        event.synchronize()
                    elif way == "stream":
                        stream.synchronize()
                    elif way == "poll":
                        while not event.done:
                            time.sleep(poll_us / 1e6)
                    elif way == "none":
                        pass
                cpu, wall = time.thread_time_ns() - cpu0, time.perf_counter() - wall0
                if way == "none":
                    stream.synchronize()
                rows.append({"ms": ms, "way": way, "cpu_us_per_wait": cpu / waits / 1e3,
                             "wall_ms_per_wait": 1e3 * wall / waits})
        base = {r["ms"]: r["cpu_us_per_wait"] for r in rows if r["way"] == "none"}
        for r in rows:
            r["wait_cpu_us"] = round(r["cpu_us_per_wait"] - base[r["ms"]], 2)
            r["wait_cpu_share"] = round(r["wait_cpu_us"] / (1e3 * r["ms"]), 4)
        conn.send({"host_wait": host_wait, "mps": mps, "flags": host_wait_flags(0), "rows": rows})
    except BaseException as exc:  # reported, the other conditions go on
        conn.send({"host_wait": host_wait, "mps": mps, "error": f"{type(exc).__name__}: {exc}"})


def _run(host_wait: str, mps: bool, args: argparse.Namespace) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_measure, args=(theirs, host_wait, mps, args.ms, args.waits, args.poll_us))
    child.start()
    result = ours.recv() if ours.poll(args.timeout) else {"host_wait": host_wait, "mps": mps, "error": "timeout"}
    child.join(10)
    if child.is_alive():
        child.kill()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ms", type=float, nargs="+", default=[0.05, 0.5, 5.0], help="GPU busy time per wait")
    parser.add_argument("--waits", type=int, default=200)
    parser.add_argument("--poll-us", type=float, default=100.0)
    parser.add_argument("--host-waits", nargs="+", default=["block", "auto"])
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = [_run(w, False, args) for w in args.host_waits]
    from trtapps.gpu import mps

    pipe = mps.start_for_run()
    if pipe is not None:
        results += [_run(w, True, args) for w in args.host_waits]
    else:
        results.append({"mps": True, "error": "no CUDA MPS daemon could be started"})
    print(f"{'mps':<4} {'wait':<6} {'flags':>5} {'gpu ms':>7} {'way':<12} {'cpu us/wait':>11} {'share':>7} "
          f"{'wall ms':>8}")
    for res in results:
        if "error" in res:
            print(f"{'yes' if res['mps'] else 'no':<4} {res.get('host_wait', '-'):<6} error: {res['error'][:100]}")
            continue
        for r in res["rows"]:
            if r["way"] == "none":
                continue
            print(f"{'yes' if res['mps'] else 'no':<4} {res['host_wait']:<6} {res['flags']:>5} {r['ms']:>7.2f} "
                  f"{r['way']:<12} {r['wait_cpu_us']:>11.1f} {r['wait_cpu_share']:>7.1%} {r['wall_ms_per_wait']:>8.3f}")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "wait_cpu", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                         time.gmtime()), "waits": args.waits, "poll_us": args.poll_us,
                                         "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
