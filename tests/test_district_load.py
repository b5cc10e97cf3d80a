"""benchmarks/load.py's own accounting: what counts as one answer, one handoff, and its bounds.

The full run (several bot processes, minutes) is a benchmark run by hand; these checks keep the
numbers it reports honest: an answer that replaced a "thinking" indicator is one answer, a
second post is a second answer, and a handoff counts once per ticket however often it is updated.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient

from tests.slack_api_server import SlackAPIServer

ROOT = Path(__file__).resolve().parents[1]


def _load_module():
    spec = importlib.util.spec_from_file_location("district_load", ROOT / "benchmarks" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["district_load"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


load = _load_module()


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackAPIServer]:
    with SlackAPIServer() as server:
        yield server


@pytest.fixture
def client(slack: SlackAPIServer) -> WebClient:
    slack.reset()
    return WebClient(token="xoxb-1-2-test", base_url=slack.base_url)


def test_an_answer_that_replaced_the_thinking_indicator_counts_once(slack: SlackAPIServer, client: WebClient) -> None:
    thinking = client.chat_postMessage(channel="D00000001L", text=load.THINKING_TEXT)
    client.chat_update(channel="D00000001L", ts=thinking["ts"], text="What is the learning goal?")
    client.chat_postMessage(channel="D00000002L", text="A question back to you")
    client.chat_postMessage(channel="D00000003L", text="first answer")
    client.chat_postMessage(channel="D00000003L", text="the same event answered again")
    client.chat_postMessage(channel="D00000004L", text=load.THINKING_TEXT)  # cut off before the answer
    counts, first, sorry = load.slack_answers(slack)
    assert (counts["D00000001L"], counts["D00000002L"], counts["D00000003L"], counts["D00000004L"]) == (1, 1, 2, 0)
    assert set(first) == {"D00000001L", "D00000002L", "D00000003L"} and sorry == 0


def test_handoffs_count_once_per_ticket_and_updates_do_not(slack: SlackAPIServer, client: WebClient) -> None:
    def post(ticket: str, event: str, **kwargs) -> dict:
        meta = {"event_type": "coach_handoff", "event_payload": {"key": f"k-{ticket}-{event}", "ticket": ticket,
                                                                  "event": event}}
        return client.chat_postMessage(channel=load.INTEGRATOR_CHANNEL, text=f"{ticket} handoff", metadata=meta,
                                       **kwargs)

    opened = post("I-0001", "opened")
    post("I-0001", "updated", thread_ts=opened["ts"])
    post("H-0002", "opened")
    post("H-0002", "opened")  # delivered twice: must show up as 2
    client.chat_postMessage(channel="D00000009L", text="I-0003 is not a handoff post")
    assert load.handoff_posts(slack) == Counter({"I-0001": 1, "H-0002": 2})


def test_jobs_are_unique_and_shaped_as_asked() -> None:
    args = load.parse(["--events", "400", "--teams", "100", "--duplicates", "0.1", "--escalations", "0.05"])
    jobs = load.build_jobs(args, "http://127.0.0.1:9/")
    slack_jobs = [j for j in jobs if j.kind == "slack"]
    teams_jobs = [j for j in jobs if j.kind == "teams"]
    assert (len(slack_jobs), len(teams_jobs)) == (400, 100)
    assert len({j.key for j in jobs}) == 500  # one conversation per event: answers map back unambiguously
    assert len({json.loads(j.body)["event_id"] for j in slack_jobs}) == 400
    assert 20 <= sum(j.duplicate_after is not None for j in slack_jobs) <= 60  # about 10%
    assert all(j.duplicate_after is None for j in teams_jobs)
    assert 5 <= sum(j.escalates for j in jobs) <= 50
    assert [j.kind for j in jobs] != sorted(j.kind for j in jobs)  # interleaved, not all Slack first


@pytest.mark.parametrize("argv", [
    ["--events", "20001"], ["--teams", "5001"], ["--rate", "501"], ["--processes", "9"],
    ["--faults", "--processes", "1"], ["--duplicates", "1.5"], ["--events", "0", "--teams", "0"],
])
def test_the_run_is_bounded(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        load.parse(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (load.pct(values, 50), load.pct(values, 99), load.pct([], 50)) == (50.0, 99.0, None)
