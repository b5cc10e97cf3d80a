"""Triage without a model: the team's own phrasing table, and the rules that guard it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.models import Route
from bot.triage.rules import Triage, TriageConfigError

from conftest import CONFIG_DIR

CASES = yaml.safe_load((Path(__file__).parent / "triage_cases.yaml").read_text())


@pytest.fixture(scope="module")
def triage() -> Triage:
    return Triage.from_file(CONFIG_DIR / "triage.yaml")


@pytest.mark.parametrize("route,text", [(r, t) for r, texts in CASES.items() for t in texts])
def test_route_table(triage, route, text):
    assert triage.decide(text).route.value == route


def test_safeguarding_is_urgent(triage):
    decision = triage.decide("a year 9 boy told me a man he met gaming keeps asking him for pictures")
    assert decision.route is Route.INTEGRATOR and decision.urgent and decision.category == "safeguarding"


def test_lesson_about_a_safeguarding_topic_is_coached_but_an_incident_in_it_is_not(triage):
    assert triage.decide("ideas for a lesson about cyberbullying for year 7?").route is Route.COACH
    told = triage.decide("in our lesson about cyberbullying one student told me she is being bullied")
    assert told.route is Route.INTEGRATOR and told.urgent


def test_frustration_needs_coaching_first(triage):
    text = "this isn't helping at all"
    assert triage.decide(text, coach_turns=0).route is not Route.INTEGRATOR
    assert triage.decide(text, coach_turns=1).route is Route.INTEGRATOR


def test_working_device_is_not_a_fault(triage):
    assert triage.decide("the projector is working fine but my class zones out during slides").route is Route.COACH


def test_bad_pattern_is_named(tmp_path):
    config = yaml.safe_load((CONFIG_DIR / "triage.yaml").read_text())
    config["safeguarding"].append("([unclosed")
    with pytest.raises(TriageConfigError, match=r"safeguarding\[\d+\]: pattern does not compile"):
        Triage(config, "triage.yaml")


def test_missing_section_is_named():
    with pytest.raises(TriageConfigError, match="missing section 'helpdesk'"):
        Triage({"safeguarding": [], "data_incident": [], "human_request": [], "frustration": [], "complex": [],
                "other": {"smalltalk_words": [], "out_of_scope": []}})


@pytest.fixture(scope="module")
def semantic(embedder, tmp_path_factory) -> Triage:
    from bot.triage.examples import ExampleIndex

    examples = ExampleIndex.from_file(CONFIG_DIR / "triage-examples.yaml", embedder.embed, model_name=embedder.name,
                                      cache_dir=tmp_path_factory.mktemp("cache"))
    return Triage.from_file(CONFIG_DIR / "triage.yaml", examples)


@pytest.mark.parametrize("text,route,category", [
    ("a pupil mentioned her stepfather makes her feel frightened at home and she sleeps at friends' houses", "integrator", "safeguarding"),
    ("could someone from your team pop by and look at my lesson plan with me", "integrator", "human_request"),
    ("thank you, I'll give that a go tomorrow", "other", "smalltalk"),
])
def test_triage_with_meaning(semantic, embedder, text, route, category):
    decision = semantic.decide(text, vector=embedder.embed([text])[0])
    assert (decision.route.value, decision.category) == (route, category)


def test_meaning_catches_a_concern_no_phrase_rule_names(semantic, embedder):
    text = "a pupil mentioned her stepfather makes her feel frightened at home and she sleeps at friends' houses"
    assert Triage.from_file(CONFIG_DIR / "triage.yaml").decide(text).route is Route.COACH
    decision = semantic.decide(text, vector=embedder.embed([text])[0])
    assert decision.route is Route.INTEGRATOR and decision.urgent


def test_meaning_keeps_lessons_about_hard_topics_as_coaching(semantic, embedder):
    text = "what's a good way to teach year 8 about sextortion and online grooming?"
    assert semantic.decide(text, vector=embedder.embed([text])[0]).route is Route.COACH


def test_example_vectors_are_cached(embedder, tmp_path):
    from bot.triage.examples import ExampleIndex

    calls = []

    def counting(texts):
        calls.append(len(texts))
        return embedder.embed(texts)

    ExampleIndex({"coaching": ["a"], "fault": ["b"]}, counting, model_name="m", cache_dir=tmp_path)
    ExampleIndex({"coaching": ["a"], "fault": ["b"]}, counting, model_name="m", cache_dir=tmp_path)
    assert calls == [2]
    with pytest.raises(ValueError, match="unknown categories"):
        ExampleIndex({"gossip": ["x"]}, counting, model_name="m")
