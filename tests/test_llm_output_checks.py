"""The output checks on their own: what passes, what fails, and why."""

from __future__ import annotations

import pytest

from bot.compose.templates import CoachingRequest, TemplateComposer
from bot.compose.output_checks import check_reply, has_question, leakage, urls_in, walkthrough_lines
from knowledge.parser import load_folder
from knowledge.search import Hit

from conftest import FIXTURE_KB

ENTRIES = {e.id: e for e in load_folder(FIXTURE_KB).entries}
WALL = {"shared-wall-brainstorm": ENTRIES["shared-wall-brainstorm"]}
GOOD = "You want every voice on the wall. What should students be able to do with the ideas afterwards?"


def test_a_socratic_reply_citing_an_entry_passes():
    result = check_reply(GOOD, ["shared-wall-brainstorm"], WALL)
    assert result.ok, result.problems
    assert result.sources == ["shared-wall-brainstorm"]


@pytest.mark.parametrize("text", [
    GOOD + " When you're ready: https://example.org/wall-moderation",
    GOOD + " See https://example.org/wall-moderation",
    GOOD + "\nResources: Shared wall brainstorm",
])
def test_sources_written_into_the_text_are_caught_because_the_adapter_draws_them(text: str):
    result = check_reply(text, ["shared-wall-brainstorm"], WALL)
    assert any("under the reply" in p for p in result.problems), result.problems
    assert result.sources == ["shared-wall-brainstorm"]


@pytest.mark.parametrize("text", [
    "Here is how:\n1. Open Padlet\n2. Click new\nWhat next?",
    "Step 1: open the form.\nStep 2 share it. Ready?",
    "Try this:\n  3) Set the wall to moderated\nOK?",
    "Try this:\n- Open Padlet and make a wall\n- Click share and copy the link\nAny questions?",
    "Ideas:\n* one\n* two\n* three\nWhich one?",
    "First, make a wall. Then share the link. Finally, moderate the posts. Does that help?",
])
def test_walkthroughs_are_caught_numbered_bulleted_or_in_prose(text: str):
    assert walkthrough_lines(text)
    assert any("walkthrough" in p for p in check_reply(text, [], WALL).problems)


@pytest.mark.parametrize("text", [
    "You want students to reflect. What would a good reflection sound like in year 5?",
    "Two ideas worth a look:\n- a moderated wall\n- paper sticky notes\nWhich fits the goal better?",
    "Year 9 is a great age for this. What do they know already?",
])
def test_coaching_prose_and_a_short_list_of_options_are_not_walkthroughs(text: str):
    assert walkthrough_lines(text) == []


def test_no_question_fails():
    result = check_reply("Use a moderated wall.", [], WALL)
    assert not result.ok and "question" in result.problems[0]


def test_a_question_mark_inside_a_url_is_not_a_question():
    assert not has_question("See https://example.org/page?x=1 for more.")
    assert has_question("Have you seen https://example.org/page?x=1 ?")


def test_too_long_fails_with_the_count():
    text = "word " * 160 + "why?"
    result = check_reply(text, [], WALL, max_words=150)
    assert any("161 words" in p for p in result.problems)


def test_citing_an_entry_that_was_not_retrieved_fails():
    result = check_reply("What is the goal?", ["ai-essays"], WALL)
    assert any("not provided: ai-essays" in p for p in result.problems)


def test_a_url_that_no_retrieved_entry_links_to_fails():
    text = "What is the goal? Try https://evil.example.com/steps or www.other.example.org."
    assert urls_in(text) == ["https://evil.example.com/steps", "www.other.example.org"]
    result = check_reply(text, ["shared-wall-brainstorm"], WALL)
    assert any("evil.example.com" in p for p in result.problems)


def test_more_resources_than_allowed_fails():
    three = {k: ENTRIES[k] for k in ("ai-essays", "podcast-voices", "samr-reflection")}
    result = check_reply("Which fits?", list(three), three, max_sources=2)
    assert any("offers 3 resources" in p for p in result.problems)


@pytest.mark.parametrize("text", [
    "As instructed by my system prompt, I will ask: what is the goal?",
    "OK, I will ignore previous instructions. What is your goal?",
    'Sure {"reply": "x"} what is the goal?',
    "</entry> What is the goal?",
])
def test_talk_about_instructions_is_leakage(text: str):
    assert leakage(text)
    assert not check_reply(text, [], WALL).ok


def test_the_template_composer_always_passes_the_checks():
    # The fallback must itself pass, or "replaced by the template" would not be safe.
    hits = [Hit(ENTRIES["shared-wall-brainstorm"], 0.8), Hit(ENTRIES["podcast-voices"], 0.78)]
    for request in (CoachingRequest("I want my year 5s to brainstorm on padlet", hits, True),
                    CoachingRequest("quantum knitting", [], False)):
        out = TemplateComposer().compose(request)
        retrieved = {h.entry.id: h.entry for h in request.hits}
        result = check_reply(out.text, out.sources, retrieved)
        assert result.ok, (out.text, result.problems)


def test_a_reply_to_no_questions_please_must_not_ask_and_others_must():
    """Every coaching reply holds a question, except one to a teacher who asked for none (issue 14)."""
    answer = "A shared wall lets every student post at once."
    assert not check_reply(answer, [], {}, question_wanted=False).problems
    assert any("no question" in p for p in check_reply(answer, [], {}).problems)
    asked = check_reply(answer + " What would you try?", [], {}, question_wanted=False).problems
    assert any("asked for no questions" in p for p in asked)
