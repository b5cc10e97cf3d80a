"""The template composer: Socratic, short, honest when it has nothing."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from bot.compose.templates import CoachingRequest, TemplateComposer, reflect_goal
from bot.models import PastTurn
from knowledge.parser import load_folder
from knowledge.search import Hit

from conftest import FIXTURE_KB

ENTRIES = {e.id: e for e in load_folder(FIXTURE_KB).entries}
STEPS = re.compile(r"^\s*(\d+[.)]|step\s+\d+)", re.I | re.M)


def hits(*ids: str, scores=(0.8, 0.75, 0.4)) -> list[Hit]:
    return [Hit(ENTRIES[i], s, s, 0.0) for i, s in zip(ids, scores)]


def test_reply_reflects_goal_asks_curated_questions_and_offers_resources():
    request = CoachingRequest(text="I want my year 5s to brainstorm together on padlet",
                              hits=hits("shared-wall-brainstorm", "podcast-voices", "ai-essays"), confident=True)
    out = TemplateComposer().compose(request)
    assert out.text.startswith("You want your year 5s to brainstorm together on padlet.")
    assert "?" in out.text
    assert any(q in out.text for q in ENTRIES["shared-wall-brainstorm"].questions)
    assert not STEPS.search(out.text)
    assert len(out.text.split()) <= 120
    assert out.sources[0] == "shared-wall-brainstorm"
    assert len(out.sources) <= 2
    assert "https://" not in out.text and "When you're ready" not in out.text  # the adapter draws sources


def test_tool_named_first_question_is_about_learning():
    request = CoachingRequest(text="should we use padlet for this?", hits=hits("shared-wall-brainstorm"), confident=True)
    out = TemplateComposer().compose(request)
    assert "Before the tool, the learning" in out.text


def test_weak_second_hit_is_left_out():
    request = CoachingRequest(text="podcasts", hits=hits("podcast-voices", "ai-essays", scores=(0.9, 0.3)), confident=True)
    assert TemplateComposer().compose(request).sources == ["podcast-voices"]


def test_questions_not_repeated_in_a_conversation():
    first_q = ENTRIES["podcast-voices"].questions[0]
    past = [PastTurn("t1", "podcasts?", "coach", f"{first_q}", ["podcast-voices"], 0.8, datetime.now(timezone.utc))]
    request = CoachingRequest(text="and for year 3?", hits=hits("podcast-voices"), confident=True, history=past)
    out = TemplateComposer().compose(request)
    assert first_q not in out.text
    assert ENTRIES["podcast-voices"].questions[1] in out.text


def test_word_limit_is_kept():
    request = CoachingRequest(text="I want " + "really " * 30 + "engaged students",
                              hits=hits("shared-wall-brainstorm", "podcast-voices"), confident=True, max_words=40)
    out = TemplateComposer().compose(request)
    assert len(out.text.split()) <= 40
    assert "?" in out.text


def test_nothing_found_is_honest_and_asks():
    out = TemplateComposer().compose(CoachingRequest(text="quantum knitting", hits=[], confident=False))
    assert out.sources == []
    assert "don't have anything" in out.text and "?" in out.text


def test_reflect_goal_turns_first_person_around():
    assert reflect_goal("how can I get my students talking more?") == "You're working out how to get your students talking more."
    assert reflect_goal("podcasts") is None
