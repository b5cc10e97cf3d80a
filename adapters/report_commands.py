"""`coach report`, `coach kb draft-gaps` and `coach kb draft-from-escalation`: the integrators' view.

The numbers come from `bot.report.insights.build_insights` (aggregated and masked there); this module only shows
them in the terminal, writes the HTML file, and writes draft entries for the curation loop.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)

DATE = click.DateTime(formats=["%Y-%m-%d"])


def _ctx(obj: Any) -> Any:
    # Same pattern as kb_commands: settings are built lazily, so `--help` works with a broken config.
    if obj is not None:
        return obj
    from adapters.cli_context import Context

    return Context()


def _open(ctx: Any) -> tuple[Any, Any]:
    """The knowledge store and the state database named by the settings (no coach needed)."""
    from adapters.wiring import StartupError, open_store
    from bot.state.database import StateDB, StateError

    settings = ctx.settings
    store = open_store(settings)
    try:
        db = StateDB(settings.state_url)
    except StateError as exc:
        raise StartupError(str(exc)) from None
    return store, db


def _period(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    # Dates on the command line are whole days in UTC; --until includes its day.
    start = since.replace(tzinfo=timezone.utc) if since else None
    end = until.replace(tzinfo=timezone.utc) + timedelta(days=1) if until else None
    if start and end and end <= start:
        raise click.BadParameter("--until must not be before --since")
    return start, end


CACHE_FILE = "insights-vectors.npz"  # in the data directory: question vectors, keyed by hash


def _insights(obj: Any, since: datetime | None, until: datetime | None, include_replay: bool) -> Any:
    from bot.report.insights import build_insights
    from bot.report.vectors import VectorCache

    ctx = _ctx(obj)
    store, db = _open(ctx)
    start, end = _period(since, until)
    cache = VectorCache(ctx.settings.data_dir / CACHE_FILE)
    with err.status("Reading turns, feedback and escalations; grouping questions\u2026"):
        insights = build_insights(db, store, ctx.settings, since=start, until=end, include_replay=include_replay,
                                  cache=cache)
    try:
        cache.save()
    except OSError as exc:  # the report is made; only the next one will be slower
        err.print(f"[yellow]could not save {CACHE_FILE}: {exc.strerror}[/yellow]", highlight=False)
    return insights


def period_options(fn: Any) -> Any:
    """--since, --until and --include-replay/--exclude-replay, shared by the report and the drafts."""
    fn = click.option("--include-replay/--exclude-replay", default=True, show_default=True,
                      help="count turns recorded by `coach replay` (platform 'replay')")(fn)
    fn = click.option("--until", type=DATE, default=None, help="last day to include (YYYY-MM-DD)")(fn)
    fn = click.option("--since", type=DATE, default=None, help="first day to include (YYYY-MM-DD)")(fn)
    return fn


@click.command("report")
@period_options
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write a self-contained HTML report (one file, fit to attach to an e-mail)")
@click.option("--json", "as_json", is_flag=True, help="print the aggregated report as JSON")
@click.pass_obj
def report(obj: Any, since: datetime | None, until: datetime | None, include_replay: bool,
           html_path: Path | None, as_json: bool) -> None:
    """What teachers ask and what the knowledge base lacks, for the whole school (no names, no ids)."""
    insights = _insights(obj, since, until, include_replay)
    if html_path is not None:
        from adapters.report_html import render_html

        try:
            html_path.parent.mkdir(parents=True, exist_ok=True)
            html_path.write_text(render_html(insights), encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {html_path}: {exc.strerror}") from None
    if as_json:
        click.echo(json.dumps(insights.to_dict(), ensure_ascii=False, indent=2))
    else:
        print_report(insights, out)
    if html_path is not None:
        err.print(f"Wrote {html_path}.", highlight=False)


def _hours(value: float | None) -> str:
    if value is None:
        return "\u2013"
    return f"{value * 60:.0f} min" if value < 1 else f"{value:.1f} h"


def print_report(ins: Any, console: Console) -> None:
    """The report as terminal tables."""
    period = f"{ins.since or 'the beginning'} to {ins.until or 'now'}"
    console.print(f"[bold]Integration Coach insights[/bold], {period}"
                  + ("" if ins.include_replay else " (replayed turns left out)"), highlight=False)
    t = ins.totals
    console.print(f"{t['messages']} messages from {t['teachers']} teachers; {t['coaching_questions']} coaching "
                  f"questions, {t['gap_questions']} of them knowledge gaps; {t['helped']} \u201cThis helped\u201d, "
                  f"{t['not_quite']} \u201cNot quite\u201d; {t['escalations']} escalations.", highlight=False)
    for note in ins.notes:
        console.print(f"[yellow]{note}[/yellow]", highlight=False)

    weeks = Table("week of", *ins.routes.keys(), "total", title="Questions per week")
    for w in ins.weeks:
        weeks.add_row(w.week, *(str(w.by_route.get(r, 0)) for r in ins.routes), str(w.total))
    console.print(weeks)

    console.print(f"\n[bold]Knowledge gaps[/bold] (shown when {ins.min_group_size}+ teachers asked)")
    if not ins.gaps:
        console.print("  none", style="dim")
    for g in ins.gaps:
        why = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in g.signals.items())
        closest = f"; closest entry {g.closest_entry} ({g.closest_similarity:.2f})" if g.closest_entry else ""
        console.print(f"{g.rank:>3}. [bold]{g.label}[/bold]: {g.questions} questions, {g.teachers} teachers "
                      f"({why}){closest}", highlight=False)
        for example in g.examples:
            console.print(f"       \u201c{example}\u201d", style="dim", highlight=False)
    if ins.hidden_gaps.questions:
        console.print(f"[dim]  {ins.hidden_gaps.questions} more gap question(s) in {ins.hidden_gaps.groups} "
                      f"smaller group(s), not shown.[/dim]")

    console.print("\n[bold]Top topics[/bold]")
    if not ins.topics:
        console.print("  none", style="dim")
    for i, tp in enumerate(ins.topics, 1):
        tags = f" [{', '.join(tp.tags)}]" if tp.tags else ""
        console.print(f"{i:>3}. [bold]{tp.label}[/bold]: {tp.questions} questions, {tp.teachers} teachers{tags}",
                      highlight=False)
        for example in tp.examples:
            console.print(f"       \u201c{example}\u201d", style="dim", highlight=False)
    if ins.hidden_topics.questions:
        console.print(f"[dim]  {ins.hidden_topics.questions} more question(s) in {ins.hidden_topics.groups} "
                      f"other or smaller topic(s), not shown.[/dim]")

    samr = Table("SAMR level", "questions", title="Where coached questions sit (top entry's SAMR level)")
    for level, n in ins.samr.items():
        samr.add_row(level, str(n))
    console.print(samr)

    entries = Table("entry", "drawn on", "helped", "not quite", title="Feedback per entry")
    for e in ins.entries[:20]:
        entries.add_row(f"{e.title} [dim]({e.entry_id})[/dim]", str(e.cited), str(e.helped), str(e.not_quite))
    console.print(entries)

    esc = Table("to", "reason", "count", "urgent", "open", "claimed", "median to claim", "90% claimed within",
                title="Escalations")
    for e in ins.escalations:
        esc.add_row(e.target, e.label, str(e.count), str(e.urgent), str(e.open), str(e.claimed),
                    _hours(e.median_hours_to_claim), _hours(e.p90_hours_to_claim))
    console.print(esc)

    cy = ins.cycles
    if cy is not None:
        outcomes = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in cy.outcomes.items())
        console.print(f"\n[bold]Coaching cycles[/bold]: {cy.offered} check-ins offered, {cy.accepted} accepted, "
                      f"{cy.sent} sent, {cy.completed} completed ({outcomes}); {cy.declined} declined, "
                      f"{cy.cancelled} cancelled.", highlight=False)
        if cy.topics:
            cyc = Table("after entry", "teachers", "completed", "went well", "mixed", "didn't get to it",
                        title="Check-in outcomes by entry")
            for tp in cy.topics:
                cyc.add_row(f"{tp.title} [dim]({tp.entry_id})[/dim]", str(tp.teachers), str(tp.completed),
                            *(str(tp.outcomes.get(k, 0)) for k in ("went_well", "mixed", "not_yet")))
            console.print(cyc)
        if cy.hidden_topics:
            console.print(f"[dim]  {cy.hidden_topics} more entr(ies) with fewer than {ins.min_group_size} "
                          "teachers, not shown.[/dim]")
        console.print(f"{cy.repeat_teachers} teacher(s) came back with the same need three times or more "
                      "(a sign a person should step in; not named).", highlight=False)


@click.command("draft-gaps")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--top", "top", default=5, show_default=True, type=click.IntRange(1, 50),
              help="how many of the top gaps to draft")
@click.option("--force", is_flag=True, help="overwrite draft files that already exist")
@period_options
@click.pass_obj
def draft_gaps(obj: Any, folder: Path, top: int, force: bool, since: datetime | None, until: datetime | None,
               include_replay: bool) -> None:
    """Write draft entries for the top knowledge gaps into FOLDER, for an integrator to finish and import."""
    from bot.report.drafts import gap_draft

    ctx = _ctx(obj)
    insights = _insights(ctx, since, until, include_replay)
    if not insights.gaps:
        out.print(f"No knowledge gaps asked by {insights.min_group_size}+ teachers in this period; nothing to draft.")
        return
    store, _ = _open(ctx)
    taken = set(store.entries())  # a draft never takes the id of a live entry
    written = []
    for gap in insights.gaps[:top]:
        entry = gap_draft(gap, taken)
        if entry is None:
            continue
        path = folder / f"{entry.id}.md"
        if path.exists() and not force:  # the same gap drafts to the same file: keep the integrator's edits
            out.print(f"kept {path} (exists; --force overwrites)", highlight=False)
            continue
        written.append(_write(folder, entry, force))
        out.print(f"wrote {path}", highlight=False)
    out.print(f"{len(written)} draft(s) in {folder}. Finish each, remove `status: draft`, then "
              f"`coach kb validate {folder}` and `coach kb import {folder}`.", highlight=False)


@click.command("draft-from-escalation")
@click.argument("escalation")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--any-status", is_flag=True, help="draft even when the escalation is not resolved yet")
@click.option("--force", is_flag=True, help="overwrite a draft file that already exists")
@click.pass_obj
def draft_from_escalation(obj: Any, escalation: str, folder: Path, any_status: bool, force: bool) -> None:
    """Save what the integrator answered on ESCALATION (an id or ticket like I-0007) as a draft entry in FOLDER."""
    from bot.report.drafts import escalation_draft, resolution_note
    from bot.report.masking import Scrubber
    from bot.report.results import RESOLVED
    from bot.report.rows import load_escalation, load_user_ids

    ctx = _ctx(obj)
    store, db = _open(ctx)
    row = load_escalation(db, escalation)
    if row is None:
        raise click.ClickException(f"no escalation {escalation} (an id, or a ticket like I-0007 or H-0042)")
    status = str(row.get("status") or "open")
    if status not in RESOLVED and not any_status:
        raise click.ClickException(f"escalation {escalation} is {status}, not resolved; resolve it first "
                                   "or pass --any-status")
    taken = set(store.entries())
    from bot.privacy.masker import shared_masker
    entry = escalation_draft(row, Scrubber(load_user_ids(db), shared_masker(ctx.settings)), taken)
    path = _write(folder, entry, force)
    out.print(f"wrote {path}; finish it, remove `status: draft`, then `coach kb import {folder}`.", highlight=False)
    if not resolution_note(row):
        out.print("No resolution note was recorded on it (`coach handoffs resolve --note`), so the draft quotes "
                  "the teacher; write the answer in the file.", highlight=False)


def _write(folder: Path, entry: Any, force: bool) -> Path:
    from knowledge.drafts import DraftInvalid, write_draft

    path = folder / f"{entry.id}.md"
    try:
        return write_draft(entry, folder, overwrite=force)
    except DraftInvalid as exc:  # never leave a file behind that `coach kb import` would reject
        raise click.ClickException(f"draft {entry.id} does not validate: {exc}") from None
    except FileExistsError:
        raise click.ClickException(f"{path} exists; pass --force to overwrite") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None


def register(main: click.Group, kb: click.Group) -> None:
    """Attach `coach report` and the two draft commands under `coach kb`."""
    main.add_command(report)
    kb.add_command(draft_gaps)
    kb.add_command(draft_from_escalation)
