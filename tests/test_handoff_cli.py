"""`coach replay` records without delivering; `coach handoffs ...` and `coach doctor` against real servers."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapters.cli import main
from adapters.delivery import build_delivery
from bot.handoff.desk import EscalationEvent
from bot.handoff.escalations import Escalations
from bot.models import Route
from bot.handoff.outbox import Outbox
from bot.settings import Settings
from bot.state.memory import ConversationMemory
from bot.state.database import StateDB
from bot.triage.categories import Category
from bot.triage.router import Decision
from webhook_receiver import SmtpSink, WebhookReceiver, free_port

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
SECRET = "cli-test-secret"


def run(args: list[str], env: dict[str, str], stdin: str | None = None) -> Any:
    # Settings come from the environment, as in production; the developer's own COACH_ values are blanked.
    blank = {k: None for k in os.environ if k.startswith(("COACH_", "SLACK_", "OPENAI_", "Microsoft"))}
    return CliRunner().invoke(main, args, env={**blank, **env}, input=stdin, catch_exceptions=False)


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {"COACH_DATA_DIR": str(data_dir), "COACH_CONFIG_DIR": str(CONFIG_DIR),
            "COACH_ENV_FILE": str(data_dir / "no.env"), "COACH_OUTBOX__BACKOFF_BASE_SECONDS": "0.05", **extra}


def test_replay_records_escalations_and_never_delivers(settings, store, tmp_path):
    with WebhookReceiver(secret=SECRET) as hook:
        env = base_env(settings.data_dir, COACH_WEBHOOK__URL=hook.url, COACH_WEBHOOK__SECRET=SECRET)
        cases = "\n".join(json.dumps(c) for c in [
            {"id": "r1", "conversation": "c1", "text": "the projector in room 12 shows no signal"},
            {"id": "r2", "conversation": "c1", "text": "room 12, the Epson one"},
            {"id": "r3", "conversation": "c2", "text": "can I talk to a real person please"},
        ])
        result = run(["replay", "-"], env, stdin=cases)
        assert result.exit_code == 0, result.output
        out = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
        assert [o["handoff"]["target"] for o in out] == ["helpdesk", "helpdesk", "integrator"]
        assert out[0]["handoff"]["ticket"] == out[1]["handoff"]["ticket"]
        db = StateDB(settings.state_url)
        assert len(Escalations(db).list(status=None)) == 2  # recorded ...
        assert Outbox(db).rows() == []  # ... never queued ...
        assert hook.requests == []  # ... never sent


@pytest.fixture
def recorded(tmp_path):
    """Two escalations recorded by a process with a webhook configured; nothing delivered yet."""
    hook = WebhookReceiver(secret=SECRET).__enter__()
    data = tmp_path / "data"
    settings = Settings(data_dir=data, config_dir=CONFIG_DIR, webhook={"url": hook.url, "secret": SECRET})
    db = StateDB(settings.state_url)
    esc, memory = Escalations(db), ConversationMemory(db)
    delivery = build_delivery(settings, db, esc, memory, start=False)
    tickets = []
    for key, target, text in (("slack:C1:1.1", "helpdesk", "the projector in room 12 shows no signal"),
                              ("slack:C2:2.2", "integrator", "can I talk to a real person please")):
        opened = esc.open_or_add(target=target, reason=f"{target} reason", category="fault" if target == "helpdesk"
                                 else "human_request", urgent=False, memory_key=key, platform="slack", user_id="U1",
                                 summary=text, detail={"text": text},
                                 reply_to={"conversation_id": key.split(":")[1], "thread_id": key.split(":")[2]})
        delivery.listener.escalated(EscalationEvent(opened, text, Decision(Route(target), Category.FAULT if target == "helpdesk" else Category.HUMAN_REQUEST, "y"), [], "slack", key))
        tickets.append(opened.ticket)
    yield hook, data, tickets, db
    hook.__exit__(None, None, None)


def test_handoffs_list_show_retry_claim_resolve(recorded):
    hook, data, (h_ticket, i_ticket), db = recorded
    env = base_env(data, COACH_WEBHOOK__URL=hook.url, COACH_WEBHOOK__SECRET=SECRET,
                   COACH_ACCESS__INTEGRATOR__CLI=json.dumps([getpass.getuser()]))

    listed = run(["handoffs", "list", "--json"], env)
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [r["ticket"] for r in rows] == [i_ticket, h_ticket]
    assert rows[1]["title"] == "Projector in room 12 shows no signal"
    assert rows[1]["deliveries"] == [{"channel": "webhook", "event": "opened", "status": "pending", "attempts": 0}]

    hook.fail_first(1)
    retried = run(["handoffs", "retry", "--timeout", "10"], env)
    assert "2 deliveries due now" in retried.output and "Delivered 2" in retried.output, retried.output
    assert retried.exit_code == 0
    assert len(hook.processed) == 2 and hook.duplicates == 0

    shown = run(["handoffs", "show", h_ticket], env)
    assert f"[Coach {h_ticket}] Projector in room 12 shows no signal" in shown.output
    assert "Room:" in shown.output and "room 12" in shown.output and "delivered" in shown.output
    missing = CliRunner().invoke(main, ["handoffs", "show", "H-9999"], env=env)
    assert missing.exit_code != 0 and "no handoff 'H-9999'" in missing.output

    claimed = run(["handoffs", "claim", i_ticket, "--as", "Sam"], env)
    assert f"{i_ticket}: claimed by Sam" in claimed.output, claimed.output
    assert "already claimed" in run(["handoffs", "claim", i_ticket], env).output
    resolved = run(["handoffs", "resolve", i_ticket, "--as", "Sam"], env)
    assert f"{i_ticket}: resolved by Sam" in resolved.output
    types = [b["type"] for b in hook.processed.values() if b["ticket"] == i_ticket]
    assert types == ["handoff.opened", "handoff.claimed", "handoff.resolved"]
    # The Slack teacher is told by whichever process has Slack: the notices wait in the outbox for it.
    teacher = [r for r in Outbox(db).rows() if r.channel == "teacher:slack"]
    assert [(r.event, r.status) for r in teacher] == [("claimed", "pending"), ("resolved", "pending")]
    assert "Sam" in teacher[0].payload["notice"]["text"] and teacher[0].payload["notice"]["conversation_id"] == "C2"
    assert [json.loads(line)["ticket"] for line in run(["handoffs", "list", "--json"], env).output.splitlines()] == [h_ticket]


NOTE = "Start with a two-minute interview; my student Priya Shah's group modelled it for the class."


def test_resolve_with_a_note_stores_it_masked_and_the_draft_quotes_it(recorded, tmp_path):
    """The note goes through the core's resolve path: checked, masked, stored; the knowledge draft quotes it."""
    from knowledge.parser import load_folder

    hook, data, (_, i_ticket), db = recorded
    env = base_env(data, COACH_WEBHOOK__URL=hook.url, COACH_WEBHOOK__SECRET=SECRET)
    refused = CliRunner().invoke(main, ["handoffs", "resolve", i_ticket, "--note", NOTE], env=env)
    assert refused.exit_code == 1, refused.output  # not an integrator here: nothing recorded, note included
    row = Escalations(db).get_by_ticket(i_ticket)
    assert (row.status, row.resolution_note) == ("open", None)

    env["COACH_ACCESS__INTEGRATOR__CLI"] = json.dumps([getpass.getuser()])
    resolved = run(["handoffs", "resolve", i_ticket, "--as", "Sam", "--note", NOTE], env)
    assert resolved.exit_code == 0 and f"{i_ticket}: resolved by Sam" in resolved.output, resolved.output
    assert "Note recorded (masked): Start with a two-minute interview" in resolved.output
    row = Escalations(db).get_by_ticket(i_ticket)
    assert row.status == "resolved" and row.resolution_note is not None
    assert row.resolution_note.startswith("Start with a two-minute interview; my student [")
    assert "Priya" not in row.resolution_note and "Shah" not in row.resolution_note
    # The resolved delivery carries the note as stored (masked) in its status line.
    [sent] = [b for b in hook.processed.values() if b["ticket"] == i_ticket and b["type"] == "handoff.resolved"]
    assert "Note: Start with a two-minute interview" in json.dumps(sent) and "Priya" not in json.dumps(sent)

    folder = tmp_path / "drafts"
    drafted = run(["kb", "draft-from-escalation", i_ticket, str(folder)], env)
    assert drafted.exit_code == 0, drafted.output
    [entry] = load_folder(folder).entries
    assert entry.extra == {"status": "draft", "from_escalation": i_ticket}
    assert "What the integrator answered (masked):" in entry.body and "No resolution note" not in entry.body
    assert "Start with a two-minute interview" in entry.body
    text = (folder / f"{entry.id}.md").read_text()
    assert "Priya" not in text and "Shah" not in text


def test_doctor_says_what_is_configured_and_reachable(settings, store):
    from slack_api_server import SlackAPIServer

    with SmtpSink() as smtp, WebhookReceiver(secret=SECRET) as hook, SlackAPIServer() as slack:
        env = base_env(settings.data_dir, COACH_EMAIL__HOST="127.0.0.1", COACH_EMAIL__PORT=str(smtp.port),
                       COACH_EMAIL__STARTTLS="false", COACH_EMAIL__HELPDESK_TO="it@school.example",
                       COACH_WEBHOOK__URL=hook.url, COACH_WEBHOOK__SECRET=SECRET,
                       SLACK_BOT_TOKEN="xoxb-doctor", COACH_SLACK__API_URL=slack.base_url,
                       COACH_SLACK__INTEGRATOR_CHANNEL="C0INTEGRAT")
        healthy = CliRunner().invoke(main, ["doctor"], env=env, terminal_width=200)
        assert healthy.exit_code == 0, healthy.output
        for line in ("state database", "knowledge store", "e-mail (SMTP)", "webhook", "Slack integrators' channel",
                     "Slack teacher notices"):
            assert any(line in row and " ok " in row for row in healthy.output.splitlines()), line
        assert "not configured" in healthy.output  # the Teams channel, said plainly
        assert "helpdesk handoffs go to" in healthy.output and "email, webhook" in healthy.output
        assert len(slack.calls("auth.test")) == 2 and hook.processed == {} and smtp.messages == []
        assert SECRET not in healthy.output and "xoxb-doctor" not in healthy.output

        dead = {**env, "COACH_WEBHOOK__URL": f"http://127.0.0.1:{free_port()}/gone"}
        sick = CliRunner().invoke(main, ["doctor"], env=dead, terminal_width=200)
        assert sick.exit_code == 1
        assert any("webhook" in row and "FAIL" in row for row in sick.output.splitlines()), sick.output
