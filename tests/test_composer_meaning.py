"""The template composer choosing by meaning (issue 14): the idea closest to the ask, across the top two
entries, the question from the idea's own entry, and a second source only when it is a near tie."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.wiring import make_template_composer
from bot.compose.fit import SentenceFit
from bot.compose.templates import CoachingRequest, TemplateComposer
from knowledge.parser import load_folder
from knowledge.search import Hit

from conftest import FIXTURE_KB

ENTRIES = {e.id: e for e in load_folder(FIXTURE_KB).entries}


def rewritten(entry_id: str, body: str, score: float = 0.8) -> Hit:
    return Hit(ENTRIES[entry_id].model_copy(update={"body": body}), score, score, 0.0)


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dimension = inner, inner.name, inner.dimension
        self.texts: list[str] = []

    def embed(self, texts) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture
def fit(embedder) -> SentenceFit:
    return SentenceFit(embedder)


def test_a_sentence_sharing_only_a_word_with_the_ask_loses_to_the_one_that_means_it(fit):
    # "tables" in the ask is arithmetic; the sentence about tables in documents only shares the word.
    body = ("Tables in a document need a header row so screen readers announce each column to the student.\n\n"
            "Pupils race to answer multiplication facts on mini whiteboards, and the fastest pair sets the next sum.")
    request = CoachingRequest(text="any ideas for a quick warm-up game to practise times tables?",
                              hits=[rewritten("exit-ticket-checks", body)], confident=True)
    assert "header row" in TemplateComposer().compose(request).text  # by shared words alone
    first = TemplateComposer(fit).compose(request).text.splitlines()[0]
    assert "multiplication facts" in first, first


def test_the_idea_may_come_from_the_second_entry_and_its_question_comes_with_it(fit):
    first = rewritten("podcast-voices", "Recording for a real audience makes students care about clarity, so plan "
                      "every episode with a storyboard first.", 0.8)
    second = rewritten("exit-ticket-checks", "Two quick questions at the end of the lesson show who needs help "
                       "tomorrow, so you can group students before they arrive.", 0.78)
    request = CoachingRequest(text="how can I find out by the end of class which students still need help?",
                              hits=[first, second], confident=True)
    out = TemplateComposer(fit).compose(request)
    lines = out.text.splitlines()
    assert "Two quick questions at the end of the lesson" in lines[0]
    assert lines[-1] in second.entry.questions and lines[-1].endswith("?")
    assert out.sources == ["podcast-voices", "exit-ticket-checks"]  # retrieval's order; both near-tied


@pytest.mark.parametrize(("scores", "shown"), [((0.8, 0.78), 2), ((0.9, 0.75), 1), ((0.9, 0.3), 1)])
def test_a_second_source_is_shown_only_when_it_is_a_near_tie(scores, shown):
    hits = [Hit(ENTRIES[i], s, s, 0.0) for i, s in zip(("podcast-voices", "shared-wall-brainstorm"), scores)]
    request = CoachingRequest(text="I want my class to share their thinking out loud", hits=hits, confident=True)
    out = TemplateComposer().compose(request)
    assert len(out.sources) == shown
    if shown == 1:  # nothing from the dropped entry appears in the reply either
        assert not any(q in out.text for q in ENTRIES["shared-wall-brainstorm"].questions)


def test_an_entrys_sentence_vectors_are_computed_once_then_a_reply_embeds_only_the_ask(embedder):
    counting = CountingEmbedder(embedder)
    fit = SentenceFit(counting)
    entries = [ENTRIES["podcast-voices"], ENTRIES["shared-wall-brainstorm"]]
    first = fit.measure("how long should an episode be?", "how long should an episode be?", entries)
    assert len(counting.texts) > 2
    counting.texts.clear()
    again = fit.measure("what do they record first?", "Year 6 podcast. what do they record first?", entries)
    assert counting.texts == ["what do they record first?", "Year 6 podcast. what do they record first?"]
    assert set(first.by_text) == set(again.by_text)
    assert all(-1.0 <= v <= 1.0 for v in again.by_text.values())
    # An edited note is measured afresh.
    counting.texts.clear()
    edited = entries[0].model_copy(update={"body": "Keep the first episodes to two minutes at most."})
    fit.measure("how long?", "how long?", [edited])
    assert "Keep the first episodes to two minutes at most." in counting.texts


def test_the_composer_is_given_sentence_vectors_only_with_local_embeddings(settings, store):
    assert make_template_composer(settings, store).fit is not None
    remote = settings.model_copy(update={"embeddings": "openai"})
    assert make_template_composer(remote, store).fit is None


def test_a_failing_embedder_leaves_the_reply_to_shared_words():
    class Broken:
        name, dimension = "broken", 3

        def embed(self, texts) -> np.ndarray:
            raise RuntimeError("model files missing")

    request = CoachingRequest(text="any ideas for getting quiet students to share?",
                              hits=[Hit(ENTRIES["shared-wall-brainstorm"], 0.8, 0.8, 0.0)], confident=True)
    assert TemplateComposer(SentenceFit(Broken())).compose(request).text == TemplateComposer().compose(request).text


def test_the_message_vector_triage_made_is_used_rather_than_embedded_again(embedder):
    counting = CountingEmbedder(embedder)
    fit = SentenceFit(counting)
    entries = [ENTRIES["podcast-voices"]]
    message = "Year 6 are starting a podcast. How long should the first episodes be?"
    fit.measure("warm", "warm", entries)
    counting.texts.clear()
    with_vector = fit.measure("How long should the first episodes be?", message, entries,
                              message_vector=embedder.embed([message])[0])
    assert counting.texts == ["How long should the first episodes be?"]
    counting.texts.clear()
    without = fit.measure("How long should the first episodes be?", message, entries)
    assert len(counting.texts) == 2
    assert with_vector.by_text == pytest.approx(without.by_text, abs=1e-5)
