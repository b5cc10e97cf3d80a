"""`coach kb ...`: the integrators' curation tools."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from knowledge.parser import load_folder, render_entry

out = Console(soft_wrap=True)


def _store(ctx):
    from adapters.wiring import open_store

    return open_store(ctx.settings)


def _print_problems(result, console: Console) -> None:
    for problem in result.problems:
        style = "yellow" if problem.severity == "warning" else "red"
        console.print(f"[{style}]{problem.severity}[/{style}] {problem}", highlight=False)


@click.group()
def kb() -> None:
    """Curate the knowledge base: import, search, export."""


@kb.command("import")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--prune", is_flag=True, help="remove entries whose files are gone")
@click.pass_obj
def import_cmd(ctx, folder: Path, prune: bool) -> None:
    """Import a folder of Markdown entries; only new or changed entries are embedded."""
    from adapters.cli_context import import_progress, pass_ctx  # noqa: F401
    from adapters.wiring import import_folder

    ctx = ctx or _ctx()
    if not folder.is_dir():
        raise click.ClickException(f"{folder}: not a folder")
    store = _store(ctx)
    progress, update = import_progress()
    with progress:
        parsed, report = import_folder(store, ctx.settings, folder, prune=prune, progress=update)
    err = Console(stderr=True, soft_wrap=True)
    _print_problems(parsed, err)
    if report.reembedded:
        out.print(f"Re-embedded the store with {store.embedder.name}.")
    if not report.changed:
        out.print(f"Nothing to do: all {len(report.unchanged)} entries are already up to date.")
    else:
        out.print(f"Imported {folder}: {len(report.added)} added, {len(report.updated)} updated, "
                  f"{len(report.unchanged)} unchanged, {len(report.removed)} removed.")
    if parsed.errors:
        out.print(f"[red]{len(parsed.errors)} file problem(s) skipped; see above.[/red]")
        sys.exit(1)


def _ctx():
    from adapters.cli_context import Context

    return Context()


@kb.command("validate")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def validate_cmd(folder: Path) -> None:
    """Check a folder against the knowledge format without importing it."""
    result = load_folder(folder)
    _print_problems(result, out)
    out.print(f"{len(result.entries)} valid entries, {len(result.errors)} errors, {len(result.warnings)} warnings.")
    if result.errors:
        sys.exit(1)


@kb.command("list")
@click.option("--kind", default=None)
@click.pass_obj
def list_cmd(ctx, kind: str | None) -> None:
    """List the entries in the store."""
    store = _store(ctx or _ctx())
    table = Table("id", "kind", "title", "grades", "updated")
    for entry in sorted(store.entries().values(), key=lambda e: e.id):
        if kind and entry.kind.value != kind:
            continue
        table.add_row(entry.id, entry.kind.value, entry.title, ", ".join(entry.grades), str(entry.updated or ""))
    out.print(table)


@kb.command("show")
@click.argument("entry_id")
@click.pass_obj
def show_cmd(ctx, entry_id: str) -> None:
    """Print one entry in the contract format."""
    entry = _store(ctx or _ctx()).get(entry_id)
    if entry is None:
        raise click.ClickException(f"no entry with id {entry_id!r}")
    click.echo(render_entry(entry))


@kb.command("search")
@click.argument("query")
@click.option("--grade", default=None, help="grade band: K-2, 3-5, 6-8, 9-12, adult")
@click.option("--subject", default=None)
@click.option("--kind", default=None)
@click.option("-k", "k", default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def search_cmd(ctx, query: str, grade, subject, kind, k: int, as_json: bool) -> None:
    """Show the ranking for a query with its scores, so you can see why an entry wins."""
    from adapters.wiring import make_retriever
    from knowledge.search import Filters

    ctx = ctx or _ctx()
    retriever = make_retriever(ctx.settings, _store(ctx))
    try:
        result = retriever.search(query, k=k, filters=Filters(grade=grade, subject=subject, kind=kind))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"confidence": result.confidence, "hits": [
            {"id": h.entry.id, "score": h.score, "late": h.late, "dense": h.dense, "lexical": h.lexical}
            for h in result.hits]}))
        return
    table = Table("rank", "id", "title", "score", "late", "dense", "bm25 (norm)", title=f"confidence {result.confidence:.2f}")
    for i, hit in enumerate(result.hits, 1):
        table.add_row(str(i), hit.entry.id, hit.entry.title, f"{hit.score:.3f}", f"{hit.late:.3f}", f"{hit.dense:.3f}",
                      f"{hit.lexical:.3f}")
    out.print(table)


@kb.command("remove")
@click.argument("entry_ids", nargs=-1, required=True)
@click.pass_obj
def remove_cmd(ctx, entry_ids: tuple[str, ...]) -> None:
    """Remove entries from the store (the files stay where they are)."""
    removed = _store(ctx or _ctx()).remove(entry_ids)
    missing = sorted(set(entry_ids) - set(removed))
    if removed:
        out.print(f"Removed {', '.join(removed)}.")
    if missing:
        raise click.ClickException(f"not in the store: {', '.join(missing)}")


@kb.command("export")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def export_cmd(ctx, folder: Path) -> None:
    """Write every entry back out as files in the contract format."""
    entries = _store(ctx or _ctx()).entries()
    folder.mkdir(parents=True, exist_ok=True)
    for entry in entries.values():
        (folder / f"{entry.id}.md").write_text(render_entry(entry), encoding="utf-8")
    out.print(f"Exported {len(entries)} entries to {folder}.")


@kb.command("stats")
@click.pass_obj
def stats_cmd(ctx) -> None:
    """Counts by kind, grade band and SAMR level, and the embedding model."""
    store = _store(ctx or _ctx())
    entries = list(store.entries().values())
    kinds = Counter(e.kind.value for e in entries)
    grades = Counter(g for e in entries for g in e.grades)
    samr = Counter(e.samr.value for e in entries if e.samr)
    out.print(f"{len(entries)} entries · embedding model {store.model_name}")
    for title, counter in (("kind", kinds), ("grade band", grades), ("SAMR", samr)):
        table = Table(title, "entries")
        for name, n in counter.most_common():
            table.add_row(name, str(n))
        out.print(table)
