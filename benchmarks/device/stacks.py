"""Summarise py-spy's collapsed stacks (``--format raw``): samples per thread, then the hottest functions.

Usage: ``python benchmarks/device/stacks.py gil.txt [--thread NAME] [--within FUNC] [--top N]``. "self" counts the
samples whose innermost frame is the function, "total" those with the function anywhere on the stack (once per
sample). ``--within`` keeps only samples whose stack passes through FUNC (e.g. ``full_pipeline``). ``--roles``
groups the samples by the pipeline thread they belong to, told by their stacks (py-spy's thread names go stale
when thread ids are reused): copy threads, the inference worker, the source readers, the consumer, other.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--thread", help="only threads whose name or id contains this")
    parser.add_argument("--within", help="only samples whose stack passes through this function")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--roles", action="store_true", help="hottest innermost frames per pipeline role")
    args = parser.parse_args(argv)
    if args.roles:
        return roles(args.file, args.top)
    threads: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in args.file.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
        funcs = [re.sub(r" \(.*\)$", "", f) for f in frames[1:]] if thread != "?" else frames
        if args.thread and args.thread not in thread:
            continue
        if args.within and not any(args.within in f for f in funcs):
            continue
        samples += count
        threads[thread] += count
        if funcs:
            self_[frames[-1]] += count
        for f in set(frames[1:]):
            total[f] += count
    print(f"{samples} samples")
    for name, n in threads.most_common(20):
        print(f"  {100 * n / samples:5.1f}%  {name}")
    print("self:")
    for name, n in self_.most_common(args.top):
        print(f"  {100 * n / samples:5.1f}%  {name[:150]}")
    print("total:")
    for name, n in total.most_common(args.top):
        print(f"  {100 * n / samples:5.1f}%  {name[:150]}")
    return 0


def role_of(stack: str) -> str:
    """The pipeline thread a collapsed stack belongs to."""
    if "DeviceFrameStager._copy" in stack or ("concurrent/futures/thread.py" in stack and "Pipeline" not in stack):
        return "copy"
    if "Pipeline._work" in stack:
        return "worker"
    if "Batcher._read" in stack:
        return "reader"
    if "measure_pipeline" in stack or "pipeline_fps" in stack:
        return "consumer"
    return "other"


def roles(path: Path, top: int) -> int:
    per_role: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")[1:]
        role = role_of(";".join(frames))
        totals[role] += int(count_text)
        per_role[role][frames[-1] if frames else "?"] += int(count_text)
    for role in ("consumer", "worker", "reader", "copy"):
        print(f"== {role}: {totals[role]} samples")
        for name, n in per_role[role].most_common(top):
            print(f"  {100 * n / max(1, totals[role]):5.1f}% {n:6d} {name[:140]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
