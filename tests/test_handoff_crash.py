"""Nothing lost, nothing doubled: the delivering process is SIGKILLed mid-delivery and started again.

The worker is the real `coach handoffs deliver` command in a subprocess. The webhook receiver
processes the POST and then holds its answer, so the kill lands after the receiver has the
handoff and before the outbox recorded it as delivered: the hardest case for exactly-once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.delivery import build_delivery
from bot.handoff.desk import EscalationEvent
from bot.handoff.escalations import Escalations
from bot.models import Route
from bot.settings import Settings
from bot.state.memory import ConversationMemory
from bot.state.database import StateDB
from bot.triage.categories import Category
from bot.triage.router import Decision
from webhook_receiver import SmtpSink, WebhookReceiver, poll

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "config"
SECRET = "kill-test-secret"


def child_env(data_dir: Path, smtp_port: int, hook_url: str) -> dict[str, str]:
    """The environment of a bot process: only what this test sets, none of the developer's COACH_/SLACK_ values."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("COACH_", "SLACK_", "OPENAI_", "Microsoft"))}
    return {**keep, "PYTHONPATH": str(ROOT), "COACH_ENV_FILE": str(data_dir / "no.env"),
            "COACH_DATA_DIR": str(data_dir), "COACH_CONFIG_DIR": str(CONFIG_DIR),
            "COACH_EMAIL__HOST": "127.0.0.1", "COACH_EMAIL__PORT": str(smtp_port), "COACH_EMAIL__STARTTLS": "false",
            "COACH_EMAIL__FROM_ADDR": "coach@school.example", "COACH_EMAIL__HELPDESK_TO": "it@school.example",
            "COACH_WEBHOOK__URL": hook_url, "COACH_WEBHOOK__SECRET": SECRET,
            "COACH_OUTBOX__LEASE_SECONDS": "2", "COACH_OUTBOX__POLL_SECONDS": "0.2",
            "COACH_OUTBOX__BACKOFF_BASE_SECONDS": "0.1", "COACH_OUTBOX__BACKOFF_MAX_SECONDS": "0.5"}


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "adapters.cli", "handoffs", "deliver"], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.mark.server
def test_killed_mid_delivery_delivers_once_after_restart(tmp_path):
    data = tmp_path / "data"
    with SmtpSink() as smtp, WebhookReceiver(secret=SECRET) as hook:
        settings = Settings(data_dir=data, config_dir=CONFIG_DIR,
                            email={"host": "127.0.0.1", "port": smtp.port, "starttls": False,
                                   "from_addr": "coach@school.example", "helpdesk_to": "it@school.example"},
                            webhook={"url": hook.url, "secret": SECRET})
        db = StateDB(settings.state_url)
        esc, memory = Escalations(db), ConversationMemory(db)
        delivery = build_delivery(settings, db, esc, memory, start=False)  # records, never delivers here
        text = "the projector in room 12 shows no signal"
        opened = esc.open_or_add(target="helpdesk", reason="technical fault", category="fault", urgent=False,
                                 memory_key="slack:C1:1.1", platform="slack", user_id="U1", summary=text,
                                 detail={"text": text})
        delivery.listener.escalated(EscalationEvent(opened, text, Decision(Route.HELPDESK, Category.FAULT, "technical fault"),
                                                    [], "slack", "slack:C1:1.1"))
        # A second escalation whose outbox rows were never written (recorded by a process without the
        # outbox as its escalations' writer, as an older version did).
        orphan = Escalations(db).open_or_add(target="helpdesk", reason="technical fault", category="fault", urgent=False,
                                 memory_key="slack:C2:2.2", platform="slack", user_id="U2", summary="printer",
                                 detail={"text": "the printer in the library is jammed"})
        outbox = delivery.outbox
        assert [(r.escalation_id, r.channel, r.status) for r in outbox.rows()] == \
            [(opened.id, "email", "pending"), (opened.id, "webhook", "pending")]

        env, log = child_env(data, smtp.port, hook.url), tmp_path / "worker.log"
        hook.hold_next()
        first = start_worker(env, log)
        try:
            poll(hook.holding.is_set, 30, "the worker's webhook POST (see worker.log)")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        hook.release()
        assert first.returncode == -signal.SIGKILL
        by_key = {(r.escalation_id, r.channel): r for r in outbox.rows()}
        assert len(hook.processed) == 1  # the receiver has it ...
        assert by_key[(opened.id, "webhook")].status == "sending"  # ... the outbox does not know yet
        assert by_key[(opened.id, "email")].status == "delivered"
        assert {(orphan.id, "email"), (orphan.id, "webhook")} <= set(by_key)  # recovery wrote the missing rows

        second = start_worker(env, log)
        try:
            poll(lambda: {r.status for r in outbox.rows()} == {"delivered"}, 30,
                 "every row delivered after the restart")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(15)
        assert second.returncode == 0, log.read_text()[-2000:]

        rows = {(r.escalation_id, r.channel): r for r in outbox.rows()}
        assert rows[(opened.id, "webhook")].attempts == 2
        held_key = rows[(opened.id, "webhook")].key
        assert [r.key for r in hook.requests].count(held_key) == 2  # sent again after the restart ...
        assert hook.duplicates == 1  # ... and dropped by the receiver
        assert sorted(hook.processed) == sorted([held_key, rows[(orphan.id, "webhook")].key])
        assert len(smtp.messages) == 2 and smtp.duplicates == 0  # one e-mail per ticket, none resent
        subjects = sorted(str(m["Subject"]) for m in smtp.messages)
        assert subjects == sorted([f"[Coach {opened.ticket}] Projector in room 12 shows no signal",
                                   f"[Coach {orphan.ticket}] Printer in the library is jammed"])
