"""The knowledge store on chromadb: entries, their vectors, and the model that made them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from knowledge.embeddings import Embedder
from knowledge.entry import KnowledgeEntry
from knowledge.late_interaction import TokenCache, TokenEmbedder, note_text
from knowledge.native_memory import release_freed_memory

log = logging.getLogger(__name__)

COLLECTION = "knowledge"
FORMAT_VERSION = 2
# Two vectors per entry: the curated card (title, tags, questions) says what the entry is
# for; the note says how. A teacher's question may match either.
VIEWS = ("card", "note")
WRITE_BATCH = 64


class StoreError(RuntimeError):
    """The vector store cannot be reached or is not usable; the message says which and why."""


def view_texts(entry: KnowledgeEntry) -> dict[str, str]:
    """The texts embedded for one entry, one per view."""
    tags = ", ".join(entry.tags)
    card = f"{entry.title}. {tags}. " + " ".join(entry.questions)
    return {"card": card, "note": note_text(entry)}


def _flags(entry: KnowledgeEntry) -> dict[str, Any]:
    # Chroma filters on scalar metadata, so grade bands become one boolean each.
    meta: dict[str, Any] = {"kind": entry.kind.value}
    bands = entry.grades or ["K-2", "3-5", "6-8", "9-12", "adult"]
    for band in bands:
        meta[f"grade_{band}"] = True
    return meta


@dataclass
class SyncReport:
    """What an import changed."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    reembedded: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.reembedded)


@dataclass(frozen=True)
class DenseHit:
    """An entry's similarity to the query: its best view, blended with its views' mean."""

    entry_id: str
    similarity: float
    view: str
    best: float = 0.0


def open_client(*, data_dir: Path, chroma_url: str | None) -> Any:
    """A chromadb client: on disk in the data directory, or a Chroma server when a URL is given."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if chroma_url:
        parts = urlsplit(chroma_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"COACH_CHROMA_URL {chroma_url!r} is not an http(s) URL like http://127.0.0.1:8000")
        try:
            client = chromadb.HttpClient(
                host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 80),
                ssl=parts.scheme == "https", settings=chroma_settings,
            )
            client.heartbeat()
        except Exception as exc:  # chromadb raises several types for a server that is down
            raise StoreError(f"Chroma server at {chroma_url} is not reachable: {exc}") from exc
        return client
    path = data_dir / "chroma"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:
        raise StoreError(f"cannot open the knowledge store in {path}: {exc}") from exc


class KnowledgeStore:
    """Entries and their vectors in one chromadb collection that records its embedding model."""

    def __init__(self, client: Any, embedder: Embedder, name: str = COLLECTION,
                 token_dir: Path | None = None) -> None:
        """Open (or create) the collection. `token_dir` keeps late-interaction token vectors on
        disk; without it they live in memory only. Embedders without token vectors get none."""
        self.client = client
        self.embedder = embedder
        self.name = name
        self.token_dir = token_dir
        self._tokens: TokenCache | None = None
        self._entries: dict[str, KnowledgeEntry] | None = None
        self._entry_hashes: dict[str, str] = {}
        try:
            self.collection = client.get_or_create_collection(
                name=name,
                embedding_function=None,  # vectors are always passed in; the default would download a model
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedding_model": embedder.name, "format": FORMAT_VERSION},
            )
        except Exception as exc:
            raise StoreError(f"cannot open collection {name!r}: {exc}") from exc

    # -- reading -------------------------------------------------------------------------

    @property
    def tokens(self) -> TokenCache | None:
        """Token vectors of entry notes for late interaction; None for models that give none."""
        if not isinstance(self.embedder, TokenEmbedder):
            return None
        if self._tokens is None or self._tokens.embedder is not self.embedder:
            self._tokens = TokenCache(self.embedder, self.token_dir)
        return self._tokens

    @property
    def model_name(self) -> str | None:
        """The embedding model that built this collection's vectors."""
        return (self.collection.metadata or {}).get("embedding_model")

    def count(self) -> int:
        """Number of entries (not vectors)."""
        return len(self.entries())

    def entries(self) -> dict[str, KnowledgeEntry]:
        """Every entry by id; read once and cached until the store changes."""
        if self._entries is None:
            got = self._call(lambda: self.collection.get(where={"view": "card"}, include=["documents", "metadatas"]))
            entries, hashes = {}, {}
            for doc, meta in zip(got["documents"] or [], got["metadatas"] or []):
                # Format 1 kept the entry in the card's metadata; read it until the store is rewritten.
                entry = KnowledgeEntry.from_json(meta["entry"] if "entry" in meta else doc)
                entries[entry.id] = entry
                hashes[entry.id] = meta.get("hash") or entry.content_hash()
            self._entries, self._entry_hashes = entries, hashes
        return self._entries

    def entry_hash(self, entry_id: str) -> str:
        """The content hash of an entry `entries()` holds, from the same read (no hashing per search)."""
        self.entries()
        return self._entry_hashes[entry_id]

    def get(self, entry_id: str) -> KnowledgeEntry | None:
        """One entry, or None."""
        return self.entries().get(entry_id)

    def hashes(self) -> dict[str, str]:
        """Content hash per entry id, as stored."""
        got = self._call(lambda: self.collection.get(where={"view": "card"}, include=["metadatas"]))
        return {m["entry_id"]: m["hash"] for m in got["metadatas"] or []}

    def query(self, vector: np.ndarray, k: int = 20, where: dict[str, Any] | None = None) -> list[DenseHit]:
        """Nearest entries to a query vector, best view per entry, best first."""
        # Rows from the entries already read (each entry is written with all its views) rather than a count
        # from chromadb per query, which cost about as much as the query itself.
        total = len(self.entries()) * len(VIEWS)
        if total == 0:
            return []
        n = min(total, k * len(VIEWS))
        got = self._call(lambda: self.collection.query(
            query_embeddings=[vector.astype(np.float32).tolist()], n_results=n,
            where=where, include=["metadatas", "distances"],
        ))
        views: dict[str, dict[str, float]] = {}
        for meta, dist in zip(got["metadatas"][0], got["distances"][0]):
            views.setdefault(meta["entry_id"], {})[meta["view"]] = 1.0 - float(dist)
        floor = min((min(v.values()) for v in views.values()), default=0.0)
        hits = []
        for eid, sims in views.items():
            view, best = max(sims.items(), key=lambda kv: kv[1])
            # A view beyond the candidates is at most as similar as the weakest one returned.
            mean = sum(sims.get(name, floor) for name in VIEWS) / len(VIEWS)
            # An entry whose card and note both match is a safer bet than one lucky view.
            hits.append(DenseHit(eid, (best + mean) / 2, view, best))
        return sorted(hits, key=lambda h: -h.similarity)[:k]

    # -- writing -------------------------------------------------------------------------

    def sync(
        self,
        entries: Sequence[KnowledgeEntry],
        *,
        prune: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> SyncReport:
        """Make the store hold `entries`: embed only what is new or changed; with prune, drop the rest."""
        report = SyncReport()
        stored_format = (self.collection.metadata or {}).get("format")
        if self.model_name != self.embedder.name or stored_format != FORMAT_VERSION:
            report.reembedded = self._reembed_all()
        stored = self.hashes()
        todo: list[KnowledgeEntry] = []
        for entry in entries:
            old = stored.get(entry.id)
            if old == entry.content_hash():
                report.unchanged.append(entry.id)
                continue
            (report.updated if old else report.added).append(entry.id)
            todo.append(entry)
        self.upsert(todo, progress=progress)
        if prune:
            keep = {e.id for e in entries}
            gone = sorted(set(stored) - keep)
            self.remove(gone)
            report.removed = gone
            cache = self.tokens
            if cache is not None:
                cache.prune(list(self.entries().values()))
        return report

    def upsert(self, entries: Sequence[KnowledgeEntry], progress: Callable[[int, int], None] | None = None) -> None:
        """Embed and write entries in batches; each entry's views are written together."""
        done = 0
        for start in range(0, len(entries), WRITE_BATCH):
            batch = entries[start:start + WRITE_BATCH]
            ids, texts, docs, metas = [], [], [], []
            for entry in batch:
                for view, text in view_texts(entry).items():
                    ids.append(f"{entry.id}#{view}")
                    texts.append(text)
                    # The card row's document is the whole entry, so the store gives it back exactly;
                    # queries never ask for documents, so a search does not carry entries around.
                    docs.append(entry.canonical_json() if view == "card" else text)
                    metas.append({"entry_id": entry.id, "view": view, "hash": entry.content_hash(), **_flags(entry)})
            cache = self.tokens
            if cache is not None:
                # One forward pass gives the note's sentence vector and its token vectors.
                vectors, tokens = cache.embedder.embed_with_tokens(texts)
                for i, row_id in enumerate(ids):
                    if row_id.endswith("#note"):
                        cache.put(metas[i]["hash"], tokens[i])
            else:
                vectors = self.embedder.embed(texts)
            # Stale grade flags must not survive an update, so the old rows go first.
            self._call(lambda: self.collection.delete(where={"entry_id": {"$in": [e.id for e in batch]}}))
            self._call(lambda: self.collection.add(ids=ids, embeddings=vectors.tolist(), documents=docs, metadatas=metas))
            done += len(batch)
            self._entries = None
            if progress:
                progress(done, len(entries))
        if entries:
            release_freed_memory()

    def remove(self, ids: Iterable[str]) -> list[str]:
        """Remove entries by id; returns the ids that were there."""
        ids = list(ids)
        present = [i for i in ids if i in self.entries()]
        if present:
            self._call(lambda: self.collection.delete(where={"entry_id": {"$in": present}}))
            self._entries = None
        return present

    def _reembed_all(self) -> bool:
        """Rebuild every vector with the current model in a new collection, then swap it in."""
        old_model = self.model_name
        entries = list(self.entries().values())
        log.warning("knowledge store was built with %s; re-embedding %d entries with %s",
                    old_model, len(entries), self.embedder.name)
        tmp_name = f"{self.name}-rebuild"
        try:
            self.client.delete_collection(tmp_name)
        except Exception:
            pass
        fresh = KnowledgeStore(self.client, self.embedder, tmp_name, self.token_dir)
        fresh.upsert(entries)
        # Only when the new collection is complete does the old one go: nothing half-written.
        self._call(lambda: self.client.delete_collection(self.name))
        self._call(lambda: fresh.collection.modify(name=self.name))
        self.collection = self._call(lambda: self.client.get_collection(self.name, embedding_function=None))
        self._entries = None
        return True

    @staticmethod
    def _call(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"knowledge store operation failed: {exc}") from exc
