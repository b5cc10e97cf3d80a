"""Retrieval: dense similarity from the store, BM25 beside it, fused by a tuned weight, then
the best candidates re-ranked by late interaction (knowledge/late_interaction.py)."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from knowledge.entry import GRADE_BANDS, KnowledgeEntry
from knowledge.glossary import AMBIGUOUS, Glossary
from knowledge.late_interaction import maxsim_many
from knowledge.lexical import BM25Index, query_terms, tokenize
from knowledge.query import ask_text
from knowledge.store import KnowledgeStore

Mode = Literal["dense", "lexical", "hybrid"]
CANDIDATES = 30
# How many first-stage candidates late interaction re-ranks: on every case set the right
# entry was within the first 10, so 20 leaves room at no measurable cost.
RERANK = 20
# In the re-ranked score the sentence-vector similarity counts half as much as MaxSim.
# Shares of 0 to 0.5 are within 0.01 MRR of each other on the mean over four case sets
# (benchmarks/retrieval.py); through `coach replay` 0.5 ranked best, so it is the default.
RERANK_DENSE_SHARE = 0.5
QUERY_TOKEN_MEMORY = 256
# Added to an entry that names, in its tags or title, a tool the question names: "on Flip" finds the
# entry about Flip, not the one about flipped learning that only shares the word. About the gap
# between a close first and second hit, so it settles near-ties without overruling a clear match.
TOOL_BOOST = 0.1
# A shared tool name alone ("Google Docs", "Forms") must not pull in an entry the rest of the need
# disagrees with: the boost is given in full only to entries whose dense similarity to the message with
# the tool names taken out is at least this share of the best one, fading to nothing at TOOL_AGREE_FLOOR.
TOOL_AGREE, TOOL_AGREE_FLOOR = 0.9, 0.75
# With fewer words than this left once the tool names are out, there is no need to agree with.
NEED_WORDS = 3


@dataclass(frozen=True)
class Filters:
    """Narrow a search to a grade band, subject or kind."""

    grade: str | None = None
    subject: str | None = None
    kind: str | None = None

    def where(self) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = []
        if self.grade:
            if self.grade not in GRADE_BANDS:
                raise ValueError(f"grade band {self.grade!r} is not one of {', '.join(GRADE_BANDS)}")
            clauses.append({f"grade_{self.grade}": True})
        if self.kind:
            clauses.append({"kind": self.kind})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def accepts(self, entry: KnowledgeEntry) -> bool:
        # A draft (status: draft) is for an integrator to finish, not for teachers yet.
        if str(entry.extra.get("status", "")).lower() == "draft":
            return False
        if self.grade and not entry.applies_to_grade(self.grade):
            return False
        if self.subject and not entry.applies_to_subject(self.subject):
            return False
        return not (self.kind and entry.kind.value != self.kind)


@dataclass(frozen=True)
class Hit:
    """One entry found, with the parts of its score so an integrator can see why it won."""

    entry: KnowledgeEntry
    score: float
    dense: float = 0.0
    lexical: float = 0.0
    late: float = 0.0  # MaxSim of the question's word pieces with the entry's note; 0 when not re-ranked


@dataclass
class SearchResult:
    hits: list[Hit] = field(default_factory=list)
    confidence: float = 0.0  # 0..1: how sure the best hit is relevant at all

    @property
    def ids(self) -> list[str]:
        return [h.entry.id for h in self.hits]


def _names_tool(entry: KnowledgeEntry, name: str) -> bool:
    """An entry is about a tool when a tag is its name, or its title names it (capitalised, if the name is
    also an ordinary word: "Working in teams" is not about Teams)."""
    if any(tag.lower().strip() == name for tag in entry.tags):
        return True
    flags = 0 if name in AMBIGUOUS else re.I
    wanted = name[:1].upper() + name[1:] if name in AMBIGUOUS else name
    return bool(re.search(rf"(?<![\w]){re.escape(wanted)}(?![\w])", entry.title, flags))


class Retriever:
    """Hybrid search over a `KnowledgeStore`; the BM25 index follows the store's contents."""

    def __init__(self, store: KnowledgeStore, *, mode: Mode = "hybrid", lexical_weight: float = 0.05,
                 context_weight: float = 0.5, glossary: Glossary | None = None,
                 late_interaction: bool = True, rerank_dense_share: float = RERANK_DENSE_SHARE,
                 ask_weight: float = 0.0, tool_boost: float = TOOL_BOOST) -> None:
        self.store = store
        self.tool_boost = tool_boost
        self._tool_entries: dict[str, set[str]] = {}
        self._tool_entries_of: int | None = None
        self.glossary = glossary
        self.mode = mode
        self.lexical_weight = lexical_weight
        self.context_weight = context_weight
        # Re-ranking needs token vectors, which only a local model gives (not OpenAI's API).
        self.late_interaction = late_interaction and mode == "hybrid" and store.tokens is not None
        self.rerank_dense_share = rerank_dense_share
        if not 0.0 <= ask_weight <= 4.0:
            raise ValueError(f"ask_weight must be between 0 and 4. Currently, the ask_weight is {ask_weight}")
        # In a long message, the sentences that carry the ask count this much again (0: the whole message only).
        self.ask_weight = ask_weight
        self._index: BM25Index | None = None
        self._index_of: int | None = None
        self._query_tokens: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_lock = threading.Lock()

    def index(self) -> BM25Index:
        entries = self.store.entries()
        if self._index is None or self._index_of != id(entries):
            self._index = BM25Index(list(entries.values()))
            self._index_of = id(entries)
        return self._index

    def tool_boosts(self, text: str) -> dict[str, float]:
        """`tool_boost` for every entry naming a tool the question names (as a tool, not a same-spelled idea)."""
        if self.glossary is None or not self.tool_boost:
            return {}
        named = self.glossary.tools(text)
        if not named:
            return {}
        entries = self.store.entries()
        if self._tool_entries_of != id(entries):
            self._tool_entries = {}
            self._tool_entries_of = id(entries)
        out: dict[str, float] = {}
        for name in named:
            if name not in self._tool_entries:
                self._tool_entries[name] = {e.id for e in entries.values() if _names_tool(e, name)}
            for eid in self._tool_entries[name]:
                out[eid] = self.tool_boost
        return out

    def expand(self, text: str) -> str:
        """The question with plain words added for the tools it names; a name that is also a teaching idea
        ("Flip", "Teams") is replaced by its words when it is used as the tool."""
        return self.glossary.expanded(self.glossary.disambiguated(text), as_used=True) if self.glossary else text

    def embed_query(self, text: str, context: str = "", context_weight: float | None = None) -> np.ndarray:
        """One vector for the question, leaning toward the conversation when there is context."""
        texts = [self.expand(text)] + ([self.expand(context)] if context else [])
        vectors = self._embed(texts)
        if not context:
            return vectors[0]
        vec = vectors[0] + (self.context_weight if context_weight is None else context_weight) * vectors[1]
        return vec / (np.linalg.norm(vec) or 1.0)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Sentence vectors; with late interaction on, the same pass keeps each text's token vectors."""
        if not self.late_interaction or self.store.tokens is None:
            return self.store.embedder.embed(texts)
        return self._embed_with_tokens(texts)[0]

    def _embed_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        vectors, tokens = self.store.embedder.embed_with_tokens(texts)  # type: ignore[attr-defined]
        with self._query_lock:
            for text, matrix in zip(texts, tokens):
                self._query_tokens[text] = matrix
                self._query_tokens.move_to_end(text)
            while len(self._query_tokens) > QUERY_TOKEN_MEMORY:
                self._query_tokens.popitem(last=False)
        return vectors, tokens

    def query_tokens(self, text: str, context: str = "") -> np.ndarray:
        """The word-piece vectors of the question (and the turn before it), computed once per text."""
        texts = [self.expand(text)] + ([self.expand(context)] if context else [])
        with self._query_lock:
            known = {t: self._query_tokens[t] for t in texts if t in self._query_tokens}
        missing = [t for t in texts if t not in known]
        if missing:
            known.update(zip(missing, self._embed_with_tokens(missing)[1]))
        return np.vstack([known[t] for t in texts])

    def search(self, text: str, *, context: str = "", k: int = 5, filters: Filters | None = None,
               vector: np.ndarray | None = None, boost: dict[str, float] | None = None,
               context_weight: float | None = None) -> SearchResult:
        """The k best entries for a teacher's question (and the conversation before it)."""
        filters = filters or Filters()
        entries = self.store.entries()
        if not entries or not text.strip():
            return SearchResult()
        original = text
        text = self.expand(text)
        tools = self.tool_boosts(original)
        if tools:
            boost = {eid: (boost or {}).get(eid, 0.0) + tools.get(eid, 0.0) for eid in set(boost or {}) | set(tools)}
        asking = ask_text(original) if self.ask_weight > 0 else None
        dense: dict[str, float] = {}
        if self.mode in ("dense", "hybrid"):
            if vector is None:
                vector = self.embed_query(original, context, context_weight)
            if asking:
                vector = self._lean_toward(vector, asking)
            for hit in self.store.query(vector, k=CANDIDATES, where=filters.where()):
                dense[hit.entry_id] = hit.similarity
        lexical: dict[str, float] = {}
        relative: dict[str, float] = {}
        if self.mode in ("lexical", "hybrid"):
            terms = query_terms(text, context, self.context_weight if context_weight is None else context_weight)
            if asking:
                for tok in set(tokenize(self.expand(asking))):
                    terms[tok] = terms.get(tok, 0.0) + self.ask_weight
            hits = self.index().search(terms, k=CANDIDATES * 3)
            # Saturating normalisation against this query's median: a weak best match stays weak,
            # unlike dividing by the top score, which always hands the winner a full 1.0.
            positive = sorted(h.score for h in hits)
            middle = positive[len(positive) // 2] if positive else 1.0
            top = positive[-1] if positive else 1.0
            for h in hits:
                if filters.accepts(entries[h.entry_id]):
                    lexical[h.entry_id] = h.score / (h.score + middle)
                    relative[h.entry_id] = h.score / top if top > 0 else 0.0
        fused = self._fuse(dense, lexical)
        need = self._need_similarity(original, filters) if tools and dense else {}
        if need:
            boost = {eid: extra - tools.get(eid, 0.0) * (1.0 - self._agreement(need, eid))
                     for eid, extra in (boost or {}).items()}
        for eid, extra in (boost or {}).items():
            if eid in fused:
                fused[eid] += extra
        ranked = [(eid, score) for eid, score in sorted(fused.items(), key=lambda kv: -kv[1])
                  if eid in entries and filters.accepts(entries[eid])]
        if self.late_interaction and ranked:
            out = self._rerank(original, context, ranked[:max(RERANK, k)], dense, lexical, relative, boost or {},
                               asking)
        else:
            out = [Hit(entries[eid], score, dense.get(eid, 0.0), lexical.get(eid, 0.0)) for eid, score in ranked]
        return SearchResult(out[:k], self._confidence(out[:k]))

    def _need_similarity(self, text: str, filters: Filters) -> dict[str, float]:
        """Dense similarity of each candidate to the message with the tool names taken out: the need itself,
        which the glossary's words for the tool would otherwise pull toward any entry about that tool."""
        need = text
        for name in sorted(self.glossary.tools(text) if self.glossary else [], key=len, reverse=True):
            need = re.sub(rf"(?<![\w]){re.escape(name)}(?![\w])", " ", need, flags=re.I)
        if len(tokenize(need)) < NEED_WORDS:  # the tool is the whole question ("padlet?"): it counts in full
            return {}
        vector = self.store.embedder.embed([need])[0]
        return {h.entry_id: h.similarity for h in self.store.query(vector, k=CANDIDATES, where=filters.where())}

    @staticmethod
    def _agreement(dense: dict[str, float], eid: str) -> float:
        """0..1: how far the whole message's meaning agrees with an entry, against the best dense match."""
        top = max(dense.values())
        if top <= 0:
            return 1.0
        share = dense.get(eid, 0.0) / top
        return float(min(1.0, max(0.0, (share - TOOL_AGREE_FLOOR) / (TOOL_AGREE - TOOL_AGREE_FLOOR))))

    def _lean_toward(self, vector: np.ndarray, asking: str) -> np.ndarray:
        """The message's vector moved toward its ask sentences' vector by `ask_weight`."""
        ask_vector = self._embed([self.expand(asking)])[0]
        fused = vector + self.ask_weight * ask_vector
        return fused / (np.linalg.norm(fused) or 1.0)

    def _rerank(self, text: str, context: str, ranked: list[tuple[str, float]], dense: dict[str, float],
                lexical: dict[str, float], relative: dict[str, float], boost: dict[str, float],
                asking: str | None = None) -> list[Hit]:
        """The first stage's best candidates in late-interaction order."""
        entries = self.store.entries()
        candidates = [entries[eid] for eid, _ in ranked]
        cache = self.store.tokens
        if cache is None:  # the store's model changed under this retriever
            return [Hit(e, score, dense.get(e.id, 0.0), lexical.get(e.id, 0.0)) for e, (_, score) in zip(candidates, ranked)]
        docs = cache.get_many(candidates, [self.store.entry_hash(e.id) for e in candidates])
        query = self.query_tokens(text, context)
        ask_query = self.query_tokens(asking) if asking else None
        floor = min(dense.values()) if dense else 0.0
        lates = maxsim_many(query, docs)
        if ask_query is not None:
            lates = (lates + self.ask_weight * maxsim_many(ask_query, docs)) / (1 + self.ask_weight)
        hits = []
        for entry, late in zip(candidates, lates.tolist()):
            score = (late + self.rerank_dense_share * dense.get(entry.id, floor)
                     + self.lexical_weight * relative.get(entry.id, 0.0) + boost.get(entry.id, 0.0))
            hits.append(Hit(entry, score, dense.get(entry.id, 0.0), lexical.get(entry.id, 0.0), late))
        return sorted(hits, key=lambda h: -h.score)

    def _fuse(self, dense: dict[str, float], lexical: dict[str, float]) -> dict[str, float]:
        if self.mode == "dense":
            return dense
        if self.mode == "lexical":
            return lexical
        w = self.lexical_weight
        # Dense cosine plus a weighted, saturated BM25 score: unlike rank fusion, a weak lexical
        # list cannot outvote a confident dense match.
        floor = min(dense.values()) if dense else 0.0
        return {eid: dense.get(eid, floor) + w * lexical.get(eid, 0.0)
                for eid in set(dense) | set(lexical)}

    @staticmethod
    def _confidence(hits: list[Hit]) -> float:
        """How likely the best hit is relevant at all, from dense similarity alone.

        The saturated BM25 share is relative to the query's own candidates (the best is always
        above one half), so it ranks well but says nothing absolute; cosine does. MiniLM puts
        on-topic teacher questions at 0.3-0.7 against their entry and unrelated ones below 0.3.
        """
        if not hits:
            return 0.0
        return float(min(1.0, max(0.0, (hits[0].dense - 0.2) / 0.4)))
