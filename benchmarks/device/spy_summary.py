"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): share of samples by thread, by leaf frame, by
innermost Python frame, and by the first native library call of interest (profiles taken with ``--native``).

Usage: ``python benchmarks/device/spy_summary.py PROFILE.txt [--top 20]``
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

#: native calls worth naming when a profile has native frames: CUDA, NVDEC, FFmpeg and the kernel's waits
LIBRARY = re.compile(r"cuvid|cuStream|cuEvent|cuMemcpy|cuCtx|cuLaunch|cuGraph|av_read|av_bsf|Decode|ioctl|futex|"
                     r"sched_yield|poll|recv|send|pthread_cond")


def _name(frame: str) -> str:
    return re.sub(r" \(.*\)$", "", frame)[:120]


def summarise(path: str, top: int) -> str:
    threads: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    python: collections.Counter[str] = collections.Counter()
    library: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            if frames[0].startswith(("thread ", "process ")):
                threads[frames[0][:80]] += n
            leaf[_name(frames[-1])] += n
            inner = next((f for f in reversed(frames) if ".py:" in f), "?")
            python[re.sub(r"^.*?([\w.<>]+ \()", r"\1", inner)[:120]] += n
            named = next((f for f in frames if ".py:" not in f and LIBRARY.search(f)), None)
            if named is not None:
                library[_name(named)] += n
    out = [f"== {path}: {total} samples"]
    for title, counter in (("by thread", threads), ("by leaf frame", leaf), ("by innermost Python frame", python),
                           ("by first native library call", library)):
        if counter:
            out.append(f"  -- {title}")
            out.extend(f"  {n / total:6.1%} {key}" for key, n in counter.most_common(top))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    for path in args.profiles:
        print(summarise(path, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
