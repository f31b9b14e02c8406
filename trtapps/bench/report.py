"""Reading a ``trtapps bench`` document: rich tables for the terminal and PNG plots.

The tables and the plots are drawn from the JSON document alone, so a result file committed from another
machine can be shown again (``trtapps bench --show result.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from trtapps.bench.levels import BenchError


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _gpu_peak(row: dict[str, Any]) -> str:
    mem = row.get("gpu_memory")
    if not mem:
        return "–"
    return f"{mem['peak']['device_used_mib']:,.0f}"


def headline(doc: dict[str, Any]) -> str:
    """One line: model, backend, device, input frames."""
    device = doc.get("device", {})
    where = device.get("name", "?") if device.get("kind") == "gpu" else f"CPU {device.get('name', '?')}"
    cores = doc.get("host", {}).get("cores")
    inp = doc.get("input", {})
    source = inp.get("video") or inp.get("images") or "frames"
    return (
        f"{Path(str(doc.get('model', '?'))).name} · {doc.get('app')} · backend {doc.get('backend')} · {where}"
        f"{f' · {cores} host cores' if cores else ''} · {inp.get('distinct_frames')} frames of {inp.get('size')} "
        f"from {source}"
    )


def levels_table(doc: dict[str, Any]) -> Table:
    """Images/s of the three levels per batch, their ratios, and what the full pipeline cost per frame.

    Columns that only a GPU backend fills ((ii), its ratio, GPU memory) are left out of a CPU run's table.
    """
    rows = doc.get("levels", [])
    gpu = any(r["ii_runner_gpu_prepost_img_s"] is not None or r.get("gpu_memory") for r in rows)
    levels = "(i) runner only · (ii) + GPU pre/post from pinned memory · " if gpu else "(i) runner only · "
    table = Table(
        title="three levels, images/s",
        caption=f"{levels}(iii) full pipeline · latency: source yield → result · CPU: process time per frame",
        header_style="bold",
    )
    columns = ["batch", "(i)", "(ii)", "(iii)", "ii/i", "iii/i", "p50 ms", "p99 ms", "CPU ms/frame", "GPU MiB"]
    if not gpu:
        columns = [c for c in columns if c not in ("(ii)", "ii/i", "GPU MiB")]
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        run = row["pipeline"]
        cells = {
            "batch": str(row["batch"]),
            "(i)": _num(row["i_runner_img_s"]),
            "(ii)": _num(row["ii_runner_gpu_prepost_img_s"]),
            "(iii)": _num(row["iii_pipeline_img_s"]),
            "ii/i": _num(row["ratio_ii_i"], 3),
            "iii/i": _num(row["ratio_iii_i"], 3),
            "p50 ms": _num(run["latency"]["p50_ms"], 2),
            "p99 ms": _num(run["latency"]["p99_ms"], 2),
            "CPU ms/frame": _num(run["cpu"]["ms_per_frame"], 3),
            "GPU MiB": _gpu_peak(row),
        }
        table.add_row(*(cells[c] for c in columns))
    return table


def streams_table(doc: dict[str, Any]) -> Table:
    """Aggregate frames/s of N streams through one pipeline, with latency and cost per frame."""
    rows = doc.get("streams", [])
    gpu = any(r.get("gpu_memory") for r in rows)
    table = Table(title="N streams through one pipeline", header_style="bold")
    columns = ["streams", "batch", "frames", "total fps", "fps/stream", "p50 ms", "p99 ms", "CPU ms/frame",
               "GPU MiB"]
    if not gpu:
        columns.remove("GPU MiB")
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        run = row["pipeline"]
        cells = {
            "streams": str(row["streams"]),
            "batch": str(row["batch"]),
            "frames": str(run["frames"]),
            "total fps": _num(row["aggregate_fps"]),
            "fps/stream": _num(row["fps_per_stream"]),
            "p50 ms": _num(run["latency"]["p50_ms"], 2),
            "p99 ms": _num(run["latency"]["p99_ms"], 2),
            "CPU ms/frame": _num(run["cpu"]["ms_per_frame"], 3),
            "GPU MiB": _gpu_peak(row),
        }
        table.add_row(*(cells[c] for c in columns))
    return table


def print_report(doc: dict[str, Any], console: Console) -> None:
    console.print(headline(doc))
    console.print(levels_table(doc))
    if doc.get("streams"):
        console.print(streams_table(doc))
    levels = doc.get("levels", [])
    if levels and levels[0]["i_input"] == "host":
        console.print("[dim]CPU backend: (i) feeds the runner inputs in host memory; (ii) needs a GPU backend[/]")
    console.print(f"[dim]{doc.get('command')}[/]")


# -- plots ------------------------------------------------------------------------------------------------------------
def require_matplotlib() -> None:
    """Raise one line naming the extra to install when matplotlib is missing (checked before measuring)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError("--plots needs matplotlib: pip install 'trtapps[bench]' (or leave out --plots)") from None


def write_plots(doc: dict[str, Any], folder: Path) -> list[Path]:
    """PNG files: throughput vs batch size per level, latency percentiles per batch, and N-stream throughput."""
    require_matplotlib()
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    parts = headline(doc).split(" · ")
    title = " · ".join(parts[:3]) + "\n" + " · ".join(parts[3:])  # what ran, then where and on which frames
    levels = doc.get("levels", [])
    if levels:
        batches = [r["batch"] for r in levels]
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.add_subplot()
        for key, label in (("i_runner_img_s", "(i) runner only"),
                           ("ii_runner_gpu_prepost_img_s", "(ii) runner + GPU pre/post"),
                           ("iii_pipeline_img_s", "(iii) full pipeline")):
            points = [(b, r[key]) for b, r in zip(batches, levels) if r[key] is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("batch size")
        ax.set_ylabel("images / s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(title, fontsize=8)
        written.append(_save(fig, folder / "throughput_vs_batch.png"))

        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.add_subplot()
        percentiles = ("p50_ms", "p90_ms", "p99_ms")
        width = 0.8 / len(percentiles)
        for k, key in enumerate(percentiles):
            values = [r["pipeline"]["latency"][key] or 0.0 for r in levels]
            ax.bar([i + (k - 1) * width for i in range(len(levels))], values, width, label=key[:-3])
        ax.set_xticks(range(len(levels)), [str(b) for b in batches])
        ax.set_xlabel("batch size")
        ax.set_ylabel("latency per frame, ms (source yield → result)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
        ax.set_title(title, fontsize=8)
        written.append(_save(fig, folder / "latency_per_batch.png"))
    streams = doc.get("streams", [])
    if streams:
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.add_subplot()
        counts = [r["streams"] for r in streams]
        ax.plot(counts, [r["aggregate_fps"] for r in streams], marker="o", label="aggregate")
        ax.plot(counts, [r["fps_per_stream"] for r in streams], marker="s", label="per stream")
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlabel(f"streams (one pipeline, batch {streams[0]['batch']})")
        ax.set_ylabel("frames / s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(title, fontsize=8)
        written.append(_save(fig, folder / "streams_fps.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    return path
