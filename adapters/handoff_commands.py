"""`coach handoffs list|show|claim|resolve|retry|deliver` and `coach doctor`: handoffs for operators."""

from __future__ import annotations

import getpass
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from adapters.platforms import declare_platforms
from bot.config_files import CONFIG_DIR_ENV, SETTINGS_FILE, ConfigSource
from bot.settings import Settings, setting_sources
from bot.handoff.escalations import ACTIVE, STATUSES, EscalationRow, Escalations
from bot.state.database import aware
from bot.handoff.context import build_context
from bot.handoff.delivery import FAILED
from bot.handoff.listener import OutboxListener
from bot.handoff.outbox import Outbox, OutboxRow
from bot.state.memory import ConversationMemory
from bot.state.database import StateDB, utcnow

out = Console()
err = Console(stderr=True)


def _settings(obj: Any):
    from adapters.cli_context import Context

    return (obj or Context()).settings


@dataclass
class Desk:
    """The state a handoff command needs, without the knowledge store (fast, and works while it is down)."""

    settings: Any
    db: StateDB
    escalations: Escalations
    memory: ConversationMemory
    delivery: Any  # adapters.delivery.Delivery or None
    outbox: Outbox

    @classmethod
    def open(cls, obj: Any) -> Desk:
        from adapters.delivery import build_delivery

        settings = _settings(obj)
        db = StateDB(settings.state_url)
        escalations, memory = Escalations(db), ConversationMemory(db)
        delivery = build_delivery(settings, db, escalations, memory, start=False)
        outbox = delivery.outbox if delivery is not None else Outbox(db, (), settings.outbox)
        return cls(settings, db, escalations, memory, delivery, outbox)

    def find(self, ref: str) -> EscalationRow:
        row = self.escalations.get_by_ticket(ref)
        if row is None:
            raise click.ClickException(f"no handoff {ref!r}; `coach handoffs list --status all` shows them all")
        return row


def _waiting(left: dict[str, int]) -> str:
    if not left:
        return "nothing left to deliver"
    return ", ".join(f"{n} {status}" for status, n in sorted(left.items())) + " (see `coach handoffs show`)"


def _deliveries(rows: list[OutboxRow]) -> str:
    marks = []
    for r in rows:
        if r.status == "delivered":
            marks.append(f"{r.channel} ✓")
        elif r.status == FAILED:
            marks.append(f"{r.channel} ✗ failed ({r.attempts}×)")
        else:
            marks.append(f"{r.channel} … {r.status}" + (f" ({r.attempts}×)" if r.attempts else ""))
    # One mark per channel: the latest event's state is what an operator needs to see.
    latest: dict[str, str] = {}
    for r, mark in zip(rows, marks):
        latest[r.channel] = mark
    return ", ".join(latest.values()) or "not delivered anywhere"


@click.group()
def handoffs() -> None:
    """Handoffs to integrators and the helpdesk: list, show, claim, resolve, retry delivery."""


@handoffs.command("list")
@click.option("--status", "status", type=click.Choice([*(s.value for s in STATUSES), "active", "all"]), default="active",
              show_default=True, help="active = open and claimed")
@click.option("--target", type=click.Choice(["helpdesk", "integrator"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.pass_obj
def list_cmd(obj: Any, status: str, target: str | None, limit: int, as_json: bool) -> None:
    """Handoffs, newest first, with where each was delivered."""
    desk = Desk.open(obj)
    wanted = None if status == "all" else ACTIVE if status == "active" else status
    rows = desk.escalations.list(status=wanted, target=target, limit=limit)
    table = Table(title=f"Handoffs ({status})", show_lines=False)
    for col in ("ticket", "target", "urgency", "status", "claimed by", "opened", "title", "delivered"):
        table.add_column(col)
    for row in rows:
        context = build_context(row, desk.memory.history(row.memory_key), desk.settings)
        deliveries = desk.outbox.rows(escalation_id=row.id)
        if as_json:
            click.echo(json.dumps({"id": row.id, "ticket": row.ticket, "target": row.target, "urgency": row.urgency,
                                   "status": row.status, "claimed_by": row.claimer, "created_at": context.created_at,
                                   "title": context.title, "deliveries": [
                                       {"channel": d.channel, "event": d.event, "status": d.status,
                                        "attempts": d.attempts} for d in deliveries]}, ensure_ascii=False))
            continue
        table.add_row(row.ticket, row.target, "[red]urgent[/red]" if row.urgent else "normal", row.status,
                      row.claimer or "", context.created_at, context.title, _deliveries(deliveries))
    if not as_json:
        if rows:
            out.print(table)
        else:
            out.print(f"No {status} handoffs.")


@handoffs.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show_cmd(obj: Any, ref: str, as_json: bool) -> None:
    """One handoff: the context a person acts on (masked as it is delivered) and every delivery."""
    desk = Desk.open(obj)
    row = desk.find(ref)
    context = build_context(row, desk.memory.history(row.memory_key), desk.settings)
    deliveries = desk.outbox.rows(escalation_id=row.id)
    if as_json:
        click.echo(json.dumps({"context": context.as_dict(), "deliveries": [
            {"channel": d.channel, "event": d.event, "status": d.status, "attempts": d.attempts,
             "last_error": d.last_error, "key": d.key} for d in deliveries]}, ensure_ascii=False))
        return
    out.print(f"[bold]{context.subject()}[/bold]  status: {row.status}", highlight=False)
    out.print(context.as_text(), highlight=False, markup=False)
    table = Table(title="Deliveries")
    for col in ("event", "channel", "status", "attempts", "next try", "last error"):
        table.add_column(col)
    for d in deliveries:
        due = aware(d.next_attempt_at) if d.status == "pending" else None
        nxt = due.strftime("%H:%M:%S") if due else ""
        table.add_row(d.event, d.channel, d.status, str(d.attempts), nxt, (d.last_error or "")[:80])
    out.print(table if deliveries else "Not queued for any delivery target (none configured when it was opened?).")


def _act(obj: Any, ref: str, action: str, as_name: str | None, note: str | None = None) -> None:
    from bot.access import Actor, Outcome
    from bot.handoff.desk import escalation_action

    desk = Desk.open(obj)
    row = desk.find(ref)
    actor = Actor(platform="cli", user_id=getpass.getuser(), name=as_name)
    # The coach's own path and access policy, so the teacher is told exactly as when an integrator clicks in Slack.
    result = escalation_action(desk.settings, desk.escalations, desk.memory,
                               desk.delivery.listener if desk.delivery else None, row.id, action, actor, note)
    if result.outcome is Outcome.REFUSED:
        out.print(f"{row.ticket}: {result.message}", highlight=False, markup=False)
        raise SystemExit(1)
    if not result.changed:
        now = desk.escalations.get(row.id)
        out.print(f"{row.ticket} is already {now.status if now else row.status}; nothing changed.")
        return
    out.print(f"{row.ticket}: {'claimed' if action == 'claim' else 'resolved'}"
              + (f" by {as_name}" if as_name else f" by {actor.key}"), highlight=False, markup=False)
    stored = desk.escalations.get(row.id)
    if stored is not None and stored.resolution_note:  # as stored: masked, what a knowledge draft will quote
        out.print(f"Note recorded (masked): {stored.resolution_note}", highlight=False, markup=False)
    if desk.delivery is not None:
        report = desk.outbox.drain(timeout=20, until_empty=True)
        out.print(f"Notifications: {report.delivered} delivered here; {_waiting(desk.outbox.pending(row.id))}.")
    else:
        out.print("[yellow]No delivery target is configured: the teacher is not told.[/yellow]")


@handoffs.command("claim")
@click.argument("ref")
@click.option("--as", "as_name", default=None, help="your name as the teacher should read it")
@click.pass_obj
def claim_cmd(obj: Any, ref: str, as_name: str | None) -> None:
    """Claim a handoff (H-0042, I-0007 or an id); the teacher is told who picked it up."""
    _act(obj, ref, "claim", as_name)


@handoffs.command("resolve")
@click.argument("ref")
@click.option("--as", "as_name", default=None, help="your name as the teacher should read it")
@click.option("--note", default=None,
              help="what you answered, for `coach kb draft-from-escalation` (masked before it is stored)")
@click.pass_obj
def resolve_cmd(obj: Any, ref: str, as_name: str | None, note: str | None) -> None:
    """Resolve a handoff, with an optional note of what you answered; the teacher is told."""
    _act(obj, ref, "resolve", as_name, note)


@handoffs.command("retry")
@click.argument("ref", required=False)
@click.option("--failed-only", is_flag=True, help="leave rows that are waiting out a backoff alone")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="seconds to spend delivering now")
@click.pass_obj
def retry_cmd(obj: Any, ref: str | None, failed_only: bool, timeout: float) -> None:
    """Make failed (and waiting) deliveries due now, and deliver them."""
    desk = Desk.open(obj)
    escalation_id = desk.find(ref).id if ref else None
    n = desk.outbox.retry(escalation_id=escalation_id, include_pending=not failed_only)
    out.print(f"{n} deliver{'y' if n == 1 else 'ies'} due now.")
    if desk.delivery is None:
        out.print("[yellow]No delivery target is configured in this process; a bot process will pick them up.[/yellow]")
        return
    report = desk.outbox.drain(timeout=timeout, until_empty=True)
    left = desk.outbox.pending(escalation_id)
    out.print(f"Delivered {report.delivered}; {_waiting(left)}.")
    if left:
        sys.exit(1)


@handoffs.command("deliver")
@click.option("--once", is_flag=True, help="deliver what is due now, then exit")
@click.pass_obj
def deliver_cmd(obj: Any, once: bool) -> None:
    """Run the delivery worker in the foreground (a separate worker process, or a one-off drain)."""
    desk = Desk.open(obj)
    if desk.delivery is None:
        raise click.ClickException("no delivery target is configured; `coach doctor` shows what is missing")
    names = ", ".join(sorted(desk.outbox.channels))
    if once:
        desk.delivery.listener.recover()
        report = desk.outbox.drain(timeout=60)
        out.print(f"Delivered {report.delivered}; {_waiting(desk.outbox.pending())}.")
        return
    err.print(f"Delivering handoffs to: {names} (Ctrl-C to stop)", highlight=False)
    worker = desk.delivery.worker

    def _term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    worker.start()
    try:
        while worker.alive:
            worker._thread.join(1.0)  # join with a timeout stays interruptible
    except KeyboardInterrupt:
        worker.stop(timeout=10)
    err.print(f"Stopped: {worker.report.delivered} delivered, {worker.report.retrying} retried, "
              f"{worker.report.failed} failed.", highlight=False)


# -- coach doctor ------------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    ok: bool | None  # None: not configured (fine, but said)
    detail: str


def _check(name: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn())
    except Exception as exc:  # every failure is reported, none stops the other checks
        return Check(name, False, f"{type(exc).__name__}: {exc}"[:300])


@click.command()
@click.pass_obj
def doctor(obj: Any) -> None:
    """Say which parts and delivery targets are configured, and whether each is reachable."""
    from adapters.delivery import build_channels

    settings = _settings(obj)
    checks: list[Check] = config_checks(settings)
    db_holder: dict[str, StateDB] = {}

    def state() -> str:
        db = StateDB(settings.state_url)
        with db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        db_holder["db"] = db
        return f"{db.engine.dialect.name} at {db.engine.url.render_as_string(hide_password=True)}"

    checks.append(_check("state database", state))

    def knowledge() -> str:
        from adapters.wiring import open_store

        store = open_store(settings)
        return f"{store.count()} entries ({'Chroma server ' + settings.chroma_url if settings.chroma_url else 'on disk'})"

    checks.append(_check("knowledge store", knowledge))
    db = db_holder.get("db")
    if db is None:
        _print_checks(checks)
        sys.exit(1)
    built = build_channels(settings, db)
    labels = {"email": "e-mail (SMTP)", "webhook": "webhook", "slack_channel": "Slack integrators' channel",
              "teams_channel": "Teams integrators' channel", "teacher:slack": "Slack teacher notices",
              "teacher:teams": "Teams teacher notices"}
    present = {c.name for c in built.channels}
    for channel in built.channels:
        checks.append(_check(labels.get(channel.name, channel.name), channel.probe))
    for name in ("email", "webhook", "slack_channel", "teams_channel"):
        if name not in present:
            checks.append(Check(labels[name], None, "not configured"))
    for problem in built.problems:
        checks.append(Check("configuration", False, problem))

    outbox = Outbox(db, built.channels, settings.outbox)

    declare_platforms()
    listener = OutboxListener(outbox, Escalations(db), ConversationMemory(db), settings)
    for target in ("helpdesk", "integrator"):
        route = listener.route(target, "opened")
        direct = [c.name for c in built.channels if target in c.targets and "opened" in c.events
                  and not c.name.startswith("teacher:")]
        note = "" if direct or not route else " (no helpdesk target: integrators get them)"
        checks.append(Check(f"{target} handoffs go to", bool(route), (", ".join(route) or "nowhere: recorded only") + note))
    lead = listener.safeguarding_channels()
    checks.append(Check("safeguarding concerns go to", True if lead else None, ", ".join(lead) or
                        "nobody: set safeguarding.target in coach.yaml (in COACH_CONFIG_DIR); until then teachers are told that no "
                        "one has been told and to go to the safeguarding lead in person"))
    counts = outbox.counts()
    oldest = min((t for r in outbox.rows(status=("pending", "sending"), limit=1) if (t := aware(r.created_at))),
                 default=None)
    age = f", oldest waiting {int((utcnow() - oldest).total_seconds())}s" if oldest else ""
    checks.append(Check("outbox", not counts.get(FAILED),
                        ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + age
                        + ("; `coach handoffs retry` after fixing the target" if counts.get(FAILED) else "")
                        if counts else "empty"))
    _print_checks(checks)
    if any(c.ok is False for c in checks):
        sys.exit(1)


def config_checks(settings: Settings) -> list[Check]:
    """Each configuration file and each setting given anywhere, with its source: default, a file, or the environment."""
    folder = (f"{settings.config_dir} ({CONFIG_DIR_ENV}): a file there replaces the packaged one"
              if settings.config_dir else f"none ({CONFIG_DIR_ENV} unset): the packaged defaults")
    checks = [Check("configuration folder", True, folder)]
    checks += [Check(f"config {f.name}", True, f.describe()) for f in settings.config.describe()]
    # The packaged coach.yaml is part of the defaults: only what a school changed is listed.
    packaged = settings.config.file(SETTINGS_FILE).source is ConfigSource.DEFAULT
    for name, source in setting_sources(settings).items():
        if not (packaged and source.startswith(f"{SETTINGS_FILE}:")):
            checks.append(Check(f"setting {name}", True, source))
    checks.append(Check("every other setting", True, "default" + (" (with the packaged coach.yaml)" if packaged else "")))
    return checks


def _print_checks(checks: list[Check]) -> None:
    table = Table(title="coach doctor")
    table.add_column("check")
    table.add_column("")
    table.add_column("detail")
    for c in checks:
        mark = "[green]ok[/green]" if c.ok else "[dim]–[/dim]" if c.ok is None else "[red]FAIL[/red]"
        table.add_row(c.name, mark, c.detail)
    out.print(table)


def register(main: click.Group) -> None:
    """Add `coach handoffs ...` and `coach doctor` to the `coach` command."""
    main.add_command(handoffs)
    main.add_command(doctor)
