"""`coach replay`: conversations in, decisions out (shared/contracts/replay.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from bot.coach import Coach
from bot.models import InboundMessage, Reply


def reply_record(case_id: Any, conversation: Any, reply: Reply) -> dict[str, Any]:
    """The contract's output object for one turn."""
    handoff = None
    if reply.handoff is not None:
        handoff = {"target": reply.handoff.target, "reason": reply.handoff.reason, "ticket": reply.handoff.ticket}
    # An offered check-in is recorded, never scheduled or sent: replay only says it was offered.
    followup = reply.followup.model_dump(mode="json") if reply.followup is not None else None
    return {"id": case_id, "conversation": conversation, "route": reply.route.value, "reply": reply.text,
            "sources": reply.source_ids(), "handoff": handoff, "followup": followup}


def replay_lines(coach: Coach, lines: Iterable[str], run_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Send each case through `Coach.handle` in order; a bad line yields an error object and the run goes on."""
    # Each run is its own set of conversations, so replaying a file twice starts fresh.
    run = run_id or uuid.uuid4().hex[:12]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            yield {"id": None, "line": number, "error": f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})"}
            continue
        if not isinstance(case, dict):
            yield {"id": None, "line": number, "error": f"line {number}: must be a JSON object"}
            continue
        case_id = case.get("id")
        text = case.get("text")
        if not isinstance(text, str):
            yield {"id": case_id, "line": number, "conversation": case.get("conversation"),
                   "error": f"line {number}: field 'text' must be a string"}
            continue
        conversation = case.get("conversation") or case_id or f"line-{number}"
        message = InboundMessage(platform="replay", conversation_id=str(conversation), thread_id=run,
                                 user_id=str(case.get("user") or "replay-user"), text=text,
                                 message_id=str(case_id) if case_id is not None else None)
        try:
            reply = coach.handle(message)
        except Exception as exc:  # one broken case must not stop the run
            yield {"id": case_id, "line": number, "conversation": conversation, "error": f"line {number}: {exc}"}
            continue
        yield reply_record(case_id, case.get("conversation"), reply)
