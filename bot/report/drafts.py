"""Draft knowledge entries for the curation loop: one per knowledge gap, or from a resolved escalation.

Each draft is a valid entry marked `status: draft`, built from masked questions only; an
integrator finishes it and imports it (`coach kb draft-gaps`, `coach kb draft-from-escalation`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from bot.handoff.context import shorten
from bot.handoff.escalations import PREFIX
from bot.report.masking import Scrubber
from bot.report.results import CATEGORY_LABELS, GAP_SIGNALS, MAX_DRAFT_QUESTIONS, Gap
from bot.report.wording import LABEL_STOPWORDS, PLACEHOLDER, as_question, grade_bands
from knowledge.entry import Kind, KnowledgeEntry

DRAFT_NOTE = (
    "Finish it before importing: write the coaching note (when this helps, when it does not, what "
    "to watch for), turn the questions above into Socratic questions the coach may ask, add links, "
    "a kind, grades and a SAMR level, then remove `status: draft`."
)


def slug(text: str, prefix: str = "draft", max_words: int = 6) -> str:
    """An entry id (`draft-virtual-reality-headsets`) from a label: its first few topical words."""
    words = re.findall(r"[a-z0-9]+", PLACEHOLDER.sub(" ", text).lower())
    topical = [w for w in words if w not in LABEL_STOPWORDS and len(w) > 2] or words
    base = "-".join([prefix, *topical[:max_words]])[:72].rstrip("-")
    return base if len(base) >= 3 else f"{prefix}-entry"


def unique_id(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`... when taken; the result is added to `taken`."""
    candidate, n = base, 2
    while candidate in taken:
        candidate = f"{base[:74]}-{n}"
        n += 1
    taken.add(candidate)
    return candidate


def gap_draft(gap: Gap, taken: set[str], today: date | None = None) -> KnowledgeEntry | None:
    """A draft entry for one gap, for an integrator to finish and import; None with no usable question."""
    questions = gap.asked[:MAX_DRAFT_QUESTIONS]
    if not questions:
        return None
    title = gap.label.replace(" \u00b7 ", ", ") if gap.keywords else questions[0]
    title = shorten(title[:1].upper() + title[1:], 200)
    weeks = (f"week of {gap.first_week}" if gap.first_week == gap.last_week
             else f"weeks of {gap.first_week} to {gap.last_week}")
    lines = [
        f"DRAFT: {gap.questions} coaching question(s) from {gap.teachers} teachers that the knowledge "
        f"base did not answer well ({weeks}; "
        + ", ".join(f"{GAP_SIGNALS[k]}: {n}" for k, n in gap.signals.items()) + ").",
        "",
        DRAFT_NOTE,
    ]
    if gap.closest_entry:
        lines += ["", f"Closest existing entry: `{gap.closest_entry}` ({gap.closest_title}), cosine "
                      f"{gap.closest_similarity:.2f}. If it nearly fits, extend it instead."]
    lines += ["", "What teachers asked (masked):", *[f"- {q}" for q in questions]]
    return KnowledgeEntry(
        id=unique_id(slug(gap.label if gap.keywords else questions[0]), taken), title=title,
        kind=Kind.STRATEGY, tags=[k for k in gap.keywords][:5], grades=gap.grades, questions=questions,
        updated=today or date.today(), body="\n".join(lines), extra={"status": "draft"},
    )


# The integrator's answer on an escalation: the `resolution_note` column, which the coach fills
# (masked) when a handoff is resolved with a note (Slack's Resolve modal, the note on the Teams
# card, `coach handoffs resolve --note`). Rows from elsewhere (an import, an older tool) may carry
# it as a detail item named any of these; the column wins.
RESOLUTION_FIELDS = ("resolution_note", "resolution", "resolution_text", "answer", "note", "notes")
ANSWER_KINDS = frozenset({"resolution", "resolved", "note", "answer", "reply"})
STAFF_ROLES = frozenset({"integrator", "helpdesk", "staff", "coach"})


def _is_answer(item: Mapping[str, Any]) -> bool:
    if any(isinstance(item.get(k), str) and item[k].strip() for k in RESOLUTION_FIELDS):
        return True
    kind = str(item.get("kind") or item.get("type") or "").lower()
    role = str(item.get("from") or item.get("role") or item.get("by_role") or "").lower()
    return kind in ANSWER_KINDS or role in STAFF_ROLES


def resolution_note(row: Mapping[str, Any]) -> str:
    """What the integrator answered: the note recorded on resolve, else an answer among the detail items."""
    for key in RESOLUTION_FIELDS:
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    details = row.get("details")
    if isinstance(details, list):
        for item in reversed(details):  # the latest answer wins
            if isinstance(item, dict) and _is_answer(item):
                for key in (*RESOLUTION_FIELDS, "text"):
                    value = item.get(key)
                    if isinstance(value, str) and value.strip():
                        return value.strip()
    return ""


def teacher_texts(row: Mapping[str, Any]) -> list[str]:
    """The teacher's words on an escalation: each detail's text, else the summary."""
    texts = []
    details = row.get("details")
    if isinstance(details, list):
        for item in details:
            if isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"].strip():
                if not _is_answer(item):
                    texts.append(item["text"].strip())
    summary = row.get("summary")
    if not texts and isinstance(summary, str) and summary.strip():
        texts.append(summary.strip())
    return texts


def escalation_draft(row: Mapping[str, Any], scrub: Scrubber, taken: set[str],
                     today: date | None = None) -> KnowledgeEntry:
    """"Save what the integrator answered": one resolved escalation as a draft entry (masked).

    `row` is the escalation as plain data (`bot.report.rows.escalation_fields`). The answer is the
    note recorded when it was resolved (masked then, and scrubbed again here); without one the
    draft quotes the teacher's words instead.
    """
    ticket = f"{PREFIX.get(str(row.get('target')), 'E')}-{int(row.get('id') or 0):04d}"
    asked = []
    for text in teacher_texts(row):
        q = as_question(scrub(text, 10_000))
        if q and q not in asked:
            asked.append(q)
    if not asked:
        asked = ["What did the teacher need help with here?"]
    answer = resolution_note(row)
    category = str(row.get("category") or "")
    title = shorten(asked[0].rstrip("?"), 90)
    lines = [f"DRAFT: from escalation {ticket}"
             + (f" ({CATEGORY_LABELS.get(category, category)})" if category else "")
             + (f", {row.get('status')}" if row.get("status") else "") + ".", "", DRAFT_NOTE, ""]
    if answer:
        lines += ["What the integrator answered (masked):", "", scrub(answer, 4000)]
    else:
        lines += ["No resolution note was recorded; what the teacher said (masked):", "",
                  *[f"> {scrub(t, 1000)}" for t in teacher_texts(row)]]
    return KnowledgeEntry(
        id=unique_id(slug(title), taken), title=title, kind=Kind.STRATEGY,
        grades=grade_bands(asked), questions=asked[:MAX_DRAFT_QUESTIONS], updated=today or date.today(),
        body="\n".join(lines), extra={"status": "draft", "from_escalation": ticket},
    )
