"""Pure translation between Slack and the core: events in, Block Kit out. No network, no decisions.

How a `Reply` is drawn (the tests and other tools read it back with `route_of` / `source_ids_of`):

| block | block_id | what |
|---|---|---|
| section | `coach.reply.<route>` (then `.2`, `.3` when long) | the reply text, mrkdwn |
| context | `coach.source.<entry id>` | one per source with a link: the entry's title as the link |
| section | `coach.source.<entry id>` | one per source without a link: its title and a "Read it" button (`coach.read_source`, value `<turn_id>|<thread_id>|<entry id>`) that posts the note |
| context | `coach.ticket.<ticket>` | the ticket, when the reply opened or added to one |
| actions | `coach.actions` | the four buttons; action_id `coach.<action>`, value `<turn_id>|<thread_id>` |
| context | `coach.feedback` | replaces the buttons once clicked: "✓ You said: This helped" |
| context | `coach.thinking` | the indicator posted only when an answer is slow |
| context | `coach.question` | the question a `/coach` user asked, above the answer in the channel |

The route sits in a block_id rather than on screen: teachers need the answer, not the plumbing,
while tests and integrators reading the channel history can still see where a message went.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.slack import PLATFORM
from bot.models import ACTION_LABELS, Action, ActionEvent, InboundMessage, PlatformRef, Reply, Route

REPLY_BLOCK = "coach.reply"
SOURCE_BLOCK = "coach.source"
HANDOFF_BLOCK = "coach.ticket"
ACTIONS_BLOCK = "coach.actions"
FEEDBACK_BLOCK = "coach.feedback"
THINKING_BLOCK = "coach.thinking"
QUESTION_BLOCK = "coach.question"
ACTION_PREFIX = "coach."
HANDOFF_ACTIONS = {"handoff_claim": "claim", "handoff_resolve": "resolve"}

SECTION_LIMIT = 3000  # Slack's limit for a section's text
TEXT_LIMIT = 3900  # fallback text: Slack truncates long `text`; keep well inside its 4,000 guidance
THINKING_TEXT = "Thinking about that…"

# Subtypes that are still a person writing to the coach. Everything else (edits, deletions, bot
# messages, joins, topic changes) is ignored. A file shared with a question is still a question.
ANSWERED_SUBTYPES = {None, "file_share", "thread_broadcast"}

_SLACK_TS = re.compile(r"^\d+\.\d+$")
_SLACK_MARKUP = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_MD_BOLD = re.compile(r"\*\*(.+?)\*\*")
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.M)
_MD_BULLET = re.compile(r"^(\s*)[-*]\s+", re.M)


@dataclass(frozen=True)
class SlackMessage:
    """What goes to chat.postMessage / chat.update / a response_url: fallback text and blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the Web API and `respond()`."""
        return {"text": self.text, "blocks": self.blocks}


# -- Slack text in ----------------------------------------------------------------------------

def plain_text(text: str | None, *, bot_user_id: str | None = None) -> str:
    """Slack's encoded message text as a person would read it; mentions of the bot are removed."""

    def readable(m: re.Match[str]) -> str:
        target, label = m.group(1), m.group(2)
        if target.startswith("@"):
            uid = target[1:]
            return "" if uid == bot_user_id else "@" + (label or uid)
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            name = target[1:].split("^", 1)[0]
            if label:
                return label
            return "@" + name if name in ("here", "channel", "everyone") else ""
        url = target.removeprefix("mailto:")
        if label and label not in (target, url):
            return f"{label} ({url})"
        return url

    out = _SLACK_MARKUP.sub(readable, text or "")
    # Slack escapes exactly these three; html.unescape would also turn "&copy" etc. into symbols.
    out = out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    out = re.sub(r"[ \t]+", " ", out)
    return "\n".join(line.strip() for line in out.splitlines()).strip()


def is_slack_ts(value: str | None) -> bool:
    """True for a message timestamp ("1515449522.000016"), the only thing Slack accepts as thread_ts."""
    return bool(value and _SLACK_TS.match(value))


def message_from_event(event: Mapping[str, Any], *, bot_user_id: str | None = None) -> InboundMessage | None:
    """An `app_mention` or DM `message` event as an `InboundMessage`; None for anything to ignore.

    A channel thread is one conversation: `thread_id` is the thread's root (the mention itself when
    it starts one). In a DM the whole DM is the conversation unless the teacher opens a thread.
    """
    etype = event.get("type")
    if etype not in ("app_mention", "message"):
        return None
    if event.get("subtype") not in ANSWERED_SUBTYPES or event.get("hidden") or event.get("edited"):
        return None
    if event.get("bot_id") or event.get("bot_profile"):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if not user or not channel or not ts or user == bot_user_id:
        return None
    if etype == "message" and event.get("channel_type") != "im":
        # In channels the coach answers mentions only (app_mention); a channel `message` event would
        # be the same words a second time if an admin subscribed to message.channels.
        return None
    thread = event.get("thread_ts") or (ts if etype == "app_mention" else None)
    return InboundMessage(
        platform=PLATFORM, conversation_id=channel, thread_id=thread, user_id=user,
        text=plain_text(event.get("text"), bot_user_id=bot_user_id),
        is_direct=event.get("channel_type") == "im", message_id=event.get("client_msg_id") or ts,
        platform_ref=PlatformRef(channel=channel, message_ts=ts),
    )


def message_from_command(body: Mapping[str, Any], *, thread_id: str | None) -> InboundMessage:
    """A `/coach <question>` slash command; `thread_id` is where its answer lives (see app.py)."""
    channel = body["channel_id"]
    return InboundMessage(
        platform=PLATFORM, conversation_id=channel, thread_id=thread_id, user_id=body["user_id"],
        user_name=body.get("user_name"), text=plain_text(body.get("text")),
        is_direct=channel.startswith("D") or body.get("channel_name") == "directmessage",
        message_id=body.get("trigger_id"), platform_ref=PlatformRef(channel=channel),
    )


def button_value(turn_id: str, thread_id: str | None, source_id: str | None = None) -> str:
    """What a button carries: the turn it answers, the conversation thread, and for "Read it" the source."""
    value = f"{turn_id}|{thread_id or ''}"
    return f"{value}|{source_id}" if source_id else value


def action_from_payload(body: Mapping[str, Any]) -> ActionEvent | None:
    """A click on one of the coach's buttons (`block_actions`) as an `ActionEvent`; None if malformed."""
    actions = body.get("actions") or []
    if not actions:
        return None
    clicked = actions[0]
    try:
        action = Action(str(clicked.get("action_id", "")).removeprefix(ACTION_PREFIX))
    except ValueError:
        return None
    turn_id, _, rest = str(clicked.get("value") or "").partition("|")
    thread, _, source_id = rest.partition("|")
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    user = (body.get("user") or {}).get("id")
    if not turn_id or not channel or not user:
        return None
    return ActionEvent(
        platform=PLATFORM, conversation_id=channel, thread_id=thread or None, user_id=user,
        turn_id=turn_id, action=action, source_id=source_id or None,
        platform_ref=PlatformRef(channel=channel, message_ts=container.get("message_ts")),
    )


# -- Block Kit out ----------------------------------------------------------------------------

def mrkdwn(text: str) -> str:
    """Plain or Markdown text as Slack mrkdwn: escaped, with links, bold and bullets translated."""
    out = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = _MD_LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", out)
    out = _MD_BOLD.sub(r"*\1*", out)
    out = _MD_HEADING.sub(r"*\1*", out)
    return _MD_BULLET.sub(r"\1• ", out)


def _sections(text: str, route: Route) -> list[dict[str, Any]]:
    chunks: list[str] = []
    current = ""
    for para in mrkdwn(text).split("\n"):
        while len(para) > SECTION_LIMIT:  # one enormous line: cut it hard
            if current:
                chunks.append(current)
                current = ""
            chunks.append(para[:SECTION_LIMIT])
            para = para[SECTION_LIMIT:]
        candidate = f"{current}\n{para}" if current else para
        if len(candidate) > SECTION_LIMIT:
            chunks.append(current)
            candidate = para
        current = candidate
    if current.strip() or not chunks:
        chunks.append(current or " ")
    base = f"{REPLY_BLOCK}.{route.value}"
    return [{"type": "section", "block_id": base if i == 0 else f"{base}.{i + 1}",
             "text": {"type": "mrkdwn", "text": chunk}} for i, chunk in enumerate(chunks)]


def _context(block_id: str, text: str) -> dict[str, Any]:
    return {"type": "context", "block_id": block_id, "elements": [{"type": "mrkdwn", "text": text}]}


def _link(title: str, url: str | None) -> str:
    label = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "-")
    return f"<{url}|{label}>" if url else label


def render_reply(reply: Reply, *, thread_id: str | None = None,
                 header: Sequence[dict[str, Any]] = ()) -> SlackMessage:
    """A `Reply` as Block Kit: text, sources as titled links, the ticket, and the feedback buttons."""
    blocks: list[dict[str, Any]] = [*header, *_sections(reply.text, reply.route)]
    for source in reply.sources:
        block_id = f"{SOURCE_BLOCK}.{source.id}"
        if source.readable_in_chat and reply.turn_id:
            blocks.append({"type": "section", "block_id": block_id,
                           "text": {"type": "mrkdwn", "text": f":page_facing_up: {_link(source.title, None)}"},
                           "accessory": {"type": "button", "action_id": f"{ACTION_PREFIX}{Action.READ_SOURCE.value}",
                                         "value": button_value(reply.turn_id, thread_id, source.id),
                                         "text": {"type": "plain_text", "text": ACTION_LABELS[Action.READ_SOURCE]}}})
        else:
            blocks.append(_context(block_id, f":page_facing_up: {_link(source.title, source.url)}"))
    if reply.handoff is not None:
        h = reply.handoff
        who = "IT helpdesk ticket" if h.target == "helpdesk" else "Passed to a person, ref"
        extra = " · marked urgent" if h.urgent else ""
        blocks.append(_context(f"{HANDOFF_BLOCK}.{h.ticket}", f":ticket: {who} *{h.ticket}*{extra}"))
    if reply.actions and reply.turn_id:
        value = button_value(reply.turn_id, thread_id)
        blocks.append({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [
            {"type": "button", "action_id": f"{ACTION_PREFIX}{a.value}", "value": value,
             "text": {"type": "plain_text", "text": ACTION_LABELS[a], "emoji": True},
             **({"style": "primary"} if a is Action.HELPED else {})}
            for a in reply.actions
        ]})
    text = reply.text
    if reply.handoff is not None and reply.handoff.ticket not in text:
        text += f" (ref {reply.handoff.ticket})"
    return SlackMessage(text=text[:TEXT_LIMIT], blocks=blocks)


def thinking_message(header: Sequence[dict[str, Any]] = ()) -> SlackMessage:
    """The indicator posted only when an answer is slow; the answer replaces it."""
    return SlackMessage(text=THINKING_TEXT,
                        blocks=[*header, _context(THINKING_BLOCK, f":hourglass_flowing_sand: _{THINKING_TEXT}_")])


def question_header(user_id: str, question: str) -> list[dict[str, Any]]:
    """Who asked what with `/coach`, shown above the answer so the channel learns from it too."""
    quoted = mrkdwn(question)[:SECTION_LIMIT - 40]
    return [_context(QUESTION_BLOCK, f"<@{user_id}> asked: {quoted}")]


def question_message(user_id: str, question: str) -> SlackMessage:
    """The channel message a `/coach` question starts as; its answer is added by chat.update."""
    return SlackMessage(text=f"<@{user_id}> asked: {mrkdwn(question)}"[:TEXT_LIMIT],
                        blocks=question_header(user_id, question))


def header_blocks(blocks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The question line of a message, if it has one (kept when the answer is drawn under it)."""
    return [dict(b) for b in blocks if b.get("block_id") == QUESTION_BLOCK]


def after_feedback(blocks: Sequence[Mapping[str, Any]], *, action: Action, user_id: str,
                   direct: bool) -> list[dict[str, Any]]:
    """The message's blocks with the buttons replaced by a line saying what was clicked."""
    who = "You" if direct else f"<@{user_id}>"
    kept = [dict(b) for b in blocks
            if b.get("block_id") not in (ACTIONS_BLOCK, FEEDBACK_BLOCK) and b.get("type") != "actions"]
    return [*kept, _context(FEEDBACK_BLOCK, f":white_check_mark: {who} said: {ACTION_LABELS[action]}")]


def handoff_update(blocks: Sequence[Mapping[str, Any]], *, text: str, action: str) -> SlackMessage:
    """An integrators'-channel handoff message after a claim or resolve: new text, fewer buttons."""
    done = {"handoff_claim"} if action == "claim" else set(HANDOFF_ACTIONS)
    out: list[dict[str, Any]] = []
    replaced = False
    for block in blocks:
        b = dict(block)
        if b.get("type") == "section" and not replaced:
            b = {**b, "text": {"type": "mrkdwn", "text": mrkdwn(text)[:SECTION_LIMIT]}}
            replaced = True
        elif b.get("type") == "actions":
            elements = [e for e in b.get("elements", []) if e.get("action_id") not in done]
            if not elements:
                continue
            b = {**b, "elements": elements}
        out.append(b)
    if not replaced:
        out.insert(0, {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn(text)[:SECTION_LIMIT]}})
    return SlackMessage(text=text[:TEXT_LIMIT], blocks=out)


def search_results(query: str, hits: Sequence[tuple[str, str, float]], confidence: float) -> SlackMessage:
    """`/coach-kb search` results for an integrator: rank, title, id and fused score."""
    if not hits:
        body = f"Nothing in the knowledge base matches *{mrkdwn(query)}*."
    else:
        lines = [f"{i}. *{mrkdwn(title)}* `{eid}` · score {score:.3f}" for i, (eid, title, score) in enumerate(hits, 1)]
        body = f"Results for *{mrkdwn(query)}* (confidence {confidence:.2f}):\n" + "\n".join(lines)
    plain = f"Results for {query}: " + ", ".join(eid for eid, _, _ in hits) if hits else f"No results for {query}"
    return SlackMessage(text=plain[:TEXT_LIMIT], blocks=[{"type": "section", "block_id": "coach.kb.search",
                                                          "text": {"type": "mrkdwn", "text": body[:SECTION_LIMIT]}}])


def notice(text: str, block_id: str = "coach.notice") -> SlackMessage:
    """A one-section message (usage hints, refusals, errors)."""
    return SlackMessage(text=text, blocks=[{"type": "section", "block_id": block_id,
                                            "text": {"type": "mrkdwn", "text": mrkdwn(text)}}])


# -- reading our own representation back (tests, tools) ---------------------------------------

def route_of(blocks: Sequence[Mapping[str, Any]]) -> str | None:
    """The route a drawn reply took, from its first `coach.reply.<route>` block."""
    for b in blocks:
        bid = str(b.get("block_id") or "")
        if bid.startswith(REPLY_BLOCK + "."):
            return bid[len(REPLY_BLOCK) + 1:].split(".", 1)[0]
    return None


def source_ids_of(blocks: Sequence[Mapping[str, Any]]) -> list[str]:
    """The knowledge entry ids a drawn reply cites, best first."""
    prefix = SOURCE_BLOCK + "."
    return [str(b["block_id"])[len(prefix):] for b in blocks if str(b.get("block_id") or "").startswith(prefix)]


def ticket_of(blocks: Sequence[Mapping[str, Any]]) -> str | None:
    """The ticket a drawn reply shows, if any."""
    prefix = HANDOFF_BLOCK + "."
    for b in blocks:
        bid = str(b.get("block_id") or "")
        if bid.startswith(prefix):
            return bid[len(prefix):]
    return None


def unescape(text: str) -> str:
    """Slack mrkdwn back to the characters it escaped (for comparing texts in tests)."""
    return html.unescape(text)
