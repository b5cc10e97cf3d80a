"""The report's figures: groups that pass the minimum size, topics, gaps, entries, escalations, weeks.

Every function here is pure over what `bot.report.rows` read; `bot.report.insights.build_insights`
puts them together.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from bot.handoff.escalations import EscalationRow
from bot.models import Action
from bot.report.masking import Scrubber
from bot.report.results import (
    GAP_SIGNALS,
    MAX_DRAFT_QUESTIONS,
    NOT_SET,
    RESOLVED,
    ROUTES,
    EntryStat,
    EscalationStat,
    Gap,
    Hidden,
    Topic,
    WeekCount,
    category_label,
)
from bot.report.rows import TurnRecord, as_utc
from bot.report.vectors import EntryVectors, unit
from bot.report.wording import Vocabulary, as_question, grade_bands
from knowledge.entry import KnowledgeEntry

UNLABELLED = "(unlabelled questions)"


def week_of(moment: datetime) -> date:
    """The Monday that starts the week of `moment`."""
    day = moment.date()
    return day - timedelta(days=day.weekday())


@dataclass
class Group:
    """A cluster of questions (indexes into its turns) and how many different teachers asked them."""

    members: list[int]
    teachers: int


def shown_groups(clusters: list[list[int]], turns: Sequence[TurnRecord], min_teachers: int) -> tuple[list[Group], Hidden]:
    """The clusters asked by at least `min_teachers` teachers, and a count of the rest."""
    shown, hidden = [], Hidden()
    for members in clusters:
        teachers = len({turns[i].asker for i in members})
        if teachers >= min_teachers:
            shown.append(Group(members, teachers))
        else:
            hidden.groups += 1
            hidden.questions += len(members)
    return shown, hidden


def examples(members: Sequence[int], turns: Sequence[TurnRecord], vectors: np.ndarray, scrub: Scrubber,
             limit: int) -> list[str]:
    """The questions nearest the group's centre, one per teacher, masked."""
    if limit <= 0:
        return []
    centre = vectors[list(members)].sum(axis=0)
    order = sorted(members, key=lambda i: -float(vectors[i] @ centre))
    out: list[str] = []
    seen_teachers: set[str] = set()
    seen_text: set[str] = set()
    for i in order:
        if turns[i].asker in seen_teachers:
            continue
        text = scrub(turns[i].text)
        if not text or text.lower() in seen_text:
            continue
        seen_teachers.add(turns[i].asker)
        seen_text.add(text.lower())
        out.append(text)
        if len(out) == limit:
            break
    return out


def gap_signals(turn: TurnRecord, clicks: Mapping[str, int], min_confidence: float,
                best_similarity: float | None, weak_match: float) -> list[str]:
    """Why a coaching turn counts as a knowledge gap; empty when it does not."""
    signals = []
    if not turn.sources:
        signals.append("no_answer")
    if turn.confidence < min_confidence:
        signals.append("low_confidence")
    if clicks.get(Action.NOT_QUITE, 0) > 0:
        signals.append("not_quite")
    # Retrieval confidence saturates on any exact word match, so a question about something
    # the knowledge base never covers can still be "answered"; its distance to every entry
    # says so. A teacher's "This helped" overrules the distance.
    if (not signals and weak_match > 0 and best_similarity is not None and best_similarity < weak_match
            and clicks.get(Action.HELPED, 0) == 0):
        signals.append("weak_match")
    return signals


def plus_left_out(hidden: Hidden, extra: Sequence[Topic]) -> Hidden:
    """`hidden` with the topics beyond the top N counted in: not secret, only left out."""
    return Hidden(hidden.groups, hidden.questions) if not extra else Hidden(
        hidden.groups + len(extra), hidden.questions + sum(t.questions for t in extra))


def week_counts(turns: Sequence[TurnRecord]) -> list[WeekCount]:
    """Messages per week by route, from the first week with a message to the last."""
    if not turns:
        return []
    counts: dict[date, Counter[str]] = defaultdict(Counter)
    for t in turns:
        counts[week_of(t.created_at)][t.route] += 1
    first, last = min(counts), max(counts)
    out = []
    week = first
    while week <= last:  # empty weeks stay in the chart as gaps in time, not squeezed out
        out.append(WeekCount(week.isoformat(), {r: counts[week].get(r, 0) for r in ROUTES}))
        week += timedelta(days=7)
    return out


def make_topic(group: Group, turns: Sequence[TurnRecord], vectors: np.ndarray, entries: Mapping[str, KnowledgeEntry],
               vocab: Vocabulary, scrub: Scrubber, max_examples: int) -> Topic:
    """One topic: named by the entry (or two) its questions drew on, else by their shared words."""
    cited = Counter(s for i in group.members for s in turns[i].sources[:1] if s in entries)
    top = [eid for eid, _ in cited.most_common(3)]
    tags = Counter(tag for eid, n in cited.items() for tag in entries[eid].tags for _ in range(n))
    keywords = vocab.keywords([scrub(turns[i].text, 10_000) for i in group.members])
    if top:
        n = len(group.members)
        # One entry's title when it carries the group, else the two it splits between.
        label = entries[top[0]].title if cited[top[0]] * 2 >= n or len(top) == 1 else \
            f"{entries[top[0]].title} / {entries[top[1]].title}"
    else:
        label = " \u00b7 ".join(keywords) or UNLABELLED
    return Topic(label=label, questions=len(group.members), teachers=group.teachers, entries=top,
                 tags=[t for t, _ in tags.most_common(4)], keywords=keywords,
                 examples=examples(group.members, turns, vectors, scrub, max_examples))


def make_gap(group: Group, gap_idx: Sequence[int], coach: Sequence[TurnRecord], gap_vecs: np.ndarray,
             why: Mapping[int, list[str]], kb: EntryVectors | None, entries: Mapping[str, KnowledgeEntry],
             vocab: Vocabulary, scrub: Scrubber, max_examples: int) -> Gap:
    """One gap (ranked later): its words, why, the closest entry, and its teachers' own questions."""
    turns = [coach[gap_idx[m]] for m in group.members]
    masked = [scrub(t.text, 10_000) for t in turns]
    keywords = vocab.keywords(masked)
    signals = Counter(s for m in group.members for s in why[gap_idx[m]])
    centre = unit(gap_vecs[group.members].sum(axis=0, keepdims=True))
    closest = closest_title = sim = None
    if kb is not None and kb.ids:
        idx, best = kb.best(centre)
        closest = kb.ids[int(idx[0])]
        closest_title = entries[closest].title if closest in entries else None
        sim = round(float(best[0]), 3)
    # The draft's questions: the teachers' own, nearest the centre first, each once.
    order = sorted(range(len(turns)), key=lambda k: -float(gap_vecs[group.members[k]] @ centre[0]))
    asked: list[str] = []
    for k in order:
        q = as_question(masked[k])
        if q and q.lower() not in {a.lower() for a in asked}:
            asked.append(q)
        if len(asked) == MAX_DRAFT_QUESTIONS:
            break
    local_turns = list(turns)
    local_vecs = gap_vecs[group.members]
    weeks = sorted(week_of(t.created_at) for t in turns)
    return Gap(
        rank=0, label=" \u00b7 ".join(keywords) or UNLABELLED, questions=len(turns),
        teachers=group.teachers, keywords=keywords,
        signals={k: signals[k] for k in GAP_SIGNALS if signals.get(k)},
        examples=examples(range(len(local_turns)), local_turns, local_vecs, scrub, max_examples),
        asked=asked, grades=grade_bands(masked), closest_entry=closest, closest_title=closest_title,
        closest_similarity=sim, first_week=weeks[0].isoformat(), last_week=weeks[-1].isoformat(),
    )


def entry_stats(coach: Sequence[TurnRecord], clicks: Mapping[str, Counter[str]],
                entries: Mapping[str, KnowledgeEntry]) -> list[EntryStat]:
    """Per entry drawn on: how often, and the clicks under those replies; entries with feedback first."""
    cited: Counter[str] = Counter()
    helped: Counter[str] = Counter()
    not_quite: Counter[str] = Counter()
    for t in coach:
        c = clicks.get(t.id) or Counter()
        for sid in t.sources:  # a click is about the whole reply, so every entry it drew on shares it
            cited[sid] += 1
            helped[sid] += c.get(Action.HELPED, 0)
            not_quite[sid] += c.get(Action.NOT_QUITE, 0)
    out = []
    for eid in cited:
        entry = entries.get(eid)
        out.append(EntryStat(eid, entry.title if entry else f"{eid} (no longer in the store)",
                             entry.samr.value if entry and entry.samr else NOT_SET,
                             cited[eid], helped[eid], not_quite[eid]))
    return sorted(out, key=lambda e: (-(e.helped + e.not_quite), -e.cited, e.entry_id))


def escalation_stats(rows: Sequence[EscalationRow]) -> list[EscalationStat]:
    """Escalations by target and category: counts by status, and hours until a person claimed them."""
    groups: dict[tuple[str, str], list[EscalationRow]] = defaultdict(list)
    for row in rows:
        groups[(row.target or "?", row.category or "other")].append(row)
    out = []
    for (target, category), items in groups.items():
        waits = []
        for row in items:
            if row.created_at and row.claimed_at:
                created, claimed = as_utc(row.created_at), as_utc(row.claimed_at)
                if claimed >= created:
                    waits.append((claimed - created).total_seconds() / 3600)
        statuses = Counter(row.status or "open" for row in items)
        out.append(EscalationStat(
            target=target, category=category, label=category_label(category),
            count=len(items), urgent=sum(1 for r in items if r.urgent),
            open=statuses.get("open", 0), claimed=sum(1 for r in items if r.claimed_at),
            resolved=sum(n for s, n in statuses.items() if s in RESOLVED),
            median_hours_to_claim=round(float(np.median(waits)), 2) if waits else None,
            p90_hours_to_claim=round(float(np.percentile(waits, 90)), 2) if waits else None,
        ))
    return sorted(out, key=lambda e: (-e.count, e.target, e.category))
