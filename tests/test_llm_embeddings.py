"""OpenAI embeddings as the knowledge store's option, against the loopback /v1/embeddings."""

from __future__ import annotations

import numpy as np

from adapters.wiring import make_embedder
from bot.settings import Settings
from knowledge.openai_embeddings import OpenAIEmbedder
from knowledge.parser import load_folder
from knowledge.search import Retriever
from knowledge.store import KnowledgeStore, open_client

from conftest import CONFIG_DIR, FIXTURE_KB
from openai_server import fake_vector, openai_server  # noqa: F401  (fixture)

ENTRIES = load_folder(FIXTURE_KB).entries


def remote(server) -> OpenAIEmbedder:
    return OpenAIEmbedder(model="text-embedding-3-small", api_key="test-key", base_url=server.url, timeout=5.0)


def test_openai_embedder_returns_the_servers_vectors_normalised(openai_server):
    vectors = remote(openai_server).embed(["padlet brainstorm", "exit tickets", "padlet brainstorm"])
    assert vectors.shape == (3, openai_server.embedding_dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    assert np.allclose(vectors[1], fake_vector("exit tickets", openai_server.embedding_dimension), atol=1e-6)
    [sent] = openai_server.embedding_requests
    assert sent.body["model"] == "text-embedding-3-small"
    assert sent.body["input"] == ["padlet brainstorm", "exit tickets", "padlet brainstorm"]
    assert sent.headers["authorization"] == "Bearer test-key"


def test_settings_choose_openai_embeddings_with_base_url(tmp_path, openai_server):
    settings = Settings(data_dir=tmp_path, config_dir=CONFIG_DIR, embeddings="openai",
                        openai={"api_key": "test-key", "base_url": openai_server.url})
    embedder = make_embedder(settings)
    assert embedder.name == "openai:text-embedding-3-small"
    embedder.embed(["hello"])
    assert len(openai_server.embedding_requests) == 1


def test_store_built_with_openai_embeddings_is_reembedded_when_switching_to_local(tmp_path, openai_server, embedder):
    client = open_client(data_dir=tmp_path, chroma_url=None)
    store = KnowledgeStore(client, remote(openai_server))
    report = store.sync(ENTRIES)
    assert sorted(report.added) == sorted(e.id for e in ENTRIES)
    assert store.model_name == "openai:text-embedding-3-small"
    embedded = [text for r in openai_server.embedding_requests for text in r.body["input"]]
    assert len(embedded) == 2 * len(ENTRIES)  # a card and a note per entry
    assert openai_server.embedding_requests[0].body["encoding_format"] == "base64"
    hit = Retriever(store, mode="dense").search("shared wall brainstorm moderation").hits[0]
    assert hit.entry.id == "shared-wall-brainstorm"

    # Nothing changed: nothing is embedded again.
    requests = len(openai_server.embedding_requests)
    assert not store.sync(ENTRIES).changed and len(openai_server.embedding_requests) == requests

    # The school switches to the local model: the collection records the old model, so sync re-embeds it all.
    local = KnowledgeStore(client, embedder)
    assert local.model_name == "openai:text-embedding-3-small"
    report = local.sync(ENTRIES)
    assert report.reembedded and local.model_name == "all-MiniLM-L6-v2"
    assert len(openai_server.embedding_requests) == requests  # the remote model is no longer asked
    stored = local.collection.get(limit=1, include=["embeddings"])["embeddings"]
    assert len(stored[0]) == embedder.dimension
    assert local.count() == len(ENTRIES)
    hit = Retriever(local, mode="dense").search("students brainstorm together on a shared wall").hits[0]
    assert hit.entry.id == "shared-wall-brainstorm"
