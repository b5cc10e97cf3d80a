"""`coach privacy purge|export|erase|audit|roster`: retention, a teacher's rights over their data, and the student roster.

The core (bot/state/privacy.py) decides what is whose and what is past retention; these
commands open the state database, call it, and print. Each export, erase and purge is written
to the `privacy_audit` table, with the login name of whoever ran it.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bot.state.database import StateDB
from bot.state.privacy import PrivacyStore

out = Console()
err = Console(stderr=True)


def _store() -> PrivacyStore:
    from adapters.cli_context import Context

    settings = click.get_current_context().ensure_object(Context).settings
    return PrivacyStore(StateDB(settings.state_url), settings.retention)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (a container without a passwd entry)
        return "cli"


@click.group("privacy")
def privacy() -> None:
    """Retention, one teacher's data (export it, erase it; every action is audited), and the student roster."""


@privacy.command("purge")
def purge_cmd() -> None:
    """Remove what is past its retention period now (the running bots also do this once a day)."""
    store = _store()
    counts = store.purge(actor=_actor())
    r = store.retention
    err.print(f"Retention (days, 0 keeps): turns {r.turns_days}, inbound {r.inbound_days}, feedback "
              f"{r.feedback_days}, resolved escalations {r.resolved_escalations_days}, outbox bodies {r.outbox_days}",
              highlight=False)
    out.print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + " removed." if counts
              else "Nothing is past its retention period.", highlight=False)


@privacy.command("export")
@click.option("--user", "user_id", required=True, help="the teacher's Slack member id, Teams id or console name")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the JSON here (mode 0600) instead of to standard output")
def export_cmd(user_id: str, out_file: Path | None) -> None:
    """Everything stored about one teacher, as JSON."""
    report = _store().export(user_id, actor=_actor())
    text = json.dumps(report.as_json(), ensure_ascii=False, indent=2, default=str)
    if out_file is None:
        sys.stdout.write(text + "\n")
    else:
        out_file.touch(mode=0o600)
        out_file.write_text(text + "\n")
        err.print(f"Wrote {sum(report.counts.values())} row(s) about {user_id} to {out_file}.", highlight=False)


@privacy.command("erase")
@click.option("--user", "user_id", required=True, help="the teacher's Slack member id, Teams id or console name")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def erase_cmd(user_id: str, yes: bool) -> None:
    """Delete everything stored about one teacher, from every table; the counts are kept in the audit log."""
    if not yes:
        click.confirm(f"Erase everything stored about {user_id}? This cannot be undone", abort=True)
    report = _store().erase(user_id, actor=_actor())
    _counts_table(f"Erased: {user_id}", report.counts)
    if report.residual:
        err.print(f"[yellow]Still mentioned in: {', '.join(f'{t} ({n})' for t, n in report.residual.items())}; "
                  "these rows name the teacher in free text and need a look.[/yellow]")
        sys.exit(1)


@privacy.command("audit")
@click.option("--limit", default=20, show_default=True)
def audit_cmd(limit: int) -> None:
    """The latest exports, erasures and purges."""
    table = Table(title="privacy audit")
    for col in ("when", "action", "by", "subject (sha256)", "counts"):
        table.add_column(col)
    for row in _store().audit_log(limit):
        table.add_row(row.created_at.strftime("%Y-%m-%d %H:%M"), row.action, row.actor, row.subject[:16],
                      json.dumps(row.counts))
    out.print(table)


def _counts_table(title: str, counts: dict[str, Any]) -> None:
    table = Table(title=title)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in sorted(counts.items()):
        table.add_row(name, str(n))
    out.print(table if counts else f"{title}: nothing was stored.")


@privacy.command("roster")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="drop the names loaded before instead of adding to them")
def roster(file: Path, replace: bool) -> None:
    """Load student names from FILE (the school's CSV export, or one name a line) so they are always masked.

    Only salted hashes of the names and their parts are stored (data directory, mode 0600); the
    file itself is not copied. Delete the export once it is loaded.
    """
    from bot.privacy.masker import forget_shared_maskers
    from bot.privacy.roster import Roster, parse_names

    from adapters.cli_context import Context

    settings = click.get_current_context().ensure_object(Context).settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    names = parse_names(file.read_text(encoding="utf-8-sig", errors="replace"))
    if not names:
        raise click.ClickException(f"no names found in {file}: expected a CSV with a name column "
                                   "(e.g. 'First Name', 'Surname', 'Full Name') or one name a line")
    current = Roster.load(settings.data_dir)
    if replace:
        current.hashes.clear()
    added = current.add(names)
    path = current.save(settings.data_dir)
    forget_shared_maskers()
    click.echo(f"{added} student name(s) loaded; {len(current)} salted hashes in {path} (0600). "
               "Running bots read the roster when they start.")
