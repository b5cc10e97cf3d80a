"""Vectors for the report: each entry's card and views, and every question (cached between reports)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.report.rows import TurnRecord
from knowledge.store import KnowledgeStore, view_texts


def unit(m: np.ndarray) -> np.ndarray:
    """Each row scaled to length one (a zero row stays zero)."""
    m = np.asarray(m, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.maximum(norms, 1e-12)


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
    v = unit(np.vstack(views))
    return EntryVectors(ids, unit(np.vstack([c for c in card if c is not None])), v, np.asarray(owners, dtype=int))


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
    return unit(q)
