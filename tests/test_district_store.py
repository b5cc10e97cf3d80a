"""The knowledge store on a real Chroma server (`chroma run`), reached with HttpClient, as a district runs it.

The same behaviour as the on-disk store (tests/test_store_search.py), now over HTTP: sync is
idempotent and incremental, prune removes, retrieval ranks, a model change re-embeds; plus what
only a server can do to you: several bot processes share it, and it can go away mid-operation.
Tests share one server (each on its own collection) except those that stop theirs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from knowledge.parser import load_folder
from knowledge.search import Retriever
from knowledge.store import KnowledgeStore, StoreError, open_client

from conftest import FIXTURE_KB, HashingEmbedder

pytestmark = pytest.mark.server


class StopsServerOnEmbed:
    """Wraps an embedder; the first embed call stops the Chroma server, so the write that follows fails."""

    def __init__(self, inner: HashingEmbedder, server) -> None:  # noqa: ANN001  (services.ChromaServer)
        self.inner, self.server = inner, server
        self.name, self.dimension = inner.name, inner.dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        self.server.stop()
        return self.inner.embed(texts)


@pytest.fixture
def collection() -> str:
    """A collection name of this test's own on the shared server."""
    return f"kb-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def own_server(tmp_path: Path, chroma_server) -> Iterator:  # noqa: ANN001
    """A Chroma server this test may stop and restart (chroma_server proves the binary is there)."""
    from services import ChromaServer

    server = ChromaServer(tmp_path / "chroma").start()
    try:
        yield server
    finally:
        server.cleanup()


def entries():
    return load_folder(FIXTURE_KB).entries


def test_client_is_an_http_client_of_the_server(tmp_path: Path, chroma_url: str) -> None:
    client = open_client(data_dir=tmp_path, chroma_url=chroma_url)
    assert type(client).__name__ != "PersistentClient"
    assert client.heartbeat() > 0
    assert not (tmp_path / "chroma").exists()  # nothing written to the local data directory


def test_sync_is_idempotent_incremental_and_prunes(tmp_path: Path, chroma_url: str, embedder, collection: str) -> None:
    store = KnowledgeStore(open_client(data_dir=tmp_path, chroma_url=chroma_url), embedder, collection)
    items = entries()
    first = store.sync(items)
    assert sorted(first.added) == sorted(e.id for e in items)
    again = store.sync(items)
    assert not again.changed and len(again.unchanged) == len(items)
    revised = items[0].model_copy(update={"title": items[0].title + " (revised)"})
    report = store.sync([revised, *items[1:]])
    assert report.updated == [revised.id] and len(report.unchanged) == len(items) - 1
    assert store.get(revised.id).title.endswith("(revised)")
    pruned = store.sync(items[2:], prune=True)
    assert sorted(pruned.removed) == sorted(e.id for e in items[:2])
    assert store.count() == len(items) - 2
    assert store.collection.count() == 2 * (len(items) - 2)  # two views per entry, no stale rows left


def test_another_process_sees_the_same_entries_and_ranks_them(tmp_path: Path, chroma_url: str, embedder,
                                                              collection: str) -> None:
    KnowledgeStore(open_client(data_dir=tmp_path / "a", chroma_url=chroma_url), embedder, collection).sync(entries())
    # A second bot process: its own client and data directory, the same server.
    other = KnowledgeStore(open_client(data_dir=tmp_path / "b", chroma_url=chroma_url), embedder, collection)
    assert other.entries() == {e.id: e for e in entries()}
    retriever = Retriever(other)
    assert retriever.search("my kids never speak up, could they record a radio show instead?").ids[0] == "podcast-voices"
    assert retriever.search("padlett for brainstorming").ids[0] == "shared-wall-brainstorm"
    off = retriever.search("recipe for lemon drizzle cake with icing")
    assert retriever.search("how can students give each other ideas on a shared padlet wall?").confidence > off.confidence


def test_model_change_reembeds_on_the_server(tmp_path: Path, chroma_url: str, embedder, collection: str) -> None:
    client = open_client(data_dir=tmp_path, chroma_url=chroma_url)
    KnowledgeStore(client, embedder, collection).sync(entries())
    other = KnowledgeStore(client, HashingEmbedder(), collection)
    assert other.model_name == embedder.name  # the collection remembers the model that built it
    report = other.sync(list(other.entries().values()))
    assert report.reembedded and other.model_name == HashingEmbedder.name
    assert other.count() == len(entries())
    names = {c.name if hasattr(c, "name") else str(c) for c in client.list_collections()}
    assert collection in names and f"{collection}-rebuild" not in names
    hits = other.query(HashingEmbedder().embed(["podcast audio recording"])[0], k=3)
    assert hits and {h.entry_id for h in hits} <= {e.id for e in entries()}


def test_server_down_is_a_clear_store_error(tmp_path: Path, own_server, embedder) -> None:  # noqa: ANN001
    store = KnowledgeStore(open_client(data_dir=tmp_path, chroma_url=own_server.url), embedder)
    store.sync(entries())
    own_server.stop()
    with pytest.raises(StoreError, match="knowledge store operation failed"):
        store.hashes()
    with pytest.raises(StoreError):
        store.query(embedder.embed(["podcast"])[0])
    with pytest.raises(StoreError, match=rf"Chroma server at {own_server.url} is not reachable"):
        open_client(data_dir=tmp_path, chroma_url=own_server.url)


def test_server_lost_mid_reembed_leaves_the_old_collection_whole(tmp_path: Path, own_server, embedder) -> None:  # noqa: ANN001
    KnowledgeStore(open_client(data_dir=tmp_path, chroma_url=own_server.url), embedder).sync(entries())
    switching = KnowledgeStore(open_client(data_dir=tmp_path, chroma_url=own_server.url),
                               StopsServerOnEmbed(HashingEmbedder(), own_server))
    with pytest.raises(StoreError):
        switching.sync(list(switching.entries().values()))
    own_server.start()  # same path and port: what was written before the stop is served again
    after = KnowledgeStore(open_client(data_dir=tmp_path, chroma_url=own_server.url), embedder)
    assert after.model_name == embedder.name  # still the old model's vectors, all of them
    assert after.entries() == {e.id: e for e in entries()}
    assert Retriever(after).search("record a radio show with my class").ids[0] == "podcast-voices"
    # Once the server is back, the switch completes, and the half-built copy is gone.
    done = KnowledgeStore(open_client(data_dir=tmp_path, chroma_url=own_server.url), HashingEmbedder())
    assert done.sync(entries()).reembedded and done.count() == len(entries())


def test_server_lost_mid_sync_is_repaired_by_the_next_sync(tmp_path: Path, own_server, embedder) -> None:  # noqa: ANN001
    items = entries()
    KnowledgeStore(open_client(data_dir=tmp_path, chroma_url=own_server.url), embedder).sync(items[:3])
    store = KnowledgeStore(open_client(data_dir=tmp_path, chroma_url=own_server.url), embedder)
    real_embed = embedder.embed

    class Interrupting:
        name, dimension = embedder.name, getattr(embedder, "dimension", None)

        def embed(self, texts: list[str]) -> np.ndarray:
            own_server.stop()
            return real_embed(texts)

    store.embedder = Interrupting()
    with pytest.raises(StoreError):
        store.sync(items)
    own_server.start()
    retry = KnowledgeStore(open_client(data_dir=tmp_path, chroma_url=own_server.url), embedder)
    report = retry.sync(items)
    assert sorted(report.added + report.updated + report.unchanged) == sorted(e.id for e in items)
    assert retry.entries() == {e.id: e for e in items}
    assert retry.collection.count() == 2 * len(items)
