"""``trtapps models list|pull|path|verify``: the model catalogue, the cache and verified downloads.

Thin commands over :mod:`trtapps.zoo`: ``list`` shows what each name is and where it would come from, ``pull``
fills the cache (resuming, verifying), ``path`` prints the file a config's ``model: NAME`` resolves to without
downloading anything, ``verify`` re-hashes local copies.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from trtapps.zoo import ZooModel

console = Console(stderr=True)
out = Console()

models_app = typer.Typer(
    name="models",
    help="The model catalogue: list names, download and verify them into the cache, print their paths.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to the root command."""
    app.add_typer(models_app, name="models")


@models_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="The catalogue table of docs/models.md (to regenerate it).")
    ] = False,
) -> None:
    """The catalogue: each name's app, input, license, how to get it and whether a local copy exists."""
    from trtapps.zoo import MODELS, find_local, sources
    from trtapps.zoo.catalog import how_to_get, input_text, markdown

    if as_markdown:
        typer.echo(markdown(), nl=False)
        return
    rows = []
    for entry in MODELS.values():
        local = find_local(entry)
        rows.append((entry, local))
    if as_json:
        typer.echo(json.dumps([
            {
                "name": e.name, "file": e.filename, "app": e.app, "variant": e.variant,
                "input_size": list(e.input_size) if e.input_size else None, "labels": e.labels,
                "license": e.license, "sha256": e.sha256, "size": e.size, "urls": sources(e), "export": e.export,
                "package": e.package[0] if e.package else None, "source": e.source, "sha256_note": e.sha256_note,
                "local": str(loc.path) if loc else None, "where": loc.where if loc else None,
            }
            for e, loc in rows
        ], indent=2))
        return
    table = Table(header_style="bold")
    table.add_column("name", no_wrap=True)
    for col in ("app", "input", "license", "get it", "sha256", "local copy"):
        table.add_column(col)
    for e, loc in rows:
        table.add_row(
            e.name, f"{e.app} ({e.variant})" if e.variant else e.app, input_text(e), e.license, how_to_get(e),
            "pinned" if e.sha256 else "[yellow]none[/]", f"{loc.where}" if loc else "-",
        )
    out.print(table)
    exports = [e for e, loc in rows if e.export and loc is None]
    for e in exports:
        out.print(f"[dim]{e.name}: no ONNX download; make {e.filename} with[/] {e.export}", soft_wrap=True)


@models_app.command("pull")
def pull(
    names: Annotated[list[str], typer.Argument(help="Model names (trtapps models list).")],
    force: Annotated[bool, typer.Option("--force", help="Download again even when the cache has it.")] = False,
    trust_unverified: Annotated[
        bool,
        typer.Option(
            "--trust-unverified",
            help="Accept a download the catalogue has no sha256 for, and pin its sha256 in the cache index.",
        ),
    ] = False,
    retries: Annotated[int, typer.Option(min=0, help="Retries per URL after a dropped connection.")] = 3,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds to wait for a connection or a read.")] = 30.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download models into the cache (TRTAPPS_CACHE/models), resuming and verifying their sha256."""
    from trtapps.zoo import model_entry
    from trtapps.zoo import pull as pull_model

    entries = [model_entry(n) for n in names]  # every name checked before anything is downloaded
    for entry in entries:
        downloaded: list[str] = []
        path = pull_model(
            entry.name, force=force, trust_unverified=trust_unverified or None, retries=retries,
            timeout=timeout, progress=False if quiet else None, on_download=downloaded.append,
        )
        how = "downloaded" if downloaded else "already in the cache"
        check = "sha256 verified" if entry.sha256 else _pin_text(entry)
        out.print(f"{entry.name}: {path} ({how}, {check})", soft_wrap=True)


def _pin_text(entry: ZooModel) -> str:
    from trtapps.zoo import read_index

    record = read_index().get(entry.filename, {})
    return f"sha256 {record['sha256']} pinned at first download" if record.get("sha256") else "no sha256 to check"


@models_app.command("path")
def path(
    name: Annotated[str, typer.Argument(help="A model name, as a config's model: would give it.")],
) -> None:
    """Print the file `model: NAME` resolves to here (search path, cache or package); never downloads."""
    from trtapps.zoo import resolve_model

    typer.echo(str(resolve_model(name, download=False)))


@models_app.command("verify")
def verify(
    names: Annotated[list[str] | None, typer.Argument(help="Model names (default: every local copy).")] = None,
) -> None:
    """Re-hash local copies against the catalogue (and first-download pins); exit 1 when a cached copy is wrong."""
    from trtapps.zoo import MODELS, model_entry
    from trtapps.zoo import verify as verify_model

    entries = [model_entry(n) for n in names] if names else list(MODELS.values())
    checks = [c for e in entries for c in verify_model(e)]
    if not checks:
        out.print("no local copies to verify (trtapps models pull NAME, or TRTAPPS_MODEL_PATH)")
        return
    labels = {"ok": "[green]ok[/]", "unpinned": "[yellow]no sha256 known[/]"}
    broken = 0
    for c in checks:  # plain lines, not a table: full paths and checksums, one copy per line, easy to grep
        if c.status == "mismatch" and c.where == "cache":
            label, broken = "[red]corrupted[/]", broken + 1
        elif c.status == "mismatch":
            label = "[yellow]another build[/]"  # a user's own export or copy: legitimate, but not the catalogued file
        else:
            label = labels[c.status]
        expected = f" (expected {c.expected})" if c.status == "mismatch" else ""
        out.print(f"{label} {c.name} ({c.where}) {c.path} sha256 {c.sha256}{expected}", soft_wrap=True)
    if broken:
        console.print(f"[red]{broken} cached file(s) do not match their sha256[/]: trtapps models pull NAME --force")
        raise typer.Exit(1)
