"""Model-assisted triage: only the ambiguous middle, never safeguarding, the router as the fallback."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.compose.llm import ChatModel
from bot.triage.model_assisted import ModelAssistedTriage
from bot.models import Route
from bot.settings import OpenAISettings
from bot.triage.categories import Category
from bot.triage.router import DecidedBy, Triage

from conftest import CONFIG_DIR
from openai_server import OpenAIServer, chat, error, openai_server  # noqa: F401  (fixture)

# The router can only guess at this one (coaching or out of scope, nowhere near a concern).
AMBIGUOUS = "any thoughts on the usual one for Friday? asking for my colleague Jamie Lee"


@pytest.fixture
def RULES(triage: Triage) -> Triage:  # noqa: N802  (reads as the constant it replaced)
    return triage


@pytest.fixture
def wrapped(triage: Triage, openai_server: OpenAIServer):
    def make(confidence: float = 0.1, **openai: object) -> ModelAssistedTriage:
        settings = OpenAISettings(api_key=SecretStr("test-key"), base_url=openai_server.url, timeout_seconds=1.0,
                                  max_retries=0, **openai)
        return ModelAssistedTriage(triage, ChatModel(settings), confidence=lambda text, vector: confidence,
                                   min_confidence=0.3)
    return make


def test_an_ambiguous_low_confidence_message_is_routed_by_the_model(openai_server, RULES, wrapped):
    openai_server.script(chat({"route": "helpdesk", "reason": "a device fault"}))
    guess = RULES.decide(AMBIGUOUS)
    assert guess.decided_by is DecidedBy.ROUTER and guess.category in (Category.COACHING, Category.OUT_OF_SCOPE)
    decision = wrapped().decide(AMBIGUOUS)
    assert decision.route is Route.HELPDESK and decision.category is Category.FAULT and not decision.urgent
    assert decision.decided_by is DecidedBy.MODEL
    assert decision.reason == "model-assisted: a device fault"
    [sent] = openai_server.chat_requests
    assert "<teacher_message>" in sent.message_text()


@pytest.mark.parametrize("text", [
    "a student told me an adult online keeps asking her for photos",  # the rules: safeguarding
    "ideas for a lesson about cyberbullying for year 8",  # the rules: coaching, lesson-framed; still never sent
    "I emailed the class list with grades to the wrong parents",  # data incident
])
def test_safeguarding_and_data_incidents_never_reach_the_model(openai_server, text, RULES, wrapped):
    openai_server.default = chat({"route": "other", "reason": "not for the coach"})
    expected = RULES.decide(text)
    assert wrapped(confidence=0.0).decide(text) == expected
    assert openai_server.requests == []


@pytest.mark.parametrize("text", [
    "the projector in room 12 shows no signal",  # the rules are sure: helpdesk
    "can I speak to a human integrator please",  # the rules are sure: a person
    "thanks so much!",  # small talk
])
def test_what_the_router_is_sure_of_is_not_asked(openai_server, text, RULES, wrapped):
    openai_server.default = chat({"route": "coach", "reason": "x"})
    assert wrapped(confidence=0.0).decide(text) == RULES.decide(text)
    assert openai_server.requests == []


def test_a_confident_retrieval_means_no_question_to_the_model(openai_server, RULES, wrapped):
    assert wrapped(confidence=0.9).decide(AMBIGUOUS) == RULES.decide(AMBIGUOUS)
    assert openai_server.requests == []


@pytest.mark.parametrize("answer", [
    error(500),
    chat("helpdesk, probably"),
    chat({"route": "safeguarding", "reason": "the model tries to open a safeguarding case"}),
])
def test_a_failing_or_overreaching_model_leaves_the_routers_decision(openai_server, answer, RULES, wrapped):
    openai_server.default = answer
    assert wrapped().decide(AMBIGUOUS) == RULES.decide(AMBIGUOUS)
    assert len(openai_server.chat_requests) == 1


def test_model_triage_is_wired_only_when_turned_on(settings, store, openai_server, RULES):
    from adapters.wiring import build_runtime

    openai = OpenAISettings(api_key=SecretStr("test-key"), base_url=openai_server.url, llm_triage=True)
    runtime = build_runtime(settings.model_copy(update={"composer": "llm", "openai": openai}), auto_starter=False)
    assert isinstance(runtime.coach.triage, ModelAssistedTriage)
    assert OpenAISettings().llm_triage is False

    from bot.models import InboundMessage

    openai_server.default = chat({"route": "helpdesk", "reason": "a device fault"})
    urgent = runtime.coach.handle(InboundMessage(platform="console", conversation_id="c1", user_id="u",
                                                 text="a student told me an adult online keeps asking her for photos"))
    assert urgent.route is Route.INTEGRATOR and urgent.handoff is not None and urgent.handoff.urgent
    assert openai_server.requests == []  # safeguarding: the rules alone, at once
    # Little in the knowledge base matches this (retrieval confidence ~0.03), so the model is asked.
    vague = AMBIGUOUS
    assert RULES.decide(vague).decided_by is DecidedBy.ROUTER
    fault = runtime.coach.handle(InboundMessage(platform="console", conversation_id="c2", user_id="u", text=vague))
    assert fault.route is Route.HELPDESK and fault.handoff is not None and fault.handoff.target == "helpdesk"
    assert len(openai_server.chat_requests) == 1 and openai_server.chat_requests[0].body["max_tokens"] == 80


def test_a_message_near_a_concern_stays_on_this_machine(openai_server, RULES, wrapped):
    text = "a girl in my class looks tired and sad every monday"
    decision = RULES.decide(text)
    near = max(decision.concerns[c].score / decision.concerns[c].threshold for c in decision.concerns)
    assert near >= 0.5  # at least half way to a detector's threshold
    openai_server.default = chat({"route": "coach", "reason": "x"})
    assert wrapped(confidence=0.0).decide(text) == decision
    assert openai_server.requests == []
