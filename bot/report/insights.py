"""Insights for integrators: what teachers ask, and what the knowledge base lacks.

Pure computation over the state database (turns, feedback, escalations) and the knowledge
store; nothing here prints. `build_insights` puts together the pieces of `bot/report/`: `rows`
(what is read), `vectors` and `clustering` (grouping by meaning), `wording` (labels), `masking`,
`metrics` (the figures) into `results` (what is shown); `drafts` turns gaps and escalations into
draft entries. `adapters/report_commands.py` shows the result in the terminal,
`adapters/report_html.py` draws it as one self-contained HTML file.

Privacy is built in rather than left to the renderers:
- only aggregates leave this module: counts, topic labels, and a few example questions;
- a topic or gap is shown only when at least `insights.min_group_size` different teachers
  asked in it (counted by user id, which is never part of the result);
- every example is masked (`bot.privacy.masker.Masker`), and any user id, @-mention or platform
  mention inside it is replaced, so a teacher's id or name cannot reach the report;
- only coaching questions are clustered: helpdesk and integrator messages (safeguarding
  disclosures among them) are counted, never quoted.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import numpy as np

from bot.checkins.report import cycle_stats
from bot.models import Action, Route
from bot.privacy.masker import shared_masker
from bot.report.clustering import cluster
from bot.report.masking import Scrubber
from bot.report.metrics import (
    entry_stats,
    escalation_stats,
    gap_signals,
    make_gap,
    make_topic,
    plus_left_out,
    shown_groups,
    week_counts,
)
from bot.report.results import NOT_SET, ROUTES, SAMR_LEVELS, Insights
from bot.report.rows import REPLAY_PLATFORM, as_utc, load_escalations, load_feedback, load_turns, load_user_ids
from bot.report.vectors import VectorCache, entry_vectors, question_vectors, unit
from bot.report.wording import Vocabulary
from bot.settings import Settings
from bot.state.database import StateDB
from knowledge.store import KnowledgeStore


def build_insights(db: StateDB, store: KnowledgeStore, settings: Settings, *, since: datetime | None = None,
                   until: datetime | None = None, include_replay: bool = True,
                   now: datetime | None = None, cache: VectorCache | None = None) -> Insights:
    """Aggregate the period's turns, feedback and escalations into what integrators need.

    `cache` keeps question vectors between calls (see `VectorCache`); the caller saves it.
    """
    cfg = settings.insights
    now = now or datetime.now(timezone.utc)
    since = as_utc(since) if since else None
    until = as_utc(until) if until else None
    turns = load_turns(db, since=since, until=until, include_replay=include_replay)
    clicks = load_feedback(db, [t.id for t in turns])
    scrub = Scrubber(load_user_ids(db), shared_masker(settings))
    entries = store.entries()
    notes: list[str] = []

    routes = Counter({r: 0 for r in ROUTES})
    routes.update(t.route for t in turns)
    weeks = week_counts(turns)

    coach = [t for t in turns if t.route == Route.COACH]
    vocab = Vocabulary(t.text for t in coach)
    vectors = question_vectors(store.embedder, coach, settings.retrieval.context_weight, cache)
    kb = entry_vectors(store) if entries and coach else None
    nearest, nearest_sim = (kb.best(vectors) if kb is not None
                            else (np.full(len(coach), -1), np.zeros(len(coach))))
    if not entries:
        notes.append("The knowledge store is empty: topics are named from the questions, and "
                     "closeness to entries is not measured.")

    # Topics: questions anchored on the entries they drew on, so follow-ups and rephrasings of
    # one need meet; the question itself still counts, so a wrong citation cannot dominate.
    topic_vecs = vectors.copy()
    if kb is not None:
        card_of = {eid: kb.card[i] for i, eid in enumerate(kb.ids)}
        for i, t in enumerate(coach):
            cards = [card_of[s] for s in t.sources if s in card_of]
            if cards:
                topic_vecs[i] = topic_vecs[i] + 0.5 * np.mean(cards, axis=0)
        topic_vecs = unit(topic_vecs) if len(coach) else topic_vecs
    topic_groups, hidden_topics = shown_groups(cluster(topic_vecs, cfg.topic_similarity), coach, cfg.min_group_size)
    topics = [make_topic(g, coach, topic_vecs, entries, vocab, scrub, cfg.max_examples) for g in topic_groups]
    topics.sort(key=lambda t: (-t.questions, -t.teachers, t.label))

    samr = Counter({level: 0 for level in (*SAMR_LEVELS, NOT_SET)})
    for t in coach:
        if t.sources and t.sources[0] in entries:
            level = entries[t.sources[0]].samr
            samr[level.value if level else NOT_SET] += 1

    per_entry = entry_stats(coach, clicks, entries)

    # Gaps: coaching turns the knowledge base did not serve, grouped on the question alone
    # (their citations, if any, are what went wrong).
    gap_idx: list[int] = []
    gap_why: dict[int, list[str]] = {}
    for i, t in enumerate(coach):
        sim = float(nearest_sim[i]) if kb is not None else None
        why = gap_signals(t, clicks.get(t.id, {}), settings.retrieval.min_confidence, sim, cfg.weak_match)
        if why:
            gap_idx.append(i)
            gap_why[i] = why
    gap_turns = [coach[i] for i in gap_idx]
    gap_vecs = vectors[gap_idx] if gap_idx else np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 1))
    gap_groups, hidden_gaps = shown_groups(cluster(gap_vecs, cfg.gap_similarity), gap_turns, cfg.min_group_size)
    gaps = []
    for g in gap_groups:
        gaps.append(make_gap(g, gap_idx, coach, gap_vecs, gap_why, kb, entries, vocab, scrub, cfg.max_examples))
    gaps.sort(key=lambda g: (-g.questions, -g.teachers, g.label))
    for rank, gap in enumerate(gaps, 1):
        gap.rank = rank

    escalations = escalation_stats(load_escalations(db, since=since, until=until, include_replay=include_replay))
    totals = {
        "messages": len(turns),
        "teachers": len({t.asker for t in turns}),
        "coaching_questions": len(coach),
        "gap_questions": len(gap_idx),
        "helped": sum(c.get(Action.HELPED, 0) for c in clicks.values()),
        "not_quite": sum(c.get(Action.NOT_QUITE, 0) for c in clicks.values()),
        "escalations": sum(e.count for e in escalations),
        "replayed": sum(1 for t in turns if t.platform == REPLAY_PLATFORM),
    }
    return Insights(
        generated_at=now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        since=since.date().isoformat() if since else None,
        until=until.date().isoformat() if until else None,
        include_replay=include_replay, min_group_size=cfg.min_group_size, totals=totals,
        routes={r: routes[r] for r in routes}, weeks=weeks,
        topics=topics[: cfg.top_topics], hidden_topics=plus_left_out(hidden_topics, topics[cfg.top_topics:]),
        samr=dict(samr), entries=per_entry, gaps=gaps[: cfg.top_gaps],
        hidden_gaps=hidden_gaps, escalations=escalations, notes=notes,
        cycles=cycle_stats(db, since=since, until=until, include_replay=include_replay,
                           min_group_size=cfg.min_group_size,
                           title=lambda eid: entries[eid].title if eid in entries else None),
    )
