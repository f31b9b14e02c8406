"""Where the preprocessing kernel's time goes: the shipped kernel next to variants that drop one cost each.

An investigation tool for the GPU machine (not a product benchmark): the fp32 median per 1080p frame moved between
10.8 and 21.6 µs across sessions with the kernel unchanged, against an estimated memory floor of a few µs. Each
variant is the shipped source with one textual change, compiled with the same options, timed like
``benchmarks/gpu_kernels.py`` (CUDA events around each call, median). Only the shipped kernel is correct; the
variants exist to attribute time. Prints one line per variant and writes JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from trtapps.gpu.kernels import BASE_OPTIONS, build_source  # noqa: E402
from trtapps.ops.cuda.preprocess import _BLOCK, preprocess_batch  # noqa: E402
from trtapps.ops.letterbox import LetterboxTransform  # noqa: E402
from trtapps.ops.preprocess import rois_from_letterbox  # noqa: E402

SOURCES = ("common.cuh", "preprocess.cu")

#: variant name -> (text to find, replacement, extra NVRTC options, block); None: the shipped source
VARIANTS: dict[str, tuple[str, str, tuple[str, ...], tuple[int, int, int]] | None] = {
    "shipped": None,
    "pad only (write floor)": ("if (rx >= 0 && ry >= 0 && rx < roi_w && ry < roi_h) {", "if (false) {", (), _BLOCK),
    "no IEEE div (mul)": (
        "__fdiv_rn(__fsub_rn(__fmul_rn(v[c], scale), mean[c]), stdv[c])",
        "(v[c] * scale - mean[c]) * (1.0f / stdv[c])",
        (),
        _BLOCK,
    ),
    "fmad allowed": ("__fdiv_rn(", "__fdiv_rn(", ("--fmad=true",), _BLOCK),
    "block 64x4": ("__fdiv_rn(", "__fdiv_rn(", (), (64, 4, 1)),
    "block 128x2": ("__fdiv_rn(", "__fdiv_rn(", (), (128, 2, 1)),
    "block 16x16": ("__fdiv_rn(", "__fdiv_rn(", (), (16, 16, 1)),
}


def time_calls(cp: Any, fn: Any, stream: Any, iters: int = 50, warmup: int = 5) -> float:
    """Median GPU time of one call, ms."""
    for _ in range(warmup):
        fn()
    stream.synchronize()
    pairs = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(iters)]
    for start, end in pairs:
        start.record(stream)
        fn()
        end.record(stream)
    pairs[-1][1].synchronize()
    return statistics.median(cp.cuda.get_elapsed_time(s, e) for s, e in pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import cupy as cp

    batch = args.batch
    stream = cp.cuda.Stream(non_blocking=True)
    rng = np.random.default_rng(0)
    with stream:
        frames = [cp.asarray(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)) for _ in range(batch)]
        out = cp.empty((batch, 3, 640, 640), np.float32)
    rois = rois_from_letterbox([LetterboxTransform.compute((1080, 1920), (640, 640))] * batch)

    # the shipped path, parameters packed and uploaded per call, exactly as the pipeline calls it
    def shipped() -> None:
        preprocess_batch(frames, out, rois, swap_rb=True, std=255.0, pad_value=114, stream=stream)

    shipped()
    stream.synchronize()
    reference = out.copy()
    # the same parameters, uploaded once, for the variants (so they time the kernel alone)
    from trtapps.ops.cuda import preprocess as pp

    captured: dict[str, Any] = {}
    real_get = pp.get_function

    def capture(sources: Any, name: str, defines: Any = None) -> Any:
        fn = real_get(sources, name, defines)
        return _Spy(fn, captured)

    pp.get_function = capture  # type: ignore[assignment]
    try:
        shipped()
    finally:
        pp.get_function = real_get  # type: ignore[assignment]
    kernel_args = captured["args"]
    grid_for = lambda block: ((640 + block[0] - 1) // block[0], (640 + block[1] - 1) // block[1], batch)  # noqa: E731

    rows = [{"variant": "shipped, with parameter upload (pipeline call)", "us_per_frame": 1000 * time_calls(cp, shipped, stream) / batch}]
    source = build_source(SOURCES, {"OUT_FP16": 0})
    for name, change in VARIANTS.items():
        text, options, block = source, (), _BLOCK
        if change is not None:
            find, replace, options, block = change
            if find not in text:
                raise SystemExit(f"variant {name!r}: text not found")
            text = text.replace(find, replace)
        module = cp.RawModule(code=text, options=(*BASE_OPTIONS, *options))
        kernel = module.get_function("letterbox_normalize")

        def launch(kernel: Any = kernel, block: tuple[int, int, int] = block) -> None:
            kernel(grid_for(block), block, kernel_args, stream=stream)

        out.fill(float("nan"))
        launch()
        stream.synchronize()
        same = bool(cp.array_equal(out, reference))
        us = 1000 * time_calls(cp, launch, stream) / batch
        rows.append({"variant": name, "us_per_frame": us, "bit_exact": same})
    props = cp.cuda.runtime.getDeviceProperties(0)
    doc = {"device": props["name"].decode(), "batch": batch, "rows": rows}
    for row in rows:
        print(f"{row['variant']:<50} {row['us_per_frame']:8.2f} us/frame  exact={row.get('bit_exact', '-')}")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


class _Spy:
    """Records the argument tuple of one kernel launch and makes the launch."""

    def __init__(self, fn: Any, into: dict[str, Any]) -> None:
        self.fn, self.into = fn, into

    def __call__(self, grid: Any, block: Any, args: Any, **kw: Any) -> Any:
        self.into["args"] = args
        return self.fn(grid, block, args, **kw)


if __name__ == "__main__":
    raise SystemExit(main())
