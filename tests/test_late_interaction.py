"""Late-interaction re-ranking: token vectors from the real model, kept on disk, used by retrieval."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.late_interaction import TokenCache, maxsim, note_text
from knowledge.parser import load_folder
from knowledge.search import Retriever
from knowledge.store import KnowledgeStore, open_client

from conftest import FIXTURE_KB, HashingEmbedder


class CountingEmbedder:
    """The real model, counting how many texts it was asked for token vectors of."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.token_texts = 0

    def embed(self, texts):
        return self.inner.embed(texts)

    def embed_with_tokens(self, texts):
        self.token_texts += len(texts)
        return self.inner.embed_with_tokens(texts)


def test_token_vectors_come_from_the_same_pass_as_the_sentence_vector(embedder):
    texts = ["my kids zone out during slides", "padlett for brainstorming", "word " * 600]
    vectors, tokens = embedder.embed_with_tokens(texts)
    assert np.allclose(vectors, embedder.embed(texts), atol=1e-6)
    model = embedder._get_model()
    for text, matrix in zip(texts, tokens):
        assert matrix.shape == (len(model.tokenize([text])[0]) - 2, embedder.dimension)  # no [CLS]/[SEP]
        assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
    assert len(tokens[2]) == embedder.max_seq_length - 2  # long texts are cut like sentence vectors


def test_maxsim_prefers_the_text_that_shares_meaning(embedder):
    _, (question, near, far) = embedder.embed_with_tokens([
        "students record a radio show", "pupils produce a podcast episode with their voices",
        "format cells in a spreadsheet"])
    assert maxsim(question, question) == pytest.approx(1.0, abs=1e-4)
    assert maxsim(question, near) > maxsim(question, far)
    assert maxsim(question, np.zeros((0, 384), np.float32)) == 0.0


def test_import_writes_token_files_that_a_new_process_reuses(settings, embedder, tmp_path):
    folder = tmp_path / "tokens"
    counting = CountingEmbedder(embedder)
    store = KnowledgeStore(open_client(data_dir=settings.data_dir, chroma_url=None), counting, token_dir=folder)
    entries = load_folder(FIXTURE_KB).entries
    store.sync(entries)
    files = sorted((folder / embedder.name).glob("*.npy"))
    assert len(files) == len(entries)
    assert counting.token_texts == 2 * len(entries)  # card and note, embedded once each at import

    fresh = CountingEmbedder(embedder)
    cache = TokenCache(fresh, folder)
    loaded = cache.get_many(entries)
    assert fresh.token_texts == 0  # read from disk, not recomputed
    _, direct = embedder.embed_with_tokens([note_text(entries[0])])
    assert np.allclose(loaded[0].astype(np.float32), direct[0], atol=2e-3)


def test_changed_entry_gets_new_tokens_and_prune_drops_old_files(settings, embedder, tmp_path):
    folder = tmp_path / "tokens"
    store = KnowledgeStore(open_client(data_dir=settings.data_dir, chroma_url=None), embedder, token_dir=folder)
    entries = load_folder(FIXTURE_KB).entries
    store.sync(entries)
    # Validated like a parsed file, so its hash is the one the store computes.
    changed = type(entries[0]).model_validate({**entries[0].model_dump(), "body": entries[0].body + "\n\nMore on audio."})
    store.sync([changed, *entries[1:]])
    names = {p.name for p in (folder / embedder.name).glob("*.npy")}
    assert f"{changed.content_hash()}.npy" in names and f"{entries[0].content_hash()}.npy" in names
    store.sync([changed, *entries[2:]], prune=True)
    names = {p.name for p in (folder / embedder.name).glob("*.npy")}
    assert names == {f"{e.content_hash()}.npy" for e in [changed, *entries[2:]]}


def test_unreadable_token_file_is_recomputed(settings, embedder, tmp_path, caplog):
    folder = tmp_path / "tokens"
    store = KnowledgeStore(open_client(data_dir=settings.data_dir, chroma_url=None), embedder, token_dir=folder)
    entries = load_folder(FIXTURE_KB).entries
    store.sync(entries)
    broken = folder / embedder.name / f"{entries[0].content_hash()}.npy"
    broken.write_bytes(b"not a numpy file")
    counting = CountingEmbedder(embedder)
    matrix = TokenCache(counting, folder).get_many([entries[0]])[0]
    assert counting.token_texts == 1 and matrix.shape[1] == embedder.dimension
    assert "unreadable" in caplog.text
    assert np.load(broken).shape == matrix.shape  # written back whole


def test_entries_from_another_machine_are_scored_on_demand(settings, embedder, tmp_path):
    """A store filled elsewhere (a shared Chroma server) has no token files here yet."""
    client = open_client(data_dir=settings.data_dir, chroma_url=None)
    KnowledgeStore(client, embedder).sync(load_folder(FIXTURE_KB).entries)
    counting = CountingEmbedder(embedder)
    here = KnowledgeStore(client, counting, token_dir=tmp_path / "here")
    hit = Retriever(here).search("my class could record a radio show").hits[0]
    assert hit.entry.id == "podcast-voices" and hit.late > 0.3
    assert counting.token_texts > 0
    assert list((tmp_path / "here" / embedder.name).glob("*.npy"))


def test_retriever_reranks_with_late_interaction_and_can_be_turned_off(store):
    on = Retriever(store).search("my kids never speak up, could they record a radio show instead?")
    off = Retriever(store, late_interaction=False).search("my kids never speak up, could they record a radio show instead?")
    assert on.ids[0] == off.ids[0] == "podcast-voices"
    assert all(h.late > 0 for h in on.hits)
    assert all(h.late == 0 for h in off.hits)
    # The re-ranked order follows the re-ranked score.
    assert [h.score for h in on.hits] == sorted((h.score for h in on.hits), reverse=True)


def test_follow_up_tokens_include_the_turn_before(store):
    retriever = Retriever(store)
    alone = retriever.query_tokens("what about the younger ones?")
    with_context = retriever.query_tokens("what about the younger ones?", "students record a radio show")
    assert len(with_context) > len(alone)
    hit = retriever.search("what about the younger ones?", context="students record a radio show").hits[0]
    assert hit.entry.id == "podcast-voices"


def test_model_without_token_vectors_keeps_the_fused_ranking(settings, tmp_path):
    client = open_client(data_dir=tmp_path, chroma_url=None)
    store = KnowledgeStore(client, HashingEmbedder(), token_dir=tmp_path / "tokens")
    store.sync(load_folder(FIXTURE_KB).entries)
    assert store.tokens is None
    retriever = Retriever(store)
    assert not retriever.late_interaction
    result = retriever.search("podcast audio recording")
    assert result.hits and all(h.late == 0 for h in result.hits)
    assert not (tmp_path / "tokens").exists()


def test_very_long_question_is_scored(store):
    result = Retriever(store).search("podcast radio show voices " * 5000)
    assert result.ids[0] == "podcast-voices"
