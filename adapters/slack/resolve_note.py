"""Resolve on a Slack handoff card: a modal asks for an optional note of what the integrator answered.

A click on Resolve opens the modal inside the three seconds its trigger_id lives (after the core
has said this person may resolve it); the submission is recorded in the inbound queue like any
click and carries the note to `Coach.escalation_action`, which checks again, masks the note and
stores it. Where the card is (channel, ts) and the click's response_url ride in the modal's
private_metadata, so a refusal is said privately where the person clicked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

VIEW_CALLBACK = "coach.handoff_resolve_note"
NOTE_BLOCK = "coach.handoff.note"
NOTE_ACTION = "note"
NOTE_LIMIT = 3000  # Slack's cap on a plain_text_input value


@dataclass(frozen=True)
class ResolveForm:
    """A submitted Resolve modal: which escalation, the note (None when left empty), where it was clicked."""

    escalation_id: int
    note: str | None
    channel: str
    message_ts: str
    response_url: str


def resolve_modal(escalation_id: int, *, channel: str, message_ts: str, response_url: str) -> dict[str, Any]:
    """The modal a Resolve click opens: one optional multi-line note."""
    metadata = json.dumps({"escalation_id": escalation_id, "channel": channel, "message_ts": message_ts,
                           "response_url": response_url})
    return {
        "type": "modal", "callback_id": VIEW_CALLBACK, "private_metadata": metadata,
        "title": {"type": "plain_text", "text": "Resolve handoff"},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": NOTE_BLOCK, "optional": True,
             "label": {"type": "plain_text", "text": "What did you answer? (optional)"},
             "hint": {"type": "plain_text", "text": "Kept with the handoff, student names masked, and used by "
                                                    "`coach kb draft-from-escalation` to start a knowledge entry."},
             "element": {"type": "plain_text_input", "action_id": NOTE_ACTION, "multiline": True,
                         "max_length": NOTE_LIMIT}},
        ],
    }


def submitted(view: dict[str, Any]) -> ResolveForm | None:
    """The form a Resolve modal submission carries; None when it is not one of ours or is malformed."""
    if view.get("callback_id") != VIEW_CALLBACK:
        return None
    try:
        meta = json.loads(view.get("private_metadata") or "")
        escalation_id = int(meta["escalation_id"])
    except (ValueError, KeyError, TypeError):
        return None
    values = ((view.get("state") or {}).get("values") or {}).get(NOTE_BLOCK) or {}
    note = (values.get(NOTE_ACTION) or {}).get("value")
    return ResolveForm(escalation_id=escalation_id,
                       note=note if isinstance(note, str) and note.strip() else None,
                       channel=str(meta.get("channel") or ""), message_ts=str(meta.get("message_ts") or ""),
                       response_url=str(meta.get("response_url") or ""))
