"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): share of samples by thread, by leaf frame, by
innermost Python frame, and by the first native library call of interest (profiles taken with ``--native``).

``--split TEXT=NAME`` summarises the stacks that contain TEXT apart, as NAME (the others as ``--rest``), e.g.
the decoding worker processes of a ``--subprocesses`` profile: ``--split nvdec_worker=worker --rest pipeline``.

Usage: ``python benchmarks/device/spy_summary.py PROFILE.txt [--top 20] [--split TEXT=NAME [--rest NAME]]``
"""

from __future__ import annotations

import argparse
import collections
import gzip
import re
import sys

#: native calls worth naming when a profile has native frames: CUDA, NVDEC, FFmpeg and the kernel's waits
LIBRARY = re.compile(r"cuvid|cuStream|cuEvent|cuMemcpy|cuCtx|cuLaunch|cuGraph|av_read|av_bsf|Decode|ioctl|futex|"
                     r"sched_yield|poll|recv|send|pthread_cond")


def _name(frame: str) -> str:
    return re.sub(r" \(.*\)$", "", frame)[:120]


def read_stacks(path: str) -> list[tuple[list[str], int]]:
    """``(frames, samples)`` per line of a collapsed-stack file (gzipped when its name ends in ``.gz``)."""
    stacks = []
    with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as lines:
        for line in lines:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack and count.isdigit():
                stacks.append((stack.split(";"), int(count)))
    return stacks


def summarise(title: str, stacks: list[tuple[list[str], int]], top: int, of: int | None = None) -> str:
    """The summary of *stacks*; *of*: the samples of the whole profile, to give this part's share of it."""
    threads: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    python: collections.Counter[str] = collections.Counter()
    library: collections.Counter[str] = collections.Counter()
    total = sum(n for _, n in stacks)
    for frames, n in stacks:
        if frames[0].startswith(("thread ", "process ")):
            threads[frames[0][:80]] += n
        leaf[_name(frames[-1])] += n
        inner = next((f for f in reversed(frames) if ".py:" in f), "?")
        python[re.sub(r"^.*?([\w.<>]+ \()", r"\1", inner)[:120]] += n
        named = next((f for f in frames if ".py:" not in f and LIBRARY.search(f)), None)
        if named is not None:
            library[_name(named)] += n
    share = f" ({total / of:.0%} of all)" if of else ""
    out = [f"== {title}: {total} samples{share}"]
    for heading, counter in (("by thread", threads), ("by leaf frame", leaf), ("by innermost Python frame", python),
                             ("by first native library call", library)):
        if counter:
            out.append(f"  -- {heading}")
            out.extend(f"  {n / total:6.1%} {key}" for key, n in counter.most_common(top))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--split", metavar="TEXT=NAME", help="summarise the stacks containing TEXT apart, as NAME")
    parser.add_argument("--rest", default="other", help="with --split: the name of the other stacks")
    args = parser.parse_args(argv)
    for path in args.profiles:
        stacks = read_stacks(path)
        if not args.split:
            print(summarise(path, stacks, args.top))
            continue
        text, _, name = args.split.partition("=")
        parts = {name or text: [s for s in stacks if any(text in f for f in s[0])],
                 args.rest: [s for s in stacks if not any(text in f for f in s[0])]}
        of = sum(n for _, n in stacks)
        for part, chosen in sorted(parts.items(), key=lambda item: -sum(n for _, n in item[1])):
            if chosen:
                print(summarise(f"{path}: {part}", chosen, args.top, of))
    return 0


if __name__ == "__main__":
    sys.exit(main())
