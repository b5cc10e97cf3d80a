"""The ask inside a narrative message, and retrieval that leans toward it."""

from __future__ import annotations

import pytest

from knowledge.query import ask_text, sentences
from knowledge.search import Retriever

STORY = ("My year 6s recorded a podcast episode about our town last term and they loved it. They interviewed "
         "their grandparents and edited the audio all by themselves. This term we're back to normal lessons "
         "and the energy has gone. How do I check quickly at the end of a lesson who actually understood?")


def test_the_ask_is_the_question_bearing_sentence_of_a_story():
    assert sentences(STORY)[-1].startswith("How do I check quickly")
    assert ask_text(STORY) == "How do I check quickly at the end of a lesson who actually understood?"


@pytest.mark.parametrize("text", [
    "how can my year 5s brainstorm together on padlet?",  # short: one thought, nothing to pick out
    "Any ideas for exit tickets? How do I sort the answers? Which tool is quickest to set up for year 9?",  # all ask
    "We recorded a podcast last term. The kids loved it and want to do another one about the town market.",  # none
])
def test_no_ask_is_picked_out_of_short_all_asking_or_askless_messages(text):
    assert ask_text(text) is None


def test_leaning_toward_the_ask_finds_the_need_inside_the_story(store):
    whole = Retriever(store, ask_weight=0.0).search(STORY)
    leaning = Retriever(store, ask_weight=1.0).search(STORY)
    assert leaning.ids[0] == "exit-ticket-checks"
    rank = {eid: i for i, eid in enumerate(whole.ids)}
    lean_rank = {eid: i for i, eid in enumerate(leaning.ids)}
    assert lean_rank["exit-ticket-checks"] <= rank.get("exit-ticket-checks", 99)
    # A short question is searched exactly as before.
    short = "how can my year 5s brainstorm together on padlet?"
    assert Retriever(store, ask_weight=1.0).search(short).ids == Retriever(store, ask_weight=0.0).search(short).ids


def test_ask_weight_is_checked(store):
    with pytest.raises(ValueError, match="ask_weight must be between 0 and 4. Currently, the ask_weight is -1"):
        Retriever(store, ask_weight=-1)
