"""The core's replies drawn as Adaptive Cards, and the activities that carry them. Pure functions, no network."""

from __future__ import annotations

import copy
from typing import Any

from botbuilder.schema import Activity, ActivityTypes, Attachment

from bot.models import ACTION_LABELS, Action, Reply, Route, Source

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"  # what Teams renders on desktop, web and mobile alike

# What the footer of a card says about where the message went.
ROUTE_LABELS: dict[Route, str] = {
    Route.COACH: "Coaching",
    Route.HELPDESK: "Sent to the IT helpdesk",
    Route.INTEGRATOR: "Passed to a person",
    Route.OTHER: "Chat",
}

def _link_title(title: str) -> str:
    # Square brackets would end the Markdown link early.
    return title.replace("[", "(").replace("]", ")").strip() or "Resource"


def _source_row(source: Source, turn_id: str | None) -> dict[str, Any]:
    """One source: its link, or its title with a "Read it" button that brings the note into the chat."""
    if not source.readable_in_chat or not turn_id:
        text = f"[{_link_title(source.title)}]({source.url})" if source.url else _link_title(source.title)
        return {"type": "TextBlock", "id": f"source-{source.id}", "text": text, "wrap": True, "spacing": "Small"}
    read = {"type": "Action.Submit", "title": ACTION_LABELS[Action.READ_SOURCE],
            "data": {"action": Action.READ_SOURCE.value, "turn_id": turn_id, "source_id": source.id}}
    return {"type": "ColumnSet", "id": f"source-{source.id}", "spacing": "Small", "columns": [
        {"type": "Column", "width": "stretch", "verticalContentAlignment": "Center",
         "items": [{"type": "TextBlock", "text": _link_title(source.title), "wrap": True}]},
        {"type": "Column", "width": "auto", "items": [{"type": "ActionSet", "actions": [read]}]},
    ]}


def reply_card(reply: Reply) -> dict[str, Any]:
    """A Reply drawn as an Adaptive Card: text, sources as links, handoff facts, the four buttons."""
    body: list[dict[str, Any]] = [{"type": "TextBlock", "id": "reply", "text": reply.text, "wrap": True}]
    if reply.sources:
        body.append({"type": "TextBlock", "id": "sources-title", "text": "For when you're ready",
                     "weight": "Bolder", "spacing": "Medium", "wrap": True})
        for source in reply.sources:
            body.append(_source_row(source, reply.turn_id))
    if reply.handoff is not None:
        facts = [{"title": "Ticket", "value": reply.handoff.ticket},
                 {"title": "With", "value": "IT helpdesk" if reply.handoff.target == "helpdesk" else "a person"}]
        if reply.handoff.urgent:
            facts.append({"title": "Priority", "value": "urgent"})
        body.append({"type": "FactSet", "id": "handoff", "facts": facts, "spacing": "Medium"})
    body.append({"type": "TextBlock", "id": "route", "text": ROUTE_LABELS[reply.route], "isSubtle": True,
                 "size": "Small", "spacing": "Small", "wrap": True})
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    if reply.actions and reply.turn_id:
        card["actions"] = [
            {"type": "Action.Submit", "title": ACTION_LABELS[a], "data": {"action": a.value, "turn_id": reply.turn_id}}
            for a in reply.actions
        ]
    return card


def card_attachment(card: dict[str, Any]) -> Attachment:
    """An Adaptive Card as a Bot Framework attachment."""
    return Attachment(content_type=CARD_CONTENT_TYPE, content=card)


def summary_of(text: str, limit: int = 120) -> str:
    """First line of a reply, short: what Teams shows in notifications and the chat list."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def card_activity(card: dict[str, Any], text: str) -> Activity:
    """A message activity carrying one card; `text` gives the notification summary."""
    return Activity(type=ActivityTypes.message, attachments=[card_attachment(card)], summary=summary_of(text))


def reply_activity(reply: Reply) -> Activity:
    """The message activity that carries a Reply."""
    return card_activity(reply_card(reply), reply.text)


def chosen_card(card: dict[str, Any], action: Action, user_name: str | None = None) -> dict[str, Any]:
    """The card after a click: the buttons give way to a line saying what was chosen."""
    updated = copy.deepcopy(card)
    updated.pop("actions", None)
    who = f" ({user_name})" if user_name else ""
    updated["body"] = [b for b in updated.get("body", []) if b.get("id") != "chosen"]
    updated["body"].append({"type": "TextBlock", "id": "chosen", "text": f"✓ {ACTION_LABELS[action]}{who}",
                            "weight": "Bolder", "spacing": "Medium", "wrap": True})
    return updated


def card_update_activity(card: dict[str, Any], activity_id: str) -> Activity:
    """A message update that replaces the card with id `activity_id`."""
    return Activity(type=ActivityTypes.message, id=activity_id, attachments=[card_attachment(card)])
