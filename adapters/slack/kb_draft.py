"""The integrators' "Save to knowledge base" shortcut: a modal pre-filled from a message, a draft file out.

Drafts are written in the contract format (shared/contracts/knowledge-format.md) with an extra
`status: draft` field, into a drafts folder an integrator reviews before `coach kb import`. The
importer warns about the unknown `status` field, which is the point: a draft never slips in unseen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adapters.slack.translate import plain_text
from knowledge.entry import GRADE_BANDS, KnowledgeEntry, Kind
from knowledge import drafts

SHORTCUT_CALLBACK = "save_to_kb"
VIEW_CALLBACK = "save_to_kb_submit"
INPUT_LIMIT = 3000  # Slack's cap on a plain_text_input value
MAX_QUESTIONS = 8

# block_id -> the entry field it fills (errors are reported against the block)
FIELD_BLOCKS = {"title": "kb_title", "id": "kb_title", "kind": "kb_kind", "grades": "kb_grades",
                "tags": "kb_tags", "questions": "kb_questions", "body": "kb_body"}

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


def slugify(title: str) -> str:
    """An entry id from a title: lowercase words joined by '-', 3 to 80 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80].strip("-")
    return slug if len(slug) >= 3 else f"draft-{slug}".strip("-")


def suggest(message_text: str) -> dict[str, Any]:
    """Title, body and questions suggested from a Slack message's text."""
    text = plain_text(message_text)
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    questions = [s for s in sentences if s.endswith("?")][:MAX_QUESTIONS]
    first = next((s for s in sentences if not s.endswith("?")), sentences[0] if sentences else "")
    title = first.rstrip(".!").strip()
    if len(title) > 100:
        title = title[:100].rsplit(" ", 1)[0]
    return {"title": title, "body": text[:INPUT_LIMIT], "questions": questions}


def _input(block_id: str, label: str, *, initial: str = "", multiline: bool = False, optional: bool = False,
           placeholder: str | None = None, max_length: int = INPUT_LIMIT) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value", "multiline": multiline,
                               "max_length": max_length}
    if initial:
        element["initial_value"] = initial[:max_length]
    if placeholder:
        element["placeholder"] = {"type": "plain_text", "text": placeholder}
    return {"type": "input", "block_id": block_id, "optional": optional,
            "label": {"type": "plain_text", "text": label}, "element": element}


def _option(value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": value}, "value": value}


def draft_modal(message: Mapping[str, Any], *, channel_id: str | None) -> dict[str, Any]:
    """The modal an integrator sees, pre-filled from the message the shortcut was used on."""
    s = suggest(str(message.get("text") or ""))
    meta = json.dumps({"channel": channel_id, "ts": message.get("ts")})
    return {
        "type": "modal", "callback_id": VIEW_CALLBACK, "private_metadata": meta,
        "title": {"type": "plain_text", "text": "Save to knowledge base"},
        "submit": {"type": "plain_text", "text": "Save draft"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "context", "elements": [{"type": "mrkdwn", "text":
                "Saved as a *draft* for an integrator to review; it is not used until it is imported."}]},
            _input("kb_title", "Title", initial=s["title"], max_length=200),
            {"type": "input", "block_id": "kb_kind", "label": {"type": "plain_text", "text": "Kind"},
             "element": {"type": "static_select", "action_id": "value", "initial_option": _option(Kind.STRATEGY.value),
                         "options": [_option(k.value) for k in Kind]}},
            {"type": "input", "block_id": "kb_grades", "optional": True,
             "label": {"type": "plain_text", "text": "Grade bands"},
             "element": {"type": "multi_static_select", "action_id": "value",
                         "options": [_option(g) for g in GRADE_BANDS]}},
            _input("kb_tags", "Tags (comma separated)", optional=True, max_length=500),
            _input("kb_questions", "Coaching questions (one per line, each ending with ?)",
                   initial="\n".join(s["questions"]), multiline=True,
                   placeholder="What should students notice that they miss on paper?"),
            _input("kb_body", "Coaching note", initial=s["body"], multiline=True),
        ],
    }


def _value(values: Mapping[str, Any], block_id: str) -> Any:
    element = (values.get(block_id) or {}).get("value") or {}
    if element.get("type") == "static_select":
        return (element.get("selected_option") or {}).get("value")
    if element.get("type") == "multi_static_select":
        return [o.get("value") for o in element.get("selected_options") or []]
    return element.get("value") or ""


def entry_from_view(view: Mapping[str, Any], *, user_id: str,
                    today: date | None = None) -> tuple[KnowledgeEntry | None, dict[str, str]]:
    """The submitted modal as a draft entry, or Slack-style errors keyed by block_id."""
    values = (view.get("state") or {}).get("values") or {}
    title = str(_value(values, "kb_title")).strip()
    questions = [q.strip() for q in str(_value(values, "kb_questions")).splitlines() if q.strip()]
    tags = [t.strip() for t in str(_value(values, "kb_tags")).split(",") if t.strip()]
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except json.JSONDecodeError:
        meta = {}
    extra: dict[str, Any] = {"status": "draft"}
    if meta.get("channel") and meta.get("ts"):
        extra["source"] = f"slack:{meta['channel']}/{meta['ts']}"
    errors: dict[str, str] = {}
    if len(questions) > MAX_QUESTIONS:
        errors["kb_questions"] = f"At most {MAX_QUESTIONS} questions, one per line."
    try:
        entry = KnowledgeEntry(
            id=slugify(title or "draft"), title=title, kind=_value(values, "kb_kind") or Kind.STRATEGY.value,
            tags=tags, grades=_value(values, "kb_grades") or [], questions=questions,
            body=str(_value(values, "kb_body")), owner=f"slack:{user_id}", updated=today or date.today(),
            extra=extra,
        )
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "body"
            block = FIELD_BLOCKS.get(field, "kb_body")
            message = str(err["msg"]).removeprefix("Value error, ")
            if field == "questions" and "at least 1" in message:
                message = "Add at least one question, ending with '?'."
            errors.setdefault(block, message[:150])
        return None, errors
    return (None, errors) if errors else (entry, {})


def write_draft(entry: KnowledgeEntry, drafts_dir: Path) -> Path:
    """Write the draft as `<id>.md`, never over an existing draft (a `-2`, `-3` suffix instead)."""
    return drafts.write_draft(entry, drafts_dir, keep_both=True)


def saved_view(path: Path, entry_id: str) -> dict[str, Any]:
    """The modal after saving: where the draft is and what happens next."""
    return {
        "type": "modal", "title": {"type": "plain_text", "text": "Draft saved"},
        "close": {"type": "plain_text", "text": "Done"},
        "blocks": [{"type": "section", "block_id": "kb_saved", "text": {"type": "mrkdwn", "text":
            f"Saved draft `{entry_id}` to `{path}`.\nReview it, remove the `status: draft` line, "
            "then import the folder with `coach kb import`."}}],
    }
