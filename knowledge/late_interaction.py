"""Late interaction: compare a question with an entry word piece by word piece.

A sentence vector averages a whole note into one point, so a teacher's short, indirect
question ("they zone out during my slides") can land nearer a neighbouring entry than the
right one. Scoring each word piece of the question against its best-matching word piece
of the entry's note (MaxSim, as in ColBERT), over the same MiniLM model's token states,
re-ranks the first-stage candidates far better on every case set we measured
(`python benchmarks/retrieval.py`).

Token vectors of entry notes are kept in files under the data directory, one per entry
content and model, written at import from the same forward pass that embeds the note,
and computed on demand for an entry this machine has not seen (a shared Chroma server
filled by another machine).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from knowledge.entry import KnowledgeEntry

log = logging.getLogger(__name__)

# Token matrices kept in memory (~130 KB each as float16): a school's whole base, or a
# district's most asked-about entries; the rest are read from disk (well under 1 ms each).
MEMORY_ENTRIES = 512


@runtime_checkable
class TokenEmbedder(Protocol):
    """An embedder that can also give the word-piece vectors of each text."""

    name: str

    def embed_with_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]: ...


def note_text(entry: KnowledgeEntry) -> str:
    """The text whose word pieces a question is compared with: the entry's note view."""
    return f"{entry.title}. {entry.body}"


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """Mean over the question's word pieces of the best cosine with any of the document's."""
    if not len(query) or not len(doc):
        return 0.0
    return float((query @ doc.T.astype(np.float32, copy=False)).max(axis=1).mean())


def maxsim_many(query: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    """`maxsim(query, doc)` for every doc, from one matrix product over all their word pieces.

    One product instead of one per document: on a busy machine each small BLAS call pays its
    threads' start-up, which made re-ranking 20 candidates cost more than embedding the question.
    """
    out = np.zeros(len(docs), dtype=np.float64)
    filled = [i for i, doc in enumerate(docs) if len(doc)]
    if not len(query) or not filled:
        return out
    stacked = np.concatenate([docs[i] for i in filled]).astype(np.float32, copy=False)
    sims = query.astype(np.float32, copy=False) @ stacked.T
    starts = np.cumsum([0] + [len(docs[i]) for i in filled[:-1]])
    out[filled] = np.maximum.reduceat(sims, starts, axis=1).mean(axis=0)
    return out


class TokenCache:
    """Word-piece vectors of entry notes, by content hash: in memory, and on disk when a folder is given."""

    def __init__(self, embedder: TokenEmbedder, folder: Path | None = None) -> None:
        self.embedder = embedder
        self.folder = folder / _slug(embedder.name) if folder is not None else None
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, tokens: np.ndarray) -> None:
        """Keep the note tokens of the entry whose content hash is `key` (at import, from that pass)."""
        matrix = tokens.astype(np.float16)
        if self.folder is None:
            self._remember(key, matrix)
            return
        # With a folder the file is the copy: an import of 10,000 entries would otherwise fill
        # the memory with the last 512 it wrote (~65 MB), which serving may never ask for.
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{key}.npy"
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, matrix)
            os.replace(tmp, path)  # readers never see half a file
        except OSError as exc:
            # The cache is an accelerator: without the file the tokens are recomputed later.
            log.warning("cannot write token vectors to %s: %s", self.folder, exc)
            self._remember(key, matrix)

    def get_many(self, entries: Sequence[KnowledgeEntry], keys: Sequence[str] | None = None) -> list[np.ndarray]:
        """Token matrices for `entries`, computing (and keeping) the ones not seen before.

        `keys` are the entries' content hashes when the caller has them (the store does).
        """
        keys = list(keys) if keys is not None else [entry.content_hash() for entry in entries]
        out: list[np.ndarray | None] = [self._load(key) for key in keys]
        missing = [i for i, matrix in enumerate(out) if matrix is None]
        if missing:
            _, tokens = self.embedder.embed_with_tokens([note_text(entries[i]) for i in missing])
            for i, matrix in zip(missing, tokens):
                self.put(keys[i], matrix)
                out[i] = matrix.astype(np.float16)
        return [m for m in out if m is not None]

    def prune(self, keep: Sequence[KnowledgeEntry]) -> int:
        """Delete files of entries no longer in the store; returns how many went."""
        if self.folder is None or not self.folder.is_dir():
            return 0
        wanted = {f"{e.content_hash()}.npy" for e in keep}
        gone = 0
        for path in self.folder.glob("*.npy"):
            if path.name not in wanted:
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def _load(self, key: str) -> np.ndarray | None:
        with self._lock:
            matrix = self._memory.get(key)
            if matrix is not None:
                self._memory.move_to_end(key)
                return matrix
        if self.folder is None:
            return None
        path = self.folder / f"{key}.npy"
        try:
            matrix = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("token vectors in %s are unreadable (%s); recomputing", path, exc)
            return None
        if matrix.ndim != 2:
            return None
        self._remember(key, matrix)
        return matrix

    def _remember(self, key: str, matrix: np.ndarray) -> None:
        with self._lock:
            self._memory[key] = matrix
            self._memory.move_to_end(key)
            while len(self._memory) > MEMORY_ENTRIES:
                self._memory.popitem(last=False)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"
