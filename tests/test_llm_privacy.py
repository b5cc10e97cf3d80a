"""Nothing private leaves the machine in LLM mode: checked on what the loopback server received."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from bot.compose.templates import CoachingRequest
from bot.compose.llm import LLMComposer
from bot.privacy.masker import Masker
from bot.settings import Settings
from bot.models import PastTurn
from knowledge.parser import load_folder
from knowledge.search import Hit

from conftest import CONFIG_DIR, FIXTURE_KB
from openai_server import chat, openai_server  # noqa: F401  (fixture)

ENTRIES = {e.id: e for e in load_folder(FIXTURE_KB).entries}
EMAIL, PHONE, STUDENT_NO = "jamie.lee.parent@example.org", "07700 900123", "20231234"
TEXT = (f"My student Jamie Lee freezes in podcast recordings; his mum ({EMAIL}, {PHONE}) asked me to help. "
        f"Student number {STUDENT_NO}. How can I get Jamie to speak up?")
PRIVATE = ("Jamie", "Lee", EMAIL, PHONE, "900123", STUDENT_NO, "Priya", "priya@example.org")


def settings_for(tmp_path: Path, url: str, mask: bool = True) -> Settings:
    return Settings(data_dir=tmp_path / "data", config_dir=CONFIG_DIR, composer="llm",
                    openai={"api_key": "test-key", "base_url": url, "mask_private_data": mask, "max_retries": 0})


def history() -> list[PastTurn]:
    # An earlier turn that named another student; the coach's reply named her too.
    return [PastTurn("t1", "Priya in my class is shy too, her mum is priya@example.org", "coach",
                     "Priya might like a role behind the microphone. What would success look like for her?",
                     ["podcast-voices"], 0.7, datetime.now(timezone.utc))]


def request() -> CoachingRequest:
    return CoachingRequest(text=TEXT, hits=[Hit(ENTRIES["podcast-voices"], 0.8)], confident=True,
                           history=history(), memory_key="slack:C1:1.2")


def test_names_emails_phones_and_ids_never_reach_the_model_and_come_back_in_the_reply(tmp_path, openai_server):
    # The model answers with the placeholder it was given: the teacher must read the name.
    def answer(recorded):
        sent = recorded.messages[1]["content"]
        name = sent.split("<teacher_message>")[1].split("freezes")[0].replace("My student", "").strip()
        return chat({"reply": f"You want {name} to find a voice. What part of the podcast could {name} own first?",
                     "sources": ["podcast-voices"]})

    openai_server.default = answer
    out = LLMComposer(settings_for(tmp_path, openai_server.url)).compose(request())

    sent = openai_server.sent_text()
    leaked = [p for p in PRIVATE if p in sent]
    assert leaked == [], f"sent to the model: {leaked}"
    user = openai_server.chat_requests[0].messages[1]["content"]
    assert "[NAME-" in user and "[EMAIL-" in user and "[PHONE-" in user and "[ID-" in user
    assert out.composer == "llm:gpt-4o-mini"
    assert "You want Jamie Lee to find a voice" in out.text and "[STUDENT" not in out.text


def test_the_repair_call_is_masked_too(tmp_path, openai_server):
    # First answer fails the checks by quoting the (masked) name in a walkthrough line.
    openai_server.script(
        chat({"reply": "1. Ask [NAME-1] to record alone\n2. Then share", "sources": []}),
        chat({"reply": "One idea: let [NAME-1] record a first take alone. What would help [NAME-1] feel safe "
                         "at the microphone?", "sources": []}),
    )
    out = LLMComposer(settings_for(tmp_path, openai_server.url)).compose(request())
    assert len(openai_server.chat_requests) == 2
    sent = openai_server.sent_text()
    assert [p for p in PRIVATE if p in sent] == []
    assert out.composer == "llm:gpt-4o-mini" and "[STUDENT" not in out.text


def test_the_same_person_has_one_placeholder_across_history_and_message(tmp_path, openai_server):
    openai_server.script(chat({"reply": "What is the goal?", "sources": []}))
    LLMComposer(settings_for(tmp_path, openai_server.url)).compose(request())
    user = openai_server.chat_requests[0].messages[1]["content"]
    history_part, message_part = user.split("<teacher_message>")
    # Priya is named in the history only; her placeholder is used in both the teacher turn and the coach turn.
    priya_tags = {t for t in ("[NAME-1]", "[NAME-2]", "[NAME-3]", "[NAME-4]")
                  if history_part.count(t) >= 2}
    assert priya_tags, history_part
    assert not priya_tags & {t for t in ("[NAME-1]", "[NAME-2]", "[NAME-3]", "[NAME-4]")
                             if t in message_part}


def test_masking_can_be_turned_off(tmp_path, openai_server):
    openai_server.script(chat({"reply": "What is the goal?", "sources": []}))
    LLMComposer(settings_for(tmp_path, openai_server.url, mask=False)).compose(request())
    user = openai_server.chat_requests[0].messages[1]["content"]
    assert "Jamie Lee" in user and EMAIL in user and "Priya" in user and "[NAME-" not in user


def test_mask_many_keeps_one_mapping_and_mask_keeps_its_api():
    texts, masked = Masker().mask_many(["Jamie is late again", "my student Jamie, call 07700 900123"])
    assert texts == ["[NAME-1] is late again", "my student [NAME-1], call [PHONE-1]"]
    assert masked.unmask(texts[1]) == "my student Jamie, call 07700 900123"
    single = Masker().mask("my pupil Ana Silva emailed ana@example.org")
    assert single.text == "my pupil [NAME-1] emailed [EMAIL-1]"
    assert single.unmask(single.text) == "my pupil Ana Silva emailed ana@example.org"
