"""Terminal chat: where a newcomer first meets the coach."""

from __future__ import annotations

import re
import uuid

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from bot.coach import Coach
from bot.models import Action, ActionEvent, InboundMessage, Reply, Route

READ = re.compile(r"read\s*(\d+)?")  # "/read 2": only the command, so "read more about padlet" is a message
ROUTE_STYLE = {Route.COACH: "green", Route.HELPDESK: "yellow", Route.INTEGRATOR: "magenta", Route.OTHER: "cyan"}
ROUTE_LABEL = {Route.COACH: "coaching", Route.HELPDESK: "helpdesk ticket", Route.INTEGRATOR: "a person",
               Route.OTHER: "small talk"}


def render(console: Console, reply: Reply) -> None:
    """Draw one reply: text, route, sources numbered, each with its link or how to read it here."""
    body = Text(reply.text)
    for number, source in enumerate(reply.sources, 1):
        body.append(f"\n[{number}] ")
        body.append(source.title, style=f"link {source.url}" if source.url else "bold")
        if source.url:
            body.append(f"  {source.url}", style="dim")
        elif reply.turn_id:
            body.append(f"  (/read {number} to read it here)", style="dim")
    subtitle = f"route: {ROUTE_LABEL[reply.route]}"
    if reply.handoff:
        subtitle += f" · {reply.handoff.ticket}" + (" · urgent" if reply.handoff.urgent else "")
    console.print(Panel(body, title="coach", subtitle=subtitle, border_style=ROUTE_STYLE[reply.route],
                        subtitle_align="right"))


def read_event(command: str, last: Reply | None, conversation: str, user: str) -> ActionEvent | None:
    """`/read N` as the "Read it" action on source N of the last reply; None when it names no source."""
    match = READ.fullmatch(command.strip().lower().lstrip("/"))
    if match is None or not match.group(1) or last is None or not last.turn_id:
        return None
    index = int(match.group(1)) - 1
    if not 0 <= index < len(last.sources):
        return None
    return ActionEvent(platform="console", conversation_id=conversation, user_id=user, turn_id=last.turn_id,
                       action=Action.READ_SOURCE, source_id=last.sources[index].id)


def chat(coach: Coach, console: Console | None = None, user: str = "you") -> None:
    """Read questions from the terminal until end of input or 'quit'."""
    console = console or Console()
    conversation = f"console-{uuid.uuid4().hex[:8]}"
    console.print("[bold]Integration Coach[/bold]: ask about using technology for learning. "
                  "Type [bold]quit[/bold] to leave, [bold]new[/bold] to start a fresh conversation.")
    last: Reply | None = None  # the latest reply with sources, for /read N
    while True:
        try:
            text = console.input("[bold blue]you>[/bold blue] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        # Chat habits from Slack and Teams ("/quit", "/new") mean the same here.
        command = text.strip().lower().lstrip("/")
        if command in ("quit", "exit", "bye!", ":q", "q"):
            return
        if command == "new":
            conversation = f"console-{uuid.uuid4().hex[:8]}"
            console.print("[dim]Started a new conversation.[/dim]")
            last = None
            continue
        if READ.fullmatch(command):
            event = read_event(command, last, conversation, user)
            if event is None:
                console.print("[dim]/read N reads source N of the last coaching reply, e.g. /read 1.[/dim]")
                continue
            answer = coach.handle_action(event)
            if answer is not None:
                render(console, answer)
            continue
        reply = coach.handle(InboundMessage(platform="console", conversation_id=conversation, user_id=user, text=text))
        render(console, reply)
        if reply.sources and reply.turn_id:
            last = reply
