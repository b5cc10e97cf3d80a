"""Retrieval: dense similarity from the store, BM25 beside it, fused by a tuned weight."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from knowledge.entry import GRADE_BANDS, KnowledgeEntry
from knowledge.glossary import Glossary
from knowledge.lexical import BM25Index, query_terms
from knowledge.store import KnowledgeStore

Mode = Literal["dense", "lexical", "hybrid"]
CANDIDATES = 30


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


@dataclass
class SearchResult:
    hits: list[Hit] = field(default_factory=list)
    confidence: float = 0.0  # 0..1: how sure the best hit is relevant at all

    @property
    def ids(self) -> list[str]:
        return [h.entry.id for h in self.hits]


class Retriever:
    """Hybrid search over a `KnowledgeStore`; the BM25 index follows the store's contents."""

    def __init__(self, store: KnowledgeStore, *, mode: Mode = "hybrid", lexical_weight: float = 0.05,
                 context_weight: float = 0.5, glossary: Glossary | None = None) -> None:
        self.store = store
        self.glossary = glossary
        self.mode = mode
        self.lexical_weight = lexical_weight
        self.context_weight = context_weight
        self._index: BM25Index | None = None
        self._index_of: int | None = None

    def index(self) -> BM25Index:
        entries = self.store.entries()
        if self._index is None or self._index_of != id(entries):
            self._index = BM25Index(list(entries.values()))
            self._index_of = id(entries)
        return self._index

    def expand(self, text: str) -> str:
        """The question with plain words added for the tools it names."""
        expansion = self.glossary.expand(text) if self.glossary else ""
        return f"{text} ({expansion})" if expansion and not text.endswith(f"({expansion})") else text

    def embed_query(self, text: str, context: str = "", context_weight: float | None = None) -> np.ndarray:
        """One vector for the question, leaning toward the conversation when there is context."""
        text = self.expand(text)
        if not context:
            return self.store.embedder.embed([text])[0]
        cur, ctx = self.store.embedder.embed([text, self.expand(context)])
        vec = cur + (self.context_weight if context_weight is None else context_weight) * ctx
        return vec / (np.linalg.norm(vec) or 1.0)

    def search(self, text: str, *, context: str = "", k: int = 5, filters: Filters | None = None,
               vector: np.ndarray | None = None, boost: dict[str, float] | None = None,
               context_weight: float | None = None) -> SearchResult:
        """The k best entries for a teacher's question (and the conversation before it)."""
        filters = filters or Filters()
        entries = self.store.entries()
        if not entries or not text.strip():
            return SearchResult()
        text = self.expand(text)
        dense: dict[str, float] = {}
        if self.mode in ("dense", "hybrid"):
            if vector is None:
                vector = self.embed_query(text, context, context_weight)
            for hit in self.store.query(vector, k=CANDIDATES, where=filters.where()):
                dense[hit.entry_id] = hit.similarity
        lexical: dict[str, float] = {}
        if self.mode in ("lexical", "hybrid"):
            terms = query_terms(text, context, self.context_weight if context_weight is None else context_weight)
            hits = self.index().search(terms, k=CANDIDATES * 3)
            # Saturating normalisation against this query's median: a weak best match stays weak,
            # unlike dividing by the top score, which always hands the winner a full 1.0.
            positive = sorted(h.score for h in hits)
            middle = positive[len(positive) // 2] if positive else 1.0
            for h in hits:
                if filters.accepts(entries[h.entry_id]):
                    lexical[h.entry_id] = h.score / (h.score + middle)
        fused = self._fuse(dense, lexical)
        for eid, extra in (boost or {}).items():
            if eid in fused:
                fused[eid] += extra
        ranked = sorted(fused.items(), key=lambda kv: -kv[1])
        out = [
            Hit(entries[eid], score, dense.get(eid, 0.0), lexical.get(eid, 0.0))
            for eid, score in ranked if eid in entries and filters.accepts(entries[eid])
        ][:k]
        return SearchResult(out, self._confidence(out))

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
