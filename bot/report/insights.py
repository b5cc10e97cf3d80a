"""Insights for integrators: what teachers ask, and what the knowledge base lacks.

Pure computation over the state database (turns, feedback, escalations) and the knowledge
store; nothing here prints. `adapters/report_commands.py` shows the result in the terminal,
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

import hashlib
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import MetaData, Table, select
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from bot.checkins.report import CHECKIN_COMPOSER, CycleStats, cycle_stats
from bot.handoff.escalations import PREFIX
from bot.models import Route
from bot.privacy.masker import Masker, shared_masker
from bot.settings import Settings
from bot.state.memory import FeedbackRow, TurnRow
from bot.state.database import StateDB
from knowledge.entry import KnowledgeEntry, Kind, Samr
from knowledge.lexical import STOPWORDS, stem
from knowledge.store import KnowledgeStore, view_texts

ROUTES = tuple(r.value for r in Route)
SAMR_LEVELS = tuple(level.value for level in Samr)
NOT_SET = "not set"
GAP_SIGNALS = {
    "no_answer": "no entry good enough",
    "low_confidence": "low retrieval confidence",
    "not_quite": "teacher said \u201cNot quite\u201d",
    "weak_match": "far from every entry",
}
CATEGORY_LABELS = {
    "fault": "Technical fault",
    "account": "Account or access",
    "safeguarding": "Safeguarding concern",
    "data_incident": "Student-data incident",
    "human_request": "Asked for a person",
    "frustration": "Coaching was not helping",
    "complex": "Larger planning (co-planning)",
}
MAX_EXAMPLE_CHARS = 220
MAX_DRAFT_QUESTIONS = 8

# Words that say nothing about a topic ("how do I use ... in my lesson"), on top of the
# retrieval stop words, so cluster labels name the subject rather than the phrasing.
LABEL_STOPWORDS = STOPWORDS | frozenset(
    """use using used make making way ways good best better idea ideas help helping tip tips
    start starting set setting need needs know think thinking like try trying teach teaching
    lesson lessons class classes kid kids child children student students pupil pupils learner
    learners teacher teachers school anyone advice suggestion suggestions recommend someone
    thing things something anything stuff lot lots bit much many new next week term today
    actually really just still maybe also tell show give go going doing done work works working
    get getting let lets able sure easy easiest free quick way whats what's hows how's thoughts
    worth okay ok yes no yeah hello hi hey thanks thank cheers please pls""".split()
)

_PLACEHOLDER = re.compile(r"\[[A-Z]+-\d+\]|\[(?:TEACHER|PERSON)\]")
_WORD = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")
_SLACK_MENTION = re.compile(r"<[@#!][A-Za-z0-9]+(?:\|[^>]*)?>")
_TEAMS_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
_AT_HANDLE = re.compile(r"(?<![\w\[.])@[A-Za-z0-9][\w.-]*")
_GRADE = re.compile(
    r"\b(?:(?:year|yr|grade|gr|y|g)\s?(\d{1,2})s?|(\d{1,2})(?:st|nd|rd|th)\s+grade(?:rs)?|"
    r"(kindergarten|kinder|prep|reception|preschool|nursery))\b",
    re.IGNORECASE,
)


# -- results ---------------------------------------------------------------------------------


@dataclass
class WeekCount:
    """Teacher messages in one week (starting Monday), by route."""

    week: str
    by_route: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_route.values())


@dataclass
class Topic:
    """A group of similar coaching questions, named by the entries they drew on."""

    label: str
    questions: int
    teachers: int
    entries: list[str] = field(default_factory=list)  # entry ids drawn on, most used first
    tags: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # masked


@dataclass
class Gap:
    """Questions the knowledge base answered badly or not at all, grouped, with why."""

    rank: int
    label: str
    questions: int
    teachers: int
    keywords: list[str] = field(default_factory=list)
    signals: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)  # masked
    asked: list[str] = field(default_factory=list)  # masked, as '?' questions, for a draft entry
    grades: list[str] = field(default_factory=list)
    closest_entry: str | None = None
    closest_title: str | None = None
    closest_similarity: float | None = None
    first_week: str | None = None
    last_week: str | None = None


@dataclass
class EntryStat:
    """How one knowledge entry did: how often replies drew on it, and what teachers clicked."""

    entry_id: str
    title: str
    samr: str
    cited: int
    helped: int
    not_quite: int


@dataclass
class EscalationStat:
    """Escalations of one kind, and how long they waited for a person."""

    target: str
    category: str
    label: str
    count: int
    urgent: int
    open: int
    claimed: int
    resolved: int
    median_hours_to_claim: float | None
    p90_hours_to_claim: float | None


@dataclass
class Hidden:
    """What the minimum group size kept out of a list (counts only)."""

    groups: int = 0
    questions: int = 0


@dataclass
class Insights:
    """Everything `coach report` shows, already aggregated and masked."""

    generated_at: str
    since: str | None
    until: str | None
    include_replay: bool
    min_group_size: int
    totals: dict[str, int]
    routes: dict[str, int]
    weeks: list[WeekCount]
    topics: list[Topic]
    hidden_topics: Hidden
    samr: dict[str, int]
    entries: list[EntryStat]
    gaps: list[Gap]
    hidden_gaps: Hidden
    escalations: list[EscalationStat]
    notes: list[str] = field(default_factory=list)
    cycles: CycleStats | None = None  # coaching cycles (bot/checkins/report.py)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `--json`; weekly totals included."""
        out = asdict(self)
        for week, raw in zip(self.weeks, out["weeks"]):
            raw["total"] = week.total
        return out


# -- reading the state database -------------------------------------------------------------


@dataclass(frozen=True)
class TurnRecord:
    """One teacher message as the report reads it. `asker` is for counting only, never shown."""

    id: str
    memory_key: str
    platform: str
    asker: str
    text: str
    route: str
    sources: tuple[str, ...]
    confidence: float
    created_at: datetime
    context: str = ""  # the coaching question before a follow-up, as retrieval read it


def as_utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; everything the coach writes is UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def load_turns(db: StateDB, *, since: datetime | None = None, until: datetime | None = None,
               include_replay: bool = True) -> list[TurnRecord]:
    """Turns in the period, oldest first, each follow-up carrying the question before it."""
    # A check-in the coach sent is recorded as a turn of its conversation; it is not a teacher's question.
    query = select(TurnRow).where(TurnRow.composer != CHECKIN_COMPOSER).order_by(TurnRow.created_at, TurnRow.id)
    if since is not None:
        query = query.where(TurnRow.created_at >= since)
    if until is not None:
        query = query.where(TurnRow.created_at < until)
    if not include_replay:
        query = query.where(TurnRow.platform != "replay")
    with db.session() as s:
        rows = s.scalars(query).all()
    out: list[TurnRecord] = []
    previous: dict[str, TurnRow] = {}
    for r in rows:
        prev = previous.get(r.memory_key)
        # Same rule as Coach._retrieve: a turn after a coaching turn is read with it.
        context = prev.text if prev is not None and prev.route == Route.COACH and r.route == Route.COACH else ""
        previous[r.memory_key] = r
        out.append(TurnRecord(
            id=r.id, memory_key=r.memory_key, platform=r.platform, asker=f"{r.platform}\x1f{r.user_id}",
            text=r.text or "", route=r.route, sources=tuple(r.sources or ()),
            confidence=float(r.confidence or 0.0), created_at=as_utc(r.created_at), context=context,
        ))
    return out


def load_user_ids(db: StateDB) -> set[str]:
    """Every user id the state database knows, so examples can be scrubbed of them."""
    ids: set[str] = set()
    with db.session() as s:
        ids.update(s.scalars(select(TurnRow.user_id).distinct()).all())
        ids.update(s.scalars(select(FeedbackRow.user_id).distinct()).all())
    for row in load_escalation_rows(db):
        for key in ("user_id", "claimed_by", "resolved_by", "claimed_by_name", "resolved_by_name"):
            if row.get(key):
                ids.add(str(row[key]))
    return {i for i in ids if i}


def load_feedback(db: StateDB, turn_ids: Iterable[str]) -> dict[str, Counter[str]]:
    """Button clicks per turn: {'helped': n, 'not_quite': n, ...}."""
    wanted = set(turn_ids)
    out: dict[str, Counter[str]] = defaultdict(Counter)
    if not wanted:
        return out
    with db.session() as s:
        for turn_id, action in s.execute(select(FeedbackRow.turn_id, FeedbackRow.action)).all():
            if turn_id in wanted:
                out[turn_id][action] += 1
    return out


def _escalation_table(db: StateDB) -> Table | None:
    # Reflected, not the ORM class: another part of the coach is extending escalations, and
    # the report should read whatever columns this database has.
    try:
        return Table("escalations", MetaData(), autoload_with=db.engine)
    except (NoSuchTableError, SQLAlchemyError):
        return None


def load_escalation_rows(db: StateDB, *, since: datetime | None = None, until: datetime | None = None,
                         include_replay: bool = True) -> list[dict[str, Any]]:
    """Escalation rows as plain dicts, whatever columns the table has."""
    table = _escalation_table(db)
    if table is None:
        return []
    with db.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(table)).mappings().all()]
    out = []
    for row in rows:
        created = _as_datetime(row.get("created_at"))
        if since is not None and (created is None or created < since):
            continue
        if until is not None and (created is None or created >= until):
            continue
        if not include_replay and row.get("platform") == "replay":
            continue
        out.append(row)
    return out


def load_escalation(db: StateDB, ref: str | int) -> dict[str, Any] | None:
    """One escalation by id (`7`) or ticket (`I-0007`)."""
    escalation_id = parse_ticket(ref)
    table = _escalation_table(db)
    if table is None or "id" not in table.c:
        return None
    with db.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == escalation_id)).mappings().first()
    return dict(row) if row is not None else None


def parse_ticket(ref: str | int) -> int:
    """`7`, `0007`, `I-0007` or `H-7` to 7; ValueError for anything else."""
    text = str(ref).strip()
    match = re.fullmatch(r"(?:[A-Za-z]-?)?0*(\d+)", text)
    if not match:
        raise ValueError(f"{ref!r} is not an escalation id or ticket like I-0007")
    return int(match.group(1))


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str) and value:
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


# -- masking ---------------------------------------------------------------------------------


class Scrubber:
    """Masks an example for the report: student data, and any id or mention of a person."""

    def __init__(self, user_ids: Iterable[str], masker: Masker | None = None) -> None:
        self.masker = masker or Masker()
        # Ids under three characters would mangle ordinary words and identify no one.
        ids = sorted({u for u in user_ids if u and len(u.strip()) >= 3}, key=len, reverse=True)
        # One pattern for every known id; edges are not letters, digits or '-' so "t-ana" is
        # found in "t-ana's" but not inside "text-analysis".
        self._ids = (re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(u) for u in ids) + r")(?![\w-])", re.IGNORECASE)
                     if ids else None)

    def __call__(self, text: str, limit: int = MAX_EXAMPLE_CHARS) -> str:
        text = _TEAMS_MENTION.sub("[PERSON]", text)
        text = _SLACK_MENTION.sub("[PERSON]", text)
        if self._ids is not None:
            text = self._ids.sub("[TEACHER]", text)
        text = self.masker.mask(text).text
        text = _AT_HANDLE.sub("[PERSON]", text)
        return shorten(" ".join(text.split()), limit)


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:-")
    return cut + "\u2026"


def as_question(text: str, limit: int = 200) -> str | None:
    """A teacher's message as one question ending in '?' (the knowledge format's rule)."""
    text = " ".join(text.split())
    if not text:
        return None
    # Up to the last question asked (context kept, trailing "thanks!!" dropped); a message
    # too long for that gives its longest asking sentence.
    if "?" in text:
        text = text[: text.rindex("?") + 1]
        if len(text) > limit:
            asked = [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip().endswith("?")]
            text = max(asked, key=len)
    text = shorten(text, limit - 1)
    text = re.sub(r"[\s.!?,;:\u2026\-]+$", "", text)
    text = re.sub(r"[^\w\])\"'\u2019]+$", "", text)  # trailing emoji and symbols
    if len(text) < 3:
        return None
    return text[0].upper() + text[1:] + "?"


# -- vectors ---------------------------------------------------------------------------------


@dataclass
class EntryVectors:
    """Unit vectors per entry: the card (what an entry is for) and the best of all views."""

    ids: list[str]
    card: np.ndarray  # (entries, dim)
    views: np.ndarray  # (vectors, dim)
    view_owner: np.ndarray  # entry index per row of `views`

    def best(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each query vector, the nearest entry (index) and its cosine over every view."""
        if len(self.ids) == 0 or len(vectors) == 0:
            return np.full(len(vectors), -1), np.zeros(len(vectors))
        sims = vectors @ self.views.T
        per_entry = np.full((len(vectors), len(self.ids)), -1.0, dtype=np.float64)
        for row in range(self.views.shape[0]):
            owner = self.view_owner[row]
            np.maximum(per_entry[:, owner], sims[:, row], out=per_entry[:, owner])
        idx = per_entry.argmax(axis=1)
        return idx, per_entry[np.arange(len(vectors)), idx]


def entry_vectors(store: KnowledgeStore) -> EntryVectors:
    """The store's own vectors when they were made by the current embedder, else fresh ones."""
    entries = store.entries()
    ids = sorted(entries)
    if not ids:
        dim = int(getattr(store.embedder, "dimension", None) or 1)
        return EntryVectors([], np.zeros((0, dim)), np.zeros((0, dim)), np.zeros(0, dtype=int))
    index = {eid: i for i, eid in enumerate(ids)}
    card: list[np.ndarray | None] = [None] * len(ids)
    views: list[np.ndarray] = []
    owners: list[int] = []
    if store.model_name == store.embedder.name:
        try:
            got = store.collection.get(include=["embeddings", "metadatas"])
            for meta, vec in zip(got["metadatas"] or [], got["embeddings"] if got["embeddings"] is not None else []):
                i = index.get(meta.get("entry_id"))
                if i is None:
                    continue
                v = np.asarray(vec, dtype=np.float64)
                views.append(v)
                owners.append(i)
                if meta.get("view") == "card":
                    card[i] = v
        except Exception:  # a server that will not hand vectors back: embed below instead
            views, owners, card = [], [], [None] * len(ids)
    if not views or any(c is None for c in card):
        texts, owners, card_rows = list[str](), list[int](), list[int]()
        for i, eid in enumerate(ids):
            for view, text in view_texts(entries[eid]).items():
                if view == "card":
                    card_rows.append(len(texts))
                texts.append(text)
                owners.append(i)
        vecs = np.asarray(store.embedder.embed(texts), dtype=np.float64)
        views = list(vecs)
        card = [vecs[r] for r in card_rows]
    v = _unit(np.vstack(views))
    return EntryVectors(ids, _unit(np.vstack([c for c in card if c is not None])), v, np.asarray(owners, dtype=int))


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.maximum(norms, 1e-12)


class VectorCache:
    """Question vectors kept between reports, so a weekly report embeds only the new questions.

    Keyed by a hash of the embedding model's name and the text, so the file holds no question
    text; with a path it is an `.npz` file in the data directory, without one it lives in memory.
    """

    MAX_ITEMS = 20_000  # about 30 MB of float32 vectors; the least recently used go first

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._vectors: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    self._vectors = dict(zip((str(k) for k in data["keys"]), data["vectors"]))
            except (OSError, ValueError, KeyError):  # a damaged cache is only a slower report
                self._vectors = {}

    @staticmethod
    def key(model: str, text: str) -> str:
        return hashlib.sha256(f"{model}\x00{text}".encode("utf-8")).hexdigest()[:32]

    def embed(self, embedder: Any, texts: Sequence[str]) -> np.ndarray:
        """Vectors for `texts`, embedding only those not seen before."""
        model = str(getattr(embedder, "name", type(embedder).__name__))
        keys = [self.key(model, t) for t in texts]
        missing = sorted({t for t, k in zip(texts, keys) if k not in self._vectors})
        if missing:
            for text, vec in zip(missing, np.asarray(embedder.embed(missing), dtype=np.float32)):
                self._vectors[self.key(model, text)] = vec
        for k in keys:  # most recently used last, so trimming keeps what reports still need
            self._vectors[k] = self._vectors.pop(k)
        return np.vstack([self._vectors[k] for k in keys]).astype(np.float64) if keys else np.zeros((0, 1))

    def save(self) -> None:
        """Write the cache (atomically) when it has a path."""
        if self.path is None:
            return
        items = list(self._vectors.items())[-self.MAX_ITEMS:]
        if not items:
            return
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, keys=np.array([k for k, _ in items]), vectors=np.vstack([v for _, v in items]))
        os.replace(tmp, self.path)


def question_vectors(embedder: Any, turns: Sequence[TurnRecord], context_weight: float,
                     cache: VectorCache | None = None) -> np.ndarray:
    """One unit vector per turn; a follow-up leans toward the question before it, as retrieval did."""
    if not turns:
        return np.zeros((0, int(getattr(embedder, "dimension", None) or 1)))
    texts = [t.text for t in turns]
    contexts = sorted({t.context for t in turns if t.context})
    vecs = (cache or VectorCache()).embed(embedder, texts + contexts)
    q = vecs[: len(texts)]
    ctx = dict(zip(contexts, vecs[len(texts):]))
    for i, t in enumerate(turns):
        if t.context:
            q[i] = q[i] + context_weight * ctx[t.context]
    return _unit(q)


# -- clustering ------------------------------------------------------------------------------


MAX_EXACT = 3000  # questions clustered exactly at once (a 3000 x 3000 float32 matrix is 36 MB)


def cluster(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-linkage agglomerative clustering by cosine, stopping below `threshold`.

    Average linkage (not single) so a topic cannot chain through loosely related questions.
    A merge updates one row of the cluster-similarity matrix by the Lance-Williams rule,
    sim(a+b, c) = (|a| sim(a, c) + |b| sim(b, c)) / (|a| + |b|), and each row caches its best
    partner, so a merge costs O(n), not O(n^2) or O(n d).
    Above `MAX_EXACT` questions, an evenly spread sample is clustered exactly and the rest
    join the cluster they are closest to on average (or are clustered among themselves).
    Clusters come back largest first, members in input order.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    if n == 0:
        return []
    if n > MAX_EXACT:
        return _cluster_large(vectors, threshold)
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    members: list[list[int]] = [[i] for i in range(n)]
    sim = (vectors @ vectors.T).astype(np.float32)
    np.fill_diagonal(sim, -np.inf)
    best_to = sim.argmax(axis=1)
    best_sim = sim[np.arange(n), best_to].astype(np.float64)
    while True:
        a = int(best_sim.argmax())
        if best_sim[a] < threshold:
            break
        b = int(best_to[a])
        row = (sizes[a] * sim[a] + sizes[b] * sim[b]) / (sizes[a] + sizes[b])  # -inf stays -inf
        sizes[a] += sizes[b]
        members[a].extend(members[b])
        members[b] = []
        alive[b] = False
        sim[b, :] = -np.inf
        sim[:, b] = -np.inf
        best_sim[b] = -np.inf
        row[b] = -np.inf
        sim[a, :] = row
        sim[:, a] = row
        # Rows that pointed at a or b look again; the rest can only gain `a` as a better partner.
        stale = np.flatnonzero(alive & ((best_to == a) | (best_to == b)))
        stale = np.union1d(stale, [a])
        best_to[stale] = sim[stale].argmax(axis=1)
        best_sim[stale] = sim[stale, best_to[stale]]
        gain = alive & (row > best_sim)
        gain[a] = False
        best_sim[gain] = row[gain]
        best_to[gain] = a
    groups = [sorted(m) for m, live in zip(members, alive) if live]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def _cluster_large(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    n = len(vectors)
    seeds = np.unique((np.arange(MAX_EXACT) * (n / MAX_EXACT)).astype(int))
    groups = [[int(seeds[i]) for i in g] for g in cluster(vectors[seeds], threshold)]
    sums = np.vstack([vectors[g].sum(axis=0) for g in groups])
    sizes = np.array([len(g) for g in groups], dtype=np.float64)
    is_seed = np.zeros(n, dtype=bool)
    is_seed[seeds] = True
    rest = np.flatnonzero(~is_seed)
    leftovers: list[int] = []
    for start in range(0, len(rest), 1024):
        block = rest[start:start + 1024]
        mean_sim = (vectors[block] @ sums.T) / sizes  # each question's average cosine to each cluster
        best = mean_sim.argmax(axis=1)
        for i, j, s in zip(block, best, mean_sim[np.arange(len(block)), best]):
            (groups[j].append(int(i)) if s >= threshold else leftovers.append(int(i)))
    if leftovers:
        groups += [[leftovers[i] for i in g] for g in cluster(vectors[leftovers], threshold)]
    groups = [sorted(g) for g in groups]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


# -- labels ----------------------------------------------------------------------------------


def _content_words(text: str) -> list[tuple[str, str]]:
    """(stem, surface) for each topical word, in order; a stop word breaks a phrase with ("", "")."""
    text = _PLACEHOLDER.sub(" ", text.replace("\u2019", "'"))
    out: list[tuple[str, str]] = []
    for raw in _WORD.findall(text):
        raw = raw.strip("-'").split("'")[0]
        word = raw.lower()
        # Two letters only as an acronym or with a digit ("VR", "AI", "3D"); "an", "go" say nothing.
        short_ok = len(raw) == 2 and (raw.isupper() or any(c.isdigit() for c in raw))
        if (not word or word in LABEL_STOPWORDS or word.isdigit()
                or (len(word) < 3 and not short_ok)):
            out.append(("", ""))
            continue
        out.append((stem(word), raw if short_ok else word))
    return out


def _terms(text: str) -> dict[str, str]:
    """Unigram and adjacent-bigram keys of one text, each with its surface form."""
    words = _content_words(text)
    terms: dict[str, str] = {}
    for i, (key, surface) in enumerate(words):
        if not key:
            continue
        terms.setdefault(key, surface)
        if i + 1 < len(words) and words[i + 1][0] and words[i + 1][0] != key:
            terms.setdefault(f"{key} {words[i + 1][0]}", f"{surface} {words[i + 1][1]}")
    return terms


class Vocabulary:
    """Document frequencies over every question in the period, for distinctive labels."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.df: Counter[str] = Counter()
        self.n = 0
        for text in texts:
            self.n += 1
            self.df.update(_terms(text).keys())

    def keywords(self, texts: Sequence[str], k: int = 3) -> list[str]:
        """The k most distinctive words or two-word phrases shared by `texts`."""
        df: Counter[str] = Counter()
        surfaces: dict[str, Counter[str]] = defaultdict(Counter)
        for text in texts:
            for key, surface in _terms(text).items():
                df[key] += 1
                surfaces[key][surface] += 1
        if not df:
            return []
        need = 1 if len(texts) < 2 else 2  # a label word should come from more than one question
        scored = []
        for key, count in df.items():
            if count < need:
                continue
            idf = math.log((self.n + 1) / (self.df.get(key, 0) + 1)) + 1.0
            bonus = 1.4 if " " in key else 1.0  # "virtual reality" says more than "virtual"
            scored.append((count * idf * bonus, key))
        if not scored:
            scored = [(float(c), key) for key, c in df.items()]
        chosen: list[str] = []
        used: set[str] = set()
        for _, key in sorted(scored, key=lambda s: (-s[0], s[1])):
            parts = set(key.split())
            if parts & used:
                continue
            chosen.append(surfaces[key].most_common(1)[0][0])
            used |= parts
            if len(chosen) == k:
                break
        return chosen


def grade_bands(texts: Iterable[str]) -> list[str]:
    """Grade bands mentioned in questions ("yr 7", "grade 2s", "kindergarten"), in band order."""
    bands: set[str] = set()
    for text in texts:
        for m in _GRADE.finditer(text):
            if m.group(3):
                bands.add("K-2")
                continue
            number = int(m.group(1) or m.group(2))
            if number <= 2:
                bands.add("K-2")
            elif number <= 5:
                bands.add("3-5")
            elif number <= 8:
                bands.add("6-8")
            elif number <= 13:
                bands.add("9-12")
    return [b for b in ("K-2", "3-5", "6-8", "9-12", "adult") if b in bands]


def week_of(moment: datetime) -> date:
    """The Monday that starts the week of `moment`."""
    day = moment.date()
    return day - timedelta(days=day.weekday())


# -- the report ------------------------------------------------------------------------------


@dataclass
class _Group:
    members: list[int]
    teachers: int


def _groups(clusters: list[list[int]], turns: Sequence[TurnRecord], min_teachers: int) -> tuple[list[_Group], Hidden]:
    shown, hidden = [], Hidden()
    for members in clusters:
        teachers = len({turns[i].asker for i in members})
        if teachers >= min_teachers:
            shown.append(_Group(members, teachers))
        else:
            hidden.groups += 1
            hidden.questions += len(members)
    return shown, hidden


def _examples(members: Sequence[int], turns: Sequence[TurnRecord], vectors: np.ndarray, scrub: Scrubber,
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
    if clicks.get("not_quite", 0) > 0:
        signals.append("not_quite")
    # Retrieval confidence saturates on any exact word match, so a question about something
    # the knowledge base never covers can still be "answered"; its distance to every entry
    # says so. A teacher's "This helped" overrules the distance.
    if (not signals and weak_match > 0 and best_similarity is not None and best_similarity < weak_match
            and clicks.get("helped", 0) == 0):
        signals.append("weak_match")
    return signals


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
    weeks = _weeks(turns)

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
        topic_vecs = _unit(topic_vecs) if len(coach) else topic_vecs
    topic_groups, hidden_topics = _groups(cluster(topic_vecs, cfg.topic_similarity), coach, cfg.min_group_size)
    topics = [_topic(g, coach, topic_vecs, entries, vocab, scrub, cfg.max_examples) for g in topic_groups]
    topics.sort(key=lambda t: (-t.questions, -t.teachers, t.label))

    samr = Counter({level: 0 for level in (*SAMR_LEVELS, NOT_SET)})
    for t in coach:
        if t.sources and t.sources[0] in entries:
            level = entries[t.sources[0]].samr
            samr[level.value if level else NOT_SET] += 1

    entry_stats = _entry_stats(coach, clicks, entries)

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
    gap_groups, hidden_gaps = _groups(cluster(gap_vecs, cfg.gap_similarity), gap_turns, cfg.min_group_size)
    gaps = []
    for g in gap_groups:
        gaps.append(_gap(g, gap_idx, coach, gap_vecs, gap_why, kb, entries, vocab, scrub, cfg.max_examples))
    gaps.sort(key=lambda g: (-g.questions, -g.teachers, g.label))
    for rank, gap in enumerate(gaps, 1):
        gap.rank = rank

    escalations = _escalation_stats(load_escalation_rows(db, since=since, until=until, include_replay=include_replay))
    totals = {
        "messages": len(turns),
        "teachers": len({t.asker for t in turns}),
        "coaching_questions": len(coach),
        "gap_questions": len(gap_idx),
        "helped": sum(c.get("helped", 0) for c in clicks.values()),
        "not_quite": sum(c.get("not_quite", 0) for c in clicks.values()),
        "escalations": sum(e.count for e in escalations),
        "replayed": sum(1 for t in turns if t.platform == "replay"),
    }
    return Insights(
        generated_at=now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        since=since.date().isoformat() if since else None,
        until=until.date().isoformat() if until else None,
        include_replay=include_replay, min_group_size=cfg.min_group_size, totals=totals,
        routes={r: routes[r] for r in routes}, weeks=weeks,
        topics=topics[: cfg.top_topics], hidden_topics=_plus(hidden_topics, topics[cfg.top_topics:]),
        samr=dict(samr), entries=entry_stats, gaps=gaps[: cfg.top_gaps],
        hidden_gaps=hidden_gaps, escalations=escalations, notes=notes,
        cycles=cycle_stats(db, since=since, until=until, include_replay=include_replay,
                           min_group_size=cfg.min_group_size,
                           title=lambda eid: entries[eid].title if eid in entries else None),
    )


def _plus(hidden: Hidden, extra: Sequence[Topic]) -> Hidden:
    # Topics beyond the top N are not secret, only left out; they are counted with the rest.
    return Hidden(hidden.groups, hidden.questions) if not extra else Hidden(
        hidden.groups + len(extra), hidden.questions + sum(t.questions for t in extra))


def _weeks(turns: Sequence[TurnRecord]) -> list[WeekCount]:
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


def _topic(group: _Group, turns: Sequence[TurnRecord], vectors: np.ndarray, entries: Mapping[str, KnowledgeEntry],
           vocab: Vocabulary, scrub: Scrubber, max_examples: int) -> Topic:
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
        label = " \u00b7 ".join(keywords) or "(unlabelled questions)"
    return Topic(label=label, questions=len(group.members), teachers=group.teachers, entries=top,
                 tags=[t for t, _ in tags.most_common(4)], keywords=keywords,
                 examples=_examples(group.members, turns, vectors, scrub, max_examples))


def _gap(group: _Group, gap_idx: Sequence[int], coach: Sequence[TurnRecord], gap_vecs: np.ndarray,
         why: Mapping[int, list[str]], kb: EntryVectors | None, entries: Mapping[str, KnowledgeEntry],
         vocab: Vocabulary, scrub: Scrubber, max_examples: int) -> Gap:
    turns = [coach[gap_idx[m]] for m in group.members]
    masked = [scrub(t.text, 10_000) for t in turns]
    keywords = vocab.keywords(masked)
    signals = Counter(s for m in group.members for s in why[gap_idx[m]])
    centre = _unit(gap_vecs[group.members].sum(axis=0, keepdims=True))
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
        rank=0, label=" \u00b7 ".join(keywords) or "(unlabelled questions)", questions=len(turns),
        teachers=group.teachers, keywords=keywords,
        signals={k: signals[k] for k in GAP_SIGNALS if signals.get(k)},
        examples=_examples(range(len(local_turns)), local_turns, local_vecs, scrub, max_examples),
        asked=asked, grades=grade_bands(masked), closest_entry=closest, closest_title=closest_title,
        closest_similarity=sim, first_week=weeks[0].isoformat(), last_week=weeks[-1].isoformat(),
    )


def _entry_stats(coach: Sequence[TurnRecord], clicks: Mapping[str, Counter[str]],
                 entries: Mapping[str, KnowledgeEntry]) -> list[EntryStat]:
    cited: Counter[str] = Counter()
    helped: Counter[str] = Counter()
    not_quite: Counter[str] = Counter()
    for t in coach:
        c = clicks.get(t.id) or Counter()
        for sid in t.sources:  # a click is about the whole reply, so every entry it drew on shares it
            cited[sid] += 1
            helped[sid] += c.get("helped", 0)
            not_quite[sid] += c.get("not_quite", 0)
    out = []
    for eid in cited:
        entry = entries.get(eid)
        out.append(EntryStat(eid, entry.title if entry else f"{eid} (no longer in the store)",
                             entry.samr.value if entry and entry.samr else NOT_SET,
                             cited[eid], helped[eid], not_quite[eid]))
    return sorted(out, key=lambda e: (-(e.helped + e.not_quite), -e.cited, e.entry_id))


def _escalation_stats(rows: Sequence[Mapping[str, Any]]) -> list[EscalationStat]:
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(str(row.get("target") or "?"), str(row.get("category") or "other"))].append(row)
    out = []
    for (target, category), items in groups.items():
        waits = []
        for row in items:
            created, claimed = _as_datetime(row.get("created_at")), _as_datetime(row.get("claimed_at"))
            if created and claimed and claimed >= created:
                waits.append((claimed - created).total_seconds() / 3600)
        statuses = Counter(str(row.get("status") or "open") for row in items)
        out.append(EscalationStat(
            target=target, category=category, label=CATEGORY_LABELS.get(category, category.replace("_", " ").capitalize()),
            count=len(items), urgent=sum(1 for r in items if r.get("urgent")),
            open=statuses.get("open", 0), claimed=sum(1 for r in items if r.get("claimed_at")),
            resolved=sum(n for s, n in statuses.items() if s in ("resolved", "closed", "done")),
            median_hours_to_claim=round(float(np.median(waits)), 2) if waits else None,
            p90_hours_to_claim=round(float(np.percentile(waits, 90)), 2) if waits else None,
        ))
    return sorted(out, key=lambda e: (-e.count, e.target, e.category))


# -- drafts for the curation loop -----------------------------------------------------------


DRAFT_NOTE = (
    "Finish it before importing: write the coaching note (when this helps, when it does not, what "
    "to watch for), turn the questions above into Socratic questions the coach may ask, add links, "
    "a kind, grades and a SAMR level, then remove `status: draft`."
)


def slug(text: str, prefix: str = "draft", max_words: int = 6) -> str:
    """An entry id (`draft-virtual-reality-headsets`) from a label: its first few topical words."""
    words = re.findall(r"[a-z0-9]+", _PLACEHOLDER.sub(" ", text).lower())
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


# The integrator's answer on an escalation: a column, or a detail item, named any of these
# (the handoff side is still growing; the report reads what is there).
RESOLUTION_FIELDS = ("resolution", "resolution_note", "resolution_text", "answer", "note", "notes")
ANSWER_KINDS = frozenset({"resolution", "resolved", "note", "answer", "reply"})
STAFF_ROLES = frozenset({"integrator", "helpdesk", "staff", "coach"})


def _is_answer(item: Mapping[str, Any]) -> bool:
    if any(isinstance(item.get(k), str) and item[k].strip() for k in RESOLUTION_FIELDS):
        return True
    kind = str(item.get("kind") or item.get("type") or "").lower()
    role = str(item.get("from") or item.get("role") or item.get("by_role") or "").lower()
    return kind in ANSWER_KINDS or role in STAFF_ROLES


def resolution_note(row: Mapping[str, Any]) -> str:
    """What the integrator answered, from a column or from the escalation's detail items."""
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


RESOLVED = ("resolved", "closed", "done")


def escalation_draft(row: Mapping[str, Any], scrub: Scrubber, taken: set[str],
                     today: date | None = None) -> KnowledgeEntry:
    """"Save what the integrator answered": one resolved escalation as a draft entry (masked)."""
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
