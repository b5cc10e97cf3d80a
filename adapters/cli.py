"""The `coach` command: chat, ask, replay, and the knowledge-base tools."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from adapters.cli_context import Context, err, import_progress, pass_ctx, runtime  # noqa: F401  (re-exported)
from bot.settings import SettingsError
from bot.triage.corpus import TriageConfigError


class CoachGroup(click.Group):
    """Turns known start-up errors into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context):
        from adapters.wiring import StartupError
        from knowledge.embeddings import EmbeddingModelError
        from knowledge.store import StoreError
        from bot.state.database import StateError

        try:
            return super().invoke(ctx)
        except (SettingsError, StartupError, StoreError, StateError, TriageConfigError, EmbeddingModelError) as exc:
            err.print(f"[red]coach: {exc}[/red]", highlight=False)
            sys.exit(2)


@click.group(cls=CoachGroup)
def main() -> None:
    """Integration Coach: a first-line technology-integration coach for schools."""


@main.command()
@pass_ctx
def chat(ctx: Context) -> None:
    """Chat with the coach in the terminal."""
    from adapters.console import chat as run_chat

    run_chat(runtime(ctx).coach)


@main.command()
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="print the reply as JSON")
@click.option("--conversation", default=None, help="continue a conversation by id")
@pass_ctx
def ask(ctx: Context, text: str, as_json: bool, conversation: str | None) -> None:
    """Ask one question and print the reply."""
    import uuid

    from adapters.console import render
    from bot.models import InboundMessage

    coach = runtime(ctx).coach
    conv = conversation or f"ask-{uuid.uuid4().hex[:8]}"
    reply = coach.handle(InboundMessage(platform="console", conversation_id=conv, user_id="cli", text=text))
    if as_json:
        click.echo(json.dumps({"conversation": conv, **reply.model_dump(mode="json")}, ensure_ascii=False))
    else:
        render(Console(), reply)


@main.command()
@click.argument("cases", type=click.Path(dir_okay=False, allow_dash=True))
@pass_ctx
def replay(ctx: Context, cases: str) -> None:
    """Send each line of CASES.jsonl through the coach; print one JSON object per line."""
    from adapters.replay import replay_lines

    coach = runtime(ctx, deliver=False).coach  # replay records escalations and never delivers them
    try:
        stream = sys.stdin if cases == "-" else open(cases, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise click.ClickException(f"cannot read {cases}: {exc.strerror}") from None
    with stream:
        for record in replay_lines(coach, stream):
            click.echo(json.dumps(record, ensure_ascii=False))


@main.group()
def serve() -> None:
    """Serve the coach on a chat platform."""


from adapters import kb_commands  # noqa: E402  (registers `coach kb ...`)

main.add_command(kb_commands.kb)
# Platform and operations commands register below, one line each.
from adapters.teams.command import teams as _teams; serve.add_command(_teams)  # noqa: E402,E702
from adapters.teams.package_command import teams_group; main.add_command(teams_group, name="teams")  # noqa: E402,E702
from adapters.slack.command import slack as _slack; serve.add_command(_slack)  # noqa: E402,E702
from adapters.report_commands import register as _reports; _reports(main, kb_commands.kb)  # noqa: E402,E702  (coach report, coach kb draft-gaps, draft-from-escalation)
from adapters.handoff_commands import register as _handoffs; _handoffs(main)  # noqa: E402,E702  (coach handoffs ..., coach doctor)
from adapters.db_commands import db as _db; main.add_command(_db)  # noqa: E402,E702  (coach db upgrade|current)
from adapters.triage_commands import triage as _triage; main.add_command(_triage)  # noqa: E402,E702  (coach triage explain|check)
from adapters.privacy_commands import privacy as _privacy; main.add_command(_privacy)  # noqa: E402,E702  (coach privacy purge|export|erase|audit|roster)
from adapters.checkin_commands import checkins as _checkins; main.add_command(_checkins)  # noqa: E402,E702  (coach checkins list|cancel|deliver)

if __name__ == "__main__":
    main()
