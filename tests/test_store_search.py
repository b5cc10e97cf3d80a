"""The chromadb store and hybrid retrieval, on disk in a temporary data directory."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from knowledge.entry import KnowledgeEntry
from knowledge.glossary import Glossary
from knowledge.parser import load_folder
from knowledge.search import TOOL_BOOST, Filters, Retriever
from knowledge.store import KnowledgeStore, StoreError, open_client

from conftest import CONFIG_DIR, FIXTURE_KB, HashingEmbedder


def test_sync_is_incremental_and_idempotent(settings, embedder, tmp_path):
    client = open_client(data_dir=settings.data_dir, chroma_url=None)
    store = KnowledgeStore(client, embedder)
    entries = load_folder(FIXTURE_KB).entries
    first = store.sync(entries)
    assert sorted(first.added) == sorted(e.id for e in entries)
    again = store.sync(entries)
    assert not again.changed and len(again.unchanged) == len(entries)
    changed = entries[0].model_copy(update={"title": entries[0].title + " (revised)"})
    report = store.sync([changed, *entries[1:]])
    assert report.updated == [changed.id] and len(report.unchanged) == len(entries) - 1
    assert store.get(changed.id).title.endswith("(revised)")
    pruned = store.sync(entries[2:], prune=True)
    assert sorted(pruned.removed) == sorted(e.id for e in entries[:2])
    assert store.count() == len(entries) - 2


def test_store_persists_and_gives_entries_back_exactly(settings, store):
    reopened = KnowledgeStore(open_client(data_dir=settings.data_dir, chroma_url=None), store.embedder)
    originals = {e.id: e for e in load_folder(FIXTURE_KB).entries}
    assert reopened.entries() == originals


def test_model_change_reembeds_instead_of_mixing(settings, store):
    client = open_client(data_dir=settings.data_dir, chroma_url=None)
    other = KnowledgeStore(client, HashingEmbedder())
    assert other.model_name == store.embedder.name  # the collection remembers who built it
    report = other.sync(list(other.entries().values()))
    assert report.reembedded
    assert other.model_name == "hashing-test-64"
    assert other.count() == 6
    hits = other.query(HashingEmbedder().embed(["podcast audio recording"])[0], k=3)
    assert hits and len(hits[0].entry_id) > 0


def test_paraphrase_typo_and_acronym(store):
    retriever = Retriever(store)
    assert retriever.search("my kids never speak up, could they record a radio show instead?").ids[0] == "podcast-voices"
    assert retriever.search("padlett for brainstorming").ids[0] == "shared-wall-brainstorm"
    assert retriever.search("SAMR").ids[0] == "samr-reflection"


def test_follow_up_uses_context(store):
    retriever = Retriever(store)
    alone = retriever.search("and how would that work for year 3?")
    with_context = retriever.search("and how would that work for year 3?",
                                    context="I want my students to record a podcast about their town")
    assert with_context.ids[0] == "podcast-voices"
    assert with_context.confidence > alone.confidence


def test_filters(store):
    retriever = Retriever(store)
    assert "early-years-coding" not in retriever.search("coding", filters=Filters(grade="9-12")).ids
    assert retriever.search("coding", filters=Filters(grade="K-2")).ids[0] == "early-years-coding"
    assert set(retriever.search("students", filters=Filters(kind="policy"), k=10).ids) == {"ai-essays"}
    with pytest.raises(ValueError, match="grade band 'year 3'"):
        retriever.search("x", filters=Filters(grade="year 3"))


def test_confidence_separates_on_and_off_topic(store):
    retriever = Retriever(store)
    on = retriever.search("how can students give each other ideas on a shared padlet wall?")
    off = retriever.search("recipe for lemon drizzle cake with icing")
    assert on.confidence >= 0.3 > off.confidence


def test_lexical_and_dense_modes_agree_on_an_exact_title(store):
    for mode in ("dense", "lexical", "hybrid"):
        assert Retriever(store, mode=mode).search("Unplugged coding for young children").ids[0] == "early-years-coding"


def test_chroma_url_must_be_http(settings):
    with pytest.raises(StoreError, match="COACH_CHROMA_URL"):
        open_client(data_dir=settings.data_dir, chroma_url="ftp://nowhere")


def test_unreachable_chroma_server_is_a_clear_error(settings):
    from conftest import free_port

    with pytest.raises(StoreError, match=r"Chroma server at http://127.0.0.1:\d+ is not reachable"):
        open_client(data_dir=settings.data_dir, chroma_url=f"http://127.0.0.1:{free_port()}")


def test_drafts_are_never_offered(store):
    entry = store.get("podcast-voices")
    store.upsert([entry.model_copy(update={"extra": {"status": "draft"}})])
    assert "podcast-voices" not in Retriever(store).search("student podcasts for speaking and listening").ids


def test_a_shared_tool_name_alone_does_not_pull_in_an_entry_the_need_disagrees_with(store):
    """Naming Google Forms in passing must not hand the exit-ticket entry a podcast question (issue 14); "padlet?"
    alone still finds the padlet entry."""
    glossary = Glossary.from_file(CONFIG_DIR / "tool-glossary.yaml")
    for text in ("my year 4s will record radio show interviews with grandparents, the sign-up is in Google Forms",
                 "my year 4s will record radio show interviews with grandparents, the sign-up is in Google Forms. "
                 "Any ideas?"):
        boosted = Retriever(store, glossary=glossary).search(text)  # the shipped TOOL_BOOST
        assert boosted.ids[0] == "podcast-voices", [(h.entry.id, round(h.score, 3)) for h in boosted.hits]
    # Where the need does agree, the tool still counts in full.
    asked = "quick exit ticket quiz in Google Forms at the end of the lesson"
    gain = {h.entry.id: h.score for h in Retriever(store, glossary=glossary).search(asked).hits}
    base = {h.entry.id: h.score for h in Retriever(store, glossary=glossary, tool_boost=0.0).search(asked).hits}
    assert gain["exit-ticket-checks"] - base["exit-ticket-checks"] == pytest.approx(TOOL_BOOST, abs=1e-6)
    alone = {h.entry.id: h.score for h in Retriever(store, glossary=glossary).search("padlet?").hits}
    bare = {h.entry.id: h.score for h in Retriever(store, glossary=glossary, tool_boost=0.0).search("padlet?").hits}
    assert alone["shared-wall-brainstorm"] - bare["shared-wall-brainstorm"] == pytest.approx(TOOL_BOOST, abs=1e-6)
