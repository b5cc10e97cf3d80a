"""Triage: the learned router, the concern detectors, the phrase floor and the corpus a school extends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from bot.models import Action, Route
from bot.triage.build import SHIPPED, load_triage, model_key, shipped_model
from bot.triage.categories import CONCERNS, LEARNED, ROUTE_OF, Category
from bot.triage.corpus import MIN_PER_CATEGORY, TriageConfigError, load_corpus
from bot.triage.router import ConversationContext, DecidedBy
from bot.triage.rules import PhraseRules
from knowledge.glossary import Glossary

from conftest import CONFIG_DIR

CASES = yaml.safe_load((Path(__file__).parent / "triage_cases.yaml").read_text())
EXPAND = Glossary.from_file(CONFIG_DIR / "tool-glossary.yaml").expanded


def test_route_table(triage):
    """The team's own table: a learned router may miss a few, but not many, and never a person's case."""
    cases = [(r, t) for r, texts in CASES.items() for t in texts]
    wrong = [(r, t) for r, t in cases if triage.decide(t).route.value != r]
    assert len(wrong) <= 0.1 * len(cases), wrong
    assert not [t for r, t in wrong if r == "integrator"]


def test_every_category_has_a_route_and_a_typo_is_refused():
    assert set(ROUTE_OF) == set(Category)
    assert Category.FRUSTRATION not in LEARNED and set(CONCERNS) <= set(LEARNED)
    with pytest.raises(ValueError):
        Category("safegaurding")


def test_safeguarding_is_urgent_and_says_what_decided(triage):
    decision = triage.decide("a year 9 boy told me a man he met gaming keeps asking him for pictures")
    assert decision.route is Route.INTEGRATOR and decision.urgent and decision.category is Category.SAFEGUARDING
    assert decision.decided_by in (DecidedBy.RULE, DecidedBy.DETECTOR)


def test_a_disclosure_inside_a_tech_question_escalates(triage):
    text = ("Quick one about Google Classroom - how do I return marked work to everyone at once? Also one of my "
            "year 8s wrote in her reflection that she has been hurting herself and nobody at home notices.")
    decision = triage.decide(text)
    assert decision.category is Category.SAFEGUARDING and decision.urgent
    assert "hurting herself" in decision.concerns[Category.SAFEGUARDING].sentence


def test_lesson_about_a_hard_topic_is_coached_but_an_incident_in_it_is_not(triage):
    assert triage.decide("ideas for a lesson about cyberbullying for year 7?").route is Route.COACH
    told = triage.decide("in our lesson about cyberbullying one student told me she is being bullied every night online")
    assert told.route is Route.INTEGRATOR and told.urgent


def test_fiction_and_shared_drives_are_lesson_content_not_incidents(triage):
    rules = triage.rules
    novel = rules.match("We're reading a novel where the main character self-harms; how do I run the discussion online?")
    assert novel.safeguarding and novel.lesson_only
    drive = rules.match("The cyberbullying lesson resources on the shared drive are from 2016, any ideas to refresh it?")
    assert drive.safeguarding and drive.lesson_only
    shared = rules.match("In the cyberbullying lesson a boy shared a screenshot of messages telling him to self-harm")
    assert shared.safeguarding and not shared.lesson_only


def test_the_phrase_floor_escalates_even_when_the_model_would_not(triage):
    rules = triage.rules
    hits = rules.match("she said she wants to kill herself")
    assert hits.safeguarding
    # A made-up detector that never fires: the phrase alone must still escalate.
    model = triage.model
    saved = dict(model.thresholds)
    try:
        model.thresholds.update({c: 1.01 for c in CONCERNS})
        decision = triage.decide("she said she wants to kill herself")
        assert decision.category is Category.SAFEGUARDING and decision.decided_by is DecidedBy.RULE
    finally:
        model.thresholds.update(saved)


def test_frustration_needs_coaching_first(triage):
    text = "this isn't helping at all"
    assert triage.decide(text, ConversationContext(coach_turns=0)).category is not Category.FRUSTRATION
    assert triage.decide(text, ConversationContext(coach_turns=1)).category is Category.FRUSTRATION


def test_an_open_concern_keeps_what_follows_with_a_person(triage):
    context = ConversationContext(coach_turns=0, last_route=Route.INTEGRATOR, open_category=Category.SAFEGUARDING)
    decision = triage.decide("she deleted the post straight after, do I still flag it?", context)
    assert decision.category is Category.SAFEGUARDING and decision.urgent


def test_details_after_a_helpdesk_reply_join_the_ticket(triage):
    context = ConversationContext(last_route=Route.HELPDESK)
    decision = triage.decide("B14, by the window", context)
    assert decision.route is Route.HELPDESK and decision.decided_by is DecidedBy.CONVERSATION
    assert triage.decide("B14, by the window").decided_by is not DecidedBy.CONVERSATION


def test_small_talk_and_reactions(triage):
    for text in ("thanks!", ":+1:", "👍", "ok cheers"):
        assert triage.decide(text).category is Category.SMALLTALK, text


def test_buttons_decide_through_triage(triage):
    assert triage.for_action(Action.TALK_TO_PERSON).category is Category.HUMAN_REQUEST
    assert triage.for_action(Action.TECH_PROBLEM).route is Route.HELPDESK
    with pytest.raises(ValueError):
        triage.for_action(Action.HELPED)


def test_an_unsure_router_names_the_other_route(triage):
    margin = triage.rules.alternative_margin
    try:
        triage.rules.alternative_margin = 1.0  # every decision is "close"
        decision = triage.decide("how do I get my class to use padlet better")
        assert decision.decided_by is DecidedBy.ROUTER and decision.alternative not in (None, decision.route)
        triage.rules.alternative_margin = 0.0
        assert triage.decide("how do I get my class to use padlet better").alternative is None
    finally:
        triage.rules.alternative_margin = margin


def test_the_expected_mix_shifts_the_router_and_not_the_concerns(triage):
    weights = triage.weights
    assert weights[Category.COACHING] == 1.0 and weights[Category.HUMAN_REQUEST] < weights[Category.FAULT] < 1.0
    assert not set(weights) & set(CONCERNS)
    raw = {c: 1 / len(LEARNED) for c in LEARNED}
    shifted = triage.routed_scores(raw, ConversationContext())
    assert sum(shifted.values()) == pytest.approx(1.0)
    assert max(shifted, key=shifted.__getitem__) is Category.COACHING
    after_coaching = triage.routed_scores(raw, ConversationContext(coach_turns=1, last_route=Route.COACH))
    assert after_coaching[Category.COACHING] > shifted[Category.COACHING]


def test_the_runtime_triage_carries_the_mix(tmp_path):
    """The coach's own builder (not only this file's fixture) applies the expected mix."""
    from adapters.wiring import make_triage
    from bot.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    assert make_triage(settings).weights[Category.COACHING] == 1.0


def test_the_runtime_triage_is_the_shipped_model_and_shares_the_search_vector(settings, store):
    """Built beside a retriever (as `build_runtime` does), triage reads messages as the shipped model was
    trained, so nothing is refitted at start-up; the retriever's query vector serves triage whenever both
    read the message alike, and never when the retriever reads a tool name differently."""
    from adapters.wiring import make_retriever, make_triage

    retriever = make_retriever(settings, store)
    triage = make_triage(settings, retriever)
    assert triage.model.digest == shipped_model().digest
    assert not list((settings.data_dir / "cache").glob("model-*.npz"))  # nothing fitted, nothing cached

    plain = "how can my year 5s brainstorm together online?"
    vector = triage.embed(plain)
    assert np.allclose(vector, retriever.embed_query(plain), atol=1e-5)
    assert triage.retrieval_vector(plain, vector) is vector
    assert retriever.expand(plain) in retriever._query_tokens  # one pass kept the word pieces for re-ranking

    on_flip = "book reviews on Flip"  # the retriever reads the tool's words in place of the name; triage adds them
    assert retriever.expand(on_flip) != EXPAND(on_flip)
    vector = triage.embed(on_flip)
    assert np.allclose(vector, store.embedder.embed([EXPAND(on_flip)])[0], atol=1e-5)
    assert triage.retrieval_vector(on_flip, vector) is None


@pytest.mark.parametrize("mix, error", [
    ({"coaching": 0.5, "fault": 0.5}, "missing .*account"),
    ({"coaching": 0.5, "safeguarding": 0.1}, "'safeguarding' cannot be given a share"),
    ({"coachin": 0.5}, "'coachin' is not a category"),
    ({"coaching": -1}, "'coaching' must be a share between 0 and 1"),
])
def test_a_bad_expected_mix_is_named(mix, error):
    config = yaml.safe_load((CONFIG_DIR / "triage.yaml").read_text())
    config["router"]["expected_mix"] = mix
    with pytest.raises(TriageConfigError, match=error):
        PhraseRules(config, "triage.yaml")


def test_a_sentence_needs_whole_message_support_to_escalate(triage):
    model = triage.model
    c = Category.SAFEGUARDING
    assert 0.0 < model.sentence_support[c] < model.thresholds[c]
    text = ("Planning a lesson on the water cycle with Year 5. I want them to make a short video. "
            "A boy said his uncle makes him keep secrets. Which app is easiest?")
    assert model.concern_scores(triage.embed(text), text)[c].sentence.startswith("A boy said")
    saved = dict(model.sentence_support)
    try:
        model.sentence_support[c] = 1.0  # no whole-message support: only the whole message is read
        assert model.concern_scores(triage.embed(text), text)[c].sentence == text
    finally:
        model.sentence_support.update(saved)


def test_numpy_serving_matches_scikit_learn(embedder):
    from bot.triage.training import Hyper, _fit, _probabilities, train

    examples = load_corpus(CONFIG_DIR / "triage-corpus")[::9]
    texts = [e.text for e in examples]
    labels = np.array([LEARNED.index(e.category) for e in examples])
    emb = embedder.embed(texts)
    model = train(texts, labels, [e.family for e in examples], emb, "t", folds=False)
    fitted = _fit(texts, labels, emb, Hyper())
    want = _probabilities(fitted, texts[:20], emb[:20], Hyper())
    got = np.array([[model.route_probabilities(emb[i], texts[i])[c] for c in LEARNED] for i in range(20)])
    assert np.allclose(got, want, atol=1e-4)


def test_cached_word_features_are_the_training_analyzer(triage):
    from collections import Counter

    from bot.triage.features import ngrams

    model = triage.model
    for text in ["Jamie's iPad won't connect :( :+1: 👍 the WIFI wifi wifi in room 12",
                 "Yr9   form tutor - DSL asked me… ok ok", "", "a", "Padlet padlet PADLET? x"] * 2:
        want_idx, want_val = model.tfidf(Counter(j for g in ngrams(text) if (j := model.vocabulary.get(g)) is not None))
        idx, val = model.features(text)
        assert dict(zip(idx.tolist(), val.tolist())) == pytest.approx(dict(zip(want_idx.tolist(), want_val.tolist())))


def test_the_shipped_model_is_the_one_for_the_shipped_corpus(embedder):
    examples = load_corpus(CONFIG_DIR / "triage-corpus")
    key = model_key(embedder.name, [EXPAND(e.text) for e in examples], examples)
    assert (SHIPPED / f"model-{key}.npz").exists(), "corpus changed: run `python -m bot.triage.ship`"
    model = shipped_model()
    assert model is not None and model.report["folds"]["safeguarding_recall"] >= 0.95


# -- the corpus a school extends ---------------------------------------------------------------

def _school_config(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    return config


def test_a_schools_examples_retrain_once_and_are_cached(tmp_path, embedder):
    config = _school_config(tmp_path)
    added = [{"text": f"the laminator in the staff room is jammed again ({i})", "category": "fault",
              "family": "school-1"} for i in range(MIN_PER_CATEGORY)]
    (config / "triage-corpus" / "our-school.jsonl").write_text("\n".join(json.dumps(a) for a in added) + "\n")
    embedded: list[int] = []

    def counting(texts):
        embedded.append(len(texts))
        return embedder.embed(texts)

    def load():
        return load_triage(config, tmp_path / "cache", model_name=embedder.name, embed_many=counting,
                           embed_one=lambda t: embedder.embed([EXPAND(t)])[0], prepare=EXPAND)

    first = load()
    assert embedded == [MIN_PER_CATEGORY]  # only the new texts; the shipped vectors cover the rest
    assert first.model.digest != shipped_model().digest  # type: ignore[union-attr]
    assert first.model.thresholds == shipped_model().thresholds  # type: ignore[union-attr]
    second = load()
    assert embedded == [MIN_PER_CATEGORY] and second.model.digest == first.model.digest
    assert list((tmp_path / "cache").glob("model-*.npz"))


@pytest.mark.parametrize("line,error", [
    ("{not json", r"bad\.jsonl:2: not valid JSON"),
    ('{"text": "hello", "category": "safegaurding"}', r"bad\.jsonl:2: unknown category 'safegaurding'"),
    ('{"text": "", "category": "fault"}', r"bad\.jsonl:2: 'text' must be a non-empty string"),
    ('{"text": "it got worse", "category": "frustration"}', r"bad\.jsonl:2: 'frustration' depends on the conversation"),
    ('["a list"]', r"bad\.jsonl:2: must be a JSON object"),
])
def test_a_malformed_corpus_line_is_named(tmp_path, line, error):
    folder = tmp_path / "triage-corpus"
    folder.mkdir()
    (folder / "bad.jsonl").write_text('{"text": "fine", "category": "fault"}\n' + line + "\n")
    with pytest.raises(TriageConfigError, match=error):
        load_corpus(folder)


def test_a_missing_corpus_or_too_few_examples_stops_start_up(tmp_path):
    with pytest.raises(TriageConfigError, match="triage corpus folder is missing"):
        load_corpus(tmp_path / "nowhere")
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "few.jsonl").write_text(json.dumps({"text": "hi", "category": "smalltalk"}) + "\n")
    with pytest.raises(TriageConfigError, match="too few examples for safeguarding"):
        load_corpus(folder)


def test_a_text_labelled_two_ways_is_refused(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"text": "Wifi down", "category": "fault"}) + "\n"
                                    + json.dumps({"text": "wifi down", "category": "coaching"}) + "\n")
    with pytest.raises(TriageConfigError, match=r"a\.jsonl:2: the same text is labelled 'fault' at a\.jsonl:1"):
        load_corpus(folder)


def test_bad_pattern_and_missing_section_are_named():
    config = yaml.safe_load((CONFIG_DIR / "triage.yaml").read_text())
    config["safeguarding"].append("([unclosed")
    with pytest.raises(TriageConfigError, match=r"safeguarding\[\d+\]: pattern does not compile"):
        PhraseRules(config, "triage.yaml")
    del config["smalltalk"]
    config["safeguarding"].pop()
    with pytest.raises(TriageConfigError, match="missing section 'smalltalk'"):
        PhraseRules(config, "triage.yaml")


def test_start_up_fails_clearly_on_a_malformed_corpus_line(tmp_path):
    import subprocess
    import sys

    # A school's folder holding one broken corpus file (everything else falls back to the package).
    config = tmp_path / "config"
    (config / "triage-corpus").mkdir(parents=True)
    (config / "triage-corpus" / "our-school.jsonl").write_text('{"text": "the laminator is jammed", "category": "fault"}\n'
                                                             '{"text": "broken\n')
    result = subprocess.run([sys.executable, "-m", "adapters.cli", "ask", "hello"], capture_output=True, text=True,
                            env={"COACH_CONFIG_DIR": str(config), "COACH_DATA_DIR": str(tmp_path / "data"),
                                 "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 2
    assert f"{config / 'triage-corpus' / 'our-school.jsonl'}:2: not valid JSON" in " ".join(result.stderr.split())


def test_explain_shows_route_scores_and_the_deciding_part(tmp_path):
    from click.testing import CliRunner

    from adapters.cli import main

    result = CliRunner().invoke(main, ["triage", "explain", "--json", "the projector in room 4 shows no signal"],
                                env={"COACH_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["route"] == "helpdesk" and data["decided_by"] == "router"
    assert set(data["scores"]) == {c.value for c in LEARNED}
    assert data["detectors"]["safeguarding"]["fired"] is False
