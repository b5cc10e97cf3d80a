"""`coach checkins list|cancel|deliver`: check-ins in the state database, for operators.

Plans are shown masked (student names and contact details never reach a terminal); a teacher sees
their own with "checkins" in chat.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from bot.checkins.calendar import SchoolCalendar
from bot.checkins.store import Checkins, CheckinStatus
from bot.privacy.masker import Masker
from bot.state.database import StateDB, aware


def _parts() -> tuple[Checkins, SchoolCalendar]:
    from adapters.cli_context import Context

    settings = click.get_current_context().ensure_object(Context).settings
    try:
        calendar = SchoolCalendar.from_settings(settings.checkins)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return Checkins(StateDB(settings.state_url)), calendar


@click.group("checkins")
def checkins() -> None:
    """Check-ins offered after coaching: list them, cancel them, send what is due."""


@checkins.command("list")
@click.option("--user", default=None, help="one teacher's platform user id")
@click.option("--all", "show_all", is_flag=True, help="every status, not only those still to be sent")
@click.option("--limit", default=50, show_default=True)
def list_cmd(user: str | None, show_all: bool, limit: int) -> None:
    """Check-ins still to be sent (offered, scheduled, sending), newest first."""
    store, calendar = _parts()
    statuses = None if show_all else (CheckinStatus.OFFERED, CheckinStatus.SCHEDULED, CheckinStatus.SENDING)
    rows = store.rows(user_id=user, statuses=statuses, limit=limit)
    if not rows:
        click.echo("No check-ins." if show_all else "No check-ins waiting to be sent.")
        return
    masker = Masker()
    table = Table("id", "platform", "teacher", "status", "due (teacher's time)", "plan", "outcome")
    for row in rows:
        due = aware(row.due_at)
        local = due.astimezone(calendar.tz(row.tz)).strftime("%a %d %b %H:%M %Z") if due else "-"
        table.add_row(str(row.id), row.platform, row.user_id, row.status, local, masker.mask(row.plan).text[:60],
                      row.outcome or "")
    Console(soft_wrap=True).print(table)


@checkins.command("cancel")
@click.argument("checkin_id", type=int, required=False)
@click.option("--user", default=None, help="cancel every pending check-in of this teacher")
@click.option("--platform", default="slack", show_default=True, help="with --user: the teacher's platform")
def cancel_cmd(checkin_id: int | None, user: str | None, platform: str) -> None:
    """Cancel one check-in by id, or all of a teacher's with --user."""
    store, _ = _parts()
    if checkin_id is None and not user:
        raise click.UsageError("give a check-in id, or --user")
    if user:
        click.echo(f"Cancelled {store.cancel_all(platform, user)} check-in(s) of {user}.")
        return
    assert checkin_id is not None  # checked above
    if store.cancel(checkin_id):
        click.echo(f"Cancelled check-in {checkin_id}.")
    else:
        row = store.get(checkin_id)
        raise click.ClickException(f"there is no check-in {checkin_id}" if row is None
                                   else f"check-in {checkin_id} is {row.status}; only offered or scheduled ones cancel")


@checkins.command("deliver")
def deliver_cmd() -> None:
    """Send the check-ins due now (inside school hours) through the platforms configured, then exit."""
    from adapters.cli_context import Context
    from adapters.wiring import build_runtime

    settings = click.get_current_context().ensure_object(Context).settings
    runtime = build_runtime(settings, auto_starter=False)
    try:
        if runtime.checkins is None or not runtime.checkins.senders:
            raise click.ClickException("no platform to send check-ins through (set SLACK_BOT_TOKEN or MicrosoftAppId)")
        report = runtime.checkins.deliver_due(limit=1000)
        click.echo(f"{report.sent} sent, {report.postponed} put off (outside school hours or failed), "
                   f"{report.failed} failed for good.")
    finally:
        runtime.close()
