"""How close in meaning each sentence and question of a note is to what the teacher asked.

Shared words pick the wrong sentence too often: "what could they make in ten minutes" shares no word
with the note's sentence that answers it, and shares "make" with a definition. Sentence vectors from the
local embedder rank the note's sentences by meaning instead. An entry's vectors are computed the first
time a reply uses it and kept, so a reply costs one batch: the ask, and any note not seen before.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bot.compose.ideas import note_sentences
from knowledge.embeddings import Embedder
from knowledge.entry import KnowledgeEntry

# The ask sentences say what is wanted; the whole message says what it is about ("ten minutes" of what).
ASK_SHARE = 0.7
# Entries whose vectors are kept; a knowledge base is a few hundred entries at most.
MAX_CACHED = 1024


@dataclass(frozen=True)
class Fit:
    """Cosine similarity to the ask of each note sentence and curated question measured for one reply."""

    by_text: dict[str, float] = field(default_factory=dict)

    def of(self, text: str) -> float | None:
        """The sentence's similarity to the ask, or None when it was not measured."""
        return self.by_text.get(text)


def entry_texts(entry: KnowledgeEntry) -> list[str]:
    """What a reply may lift from an entry: its note's sentences, then its questions."""
    return [*note_sentences(entry), *entry.questions]


class SentenceFit:
    """Measures note sentences and questions against an ask with a local sentence embedder.

    Safe to share between threads; an entry's vectors are keyed by its id and content, so an edited
    note is measured afresh.
    """

    def __init__(self, embedder: Embedder, max_entries: int = MAX_CACHED) -> None:
        self.embedder = embedder
        self.max_entries = max_entries
        self._vectors: OrderedDict[tuple[str, str], tuple[list[str], np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(entry: KnowledgeEntry) -> tuple[str, str]:
        content = "\n".join([entry.body, *entry.questions])
        return entry.id, hashlib.sha1(content.encode("utf-8")).hexdigest()

    def measure(self, ask: str, message: str, entries: Sequence[KnowledgeEntry], *,
                message_vector: np.ndarray | None = None) -> Fit:
        """Each sentence and question of `entries` scored by meaning against the ask (and, less, the message).
        `message_vector`: the message's embedding when the caller already has one (then it is not embedded)."""
        keys = [self._key(e) for e in entries]
        with self._lock:
            known = {k: self._vectors[k] for k in keys if k in self._vectors}
            for k in known:
                self._vectors.move_to_end(k)
        missing: dict[tuple[str, str], list[str]] = {}
        for key, entry in zip(keys, entries):
            if key not in known and key not in missing:
                missing[key] = entry_texts(entry)
        whole = message.strip() != ask.strip()
        given = message_vector is not None and message_vector.shape == (self.embedder.dimension,)
        queries = [ask] + ([message] if whole and not given else [])
        batch = queries + [t for texts in missing.values() for t in texts]
        vectors = self.embedder.embed(batch)  # the reply's one extra batch
        start = len(queries)
        for key, texts in missing.items():
            known[key] = (texts, vectors[start:start + len(texts)])
            start += len(texts)
        if missing:
            with self._lock:
                for key in missing:
                    self._vectors[key] = known[key]
                while len(self._vectors) > self.max_entries:
                    self._vectors.popitem(last=False)
        asked = vectors[:len(queries)]
        if whole and given and message_vector is not None:
            norm = float(np.linalg.norm(message_vector)) or 1.0
            asked = np.vstack([asked, (message_vector / norm).astype(asked.dtype)[None, :]])
        out: dict[str, float] = {}
        for key in keys:
            texts, matrix = known[key]
            if not texts:
                continue
            sims = matrix @ asked.T
            score = sims[:, 0] if len(asked) == 1 else ASK_SHARE * sims[:, 0] + (1 - ASK_SHARE) * sims[:, 1]
            out.update(zip(texts, (float(s) for s in score)))
        return Fit(out)
