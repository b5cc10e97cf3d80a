"""Terminal chat: where a newcomer first meets the coach."""

from __future__ import annotations

import uuid

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from bot.coach import Coach
from bot.models import InboundMessage, Reply, Route

ROUTE_STYLE = {Route.COACH: "green", Route.HELPDESK: "yellow", Route.INTEGRATOR: "magenta", Route.OTHER: "cyan"}
ROUTE_LABEL = {Route.COACH: "coaching", Route.HELPDESK: "helpdesk ticket", Route.INTEGRATOR: "a person",
               Route.OTHER: "small talk"}


def render(console: Console, reply: Reply) -> None:
    """Draw one reply: text, route, sources as titles with links."""
    body = Text(reply.text)
    for source in reply.sources:
        body.append("\n• ")
        body.append(source.title, style=f"link {source.url}" if source.url else "bold")
        if source.url:
            body.append(f"  {source.url}", style="dim")
    subtitle = f"route: {ROUTE_LABEL[reply.route]}"
    if reply.handoff:
        subtitle += f" · {reply.handoff.ticket}" + (" · urgent" if reply.handoff.urgent else "")
    console.print(Panel(body, title="coach", subtitle=subtitle, border_style=ROUTE_STYLE[reply.route],
                        subtitle_align="right"))


def chat(coach: Coach, console: Console | None = None, user: str = "you") -> None:
    """Read questions from the terminal until end of input or 'quit'."""
    console = console or Console()
    conversation = f"console-{uuid.uuid4().hex[:8]}"
    console.print("[bold]Integration Coach[/bold]: ask about using technology for learning. "
                  "Type [bold]quit[/bold] to leave, [bold]new[/bold] to start a fresh conversation.")
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
            continue
        reply = coach.handle(InboundMessage(platform="console", conversation_id=conversation, user_id=user, text=text))
        render(console, reply)
