"""BM25 over knowledge entries, with field weights, light stemming and typo-tolerant lookup.

Teachers type tool names, acronyms and typos ("padlett", "SAMR", "gr 8"); dense
similarity blurs exact terms, so a lexical ranking is kept beside it.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from knowledge.entry import KnowledgeEntry

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing don down during each even every few for
    from get got had has have having he her here hers him his how i i'm i'd i've if in into is it
    it's its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own really same she should so some such than that the their theirs them then there
    these they this those through to too under until up very want was we were what when where which
    while who whom why will with would you your yours yourself ok okay pls please thanks hi hey
    yr yrs gr year years grade grades class kids students student""".split()
)


def stem(token: str) -> str:
    """A deliberately small suffix stripper: enough to join 'videos'/'video' and 'citing'/'cite'."""
    if len(token) <= 3 or token.isdigit():
        return token
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "e"), ("s", "")):
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            if suffix == "s" and token.endswith(("ss", "us", "is")):
                continue
            token = token[: len(token) - len(suffix)] + repl
            break
    # A final silent 'e' goes too, so 'cite', 'cites' and 'citing' meet at 'cit'.
    if len(token) > 3 and token.endswith("e"):
        token = token[:-1]
    return token


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, stop words dropped, stemmed."""
    words = _TOKEN.findall(text.lower().replace("’", "'"))
    return [stem(w.split("'")[0]) for w in words if w not in STOPWORDS and w.split("'")[0] not in STOPWORDS]


# Field weights: curated titles, tags and questions say what an entry is for more
# sharply than its body does.
FIELD_WEIGHTS = {"title": 3, "tags": 3, "questions": 2, "body": 1}


def entry_fields(entry: KnowledgeEntry) -> dict[str, str]:
    return {
        "title": entry.title,
        "tags": " ".join(entry.tags + [entry.kind.value] + ([entry.samr.value] if entry.samr else [])),
        "questions": " ".join(entry.questions),
        "body": entry.body,
    }


@dataclass(frozen=True)
class LexicalHit:
    entry_id: str
    score: float


class BM25Index:
    """An in-memory BM25 index; postings as numpy arrays so a query over 10,000 entries stays fast."""

    def __init__(self, entries: list[KnowledgeEntry], k1: float = 1.2, b: float = 0.75) -> None:
        self.ids = [e.id for e in entries]
        self.k1, self.b = k1, b
        counts: list[dict[str, float]] = []
        lengths = np.zeros(len(entries), dtype=np.float32)
        for i, entry in enumerate(entries):
            tf: dict[str, float] = defaultdict(float)
            for name, text in entry_fields(entry).items():
                weight = FIELD_WEIGHTS[name]
                for tok in tokenize(text):
                    tf[tok] += weight
            counts.append(tf)
            lengths[i] = sum(tf.values())
        avg = float(lengths.mean()) if len(entries) else 1.0
        norm = k1 * (1 - b + b * lengths / max(avg, 1e-6))
        postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for i, tf in enumerate(counts):
            for tok, f in tf.items():
                postings[tok].append((i, f))
        n = len(entries)
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for tok, plist in postings.items():
            docs = np.fromiter((d for d, _ in plist), dtype=np.int32, count=len(plist))
            tfs = np.fromiter((f for _, f in plist), dtype=np.float32, count=len(plist))
            idf = math.log(1 + (n - len(plist) + 0.5) / (len(plist) + 0.5))
            # Precompute the whole BM25 term contribution per posting: a query is then sums only.
            self._postings[tok] = (docs, (idf * tfs * (k1 + 1) / (tfs + norm[docs])).astype(np.float32))
        self._deletes = self._deletion_index(self._postings.keys())

    @staticmethod
    def _deletion_index(vocab) -> dict[str, list[str]]:
        # SymSpell-style: every word under each one-letter deletion, to find 'padlett' -> 'padlet'.
        index: dict[str, list[str]] = defaultdict(list)
        for word in vocab:
            if len(word) >= 4 and not word.isdigit():
                index[word].append(word)
                for i in range(len(word)):
                    index[word[:i] + word[i + 1:]].append(word)
        return index

    def _expand(self, token: str) -> list[str]:
        if token in self._postings:
            return [token]
        if len(token) < 5:
            return []
        candidates: set[str] = set(self._deletes.get(token, ()))
        for i in range(len(token)):
            candidates.update(self._deletes.get(token[:i] + token[i + 1:], ()))
        return sorted(candidates)[:3]

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, weighted_terms: dict[str, float]) -> np.ndarray:
        """BM25 score for every entry, given query tokens with weights."""
        total = np.zeros(len(self.ids), dtype=np.float32)
        for token, weight in weighted_terms.items():
            for term in self._expand(token):
                docs, contrib = self._postings[term]
                penalty = 1.0 if term == token else 0.7  # a typo match counts, a little less
                np.add.at(total, docs, contrib * (weight * penalty))
        return total

    def search(self, weighted_terms: dict[str, float], k: int = 20) -> list[LexicalHit]:
        """The k best entries for the weighted query tokens."""
        if not self.ids or not weighted_terms:
            return []
        total = self.scores(weighted_terms)
        k = min(k, len(total))
        top = np.argpartition(-total, k - 1)[:k]
        top = top[np.argsort(-total[top])]
        return [LexicalHit(self.ids[i], float(total[i])) for i in top if total[i] > 0]


def query_terms(text: str, context: str = "", context_weight: float = 0.5) -> dict[str, float]:
    """Token weights for a query; earlier turns of the conversation count for less."""
    terms: dict[str, float] = defaultdict(float)
    for tok in tokenize(text):
        terms[tok] = 1.0
    for tok in tokenize(context):
        terms[tok] = max(terms[tok], context_weight)
    return dict(terms)
