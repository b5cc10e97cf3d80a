"""Fault injection for handoff delivery: every escalation delivered exactly once, whatever breaks.

    python benchmarks/fault_injection.py [--escalations 5] [--smtp-down 10] [--webhook-failures 3]

Scenarios, each against real servers on loopback (aiosmtpd, an HMAC-verifying webhook receiver):

1. SMTP down: the mail server is not listening for `--smtp-down` seconds (a minute in real life;
   bounded here), then comes up on the same port. The outbox retries with backoff.
2. Webhook 500 then 200: the receiver answers 500 to the first `--webhook-failures` POSTs.
3. Killed mid-delivery: the real `coach handoffs deliver` worker is SIGKILLed while the
   receiver holds its answer to a POST it has already processed, then started again.
4. Outbox write failing after the escalation commit: the escalation is recorded without its
   delivery rows; the running worker's recovery writes and delivers them (no restart).
5. Outbox write failing inside the escalation's transaction: nothing is recorded, the caller
   retries, and the escalation is recorded and delivered once.

Ends with a table; the exit code is 1 if any escalation was lost or delivered twice.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from adapters.delivery import build_delivery  # noqa: E402
from bot.coach import EscalationEvent  # noqa: E402
from bot.handoff.escalations import Escalations  # noqa: E402
from bot.models import Route  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.state.memory import ConversationMemory  # noqa: E402
from bot.state.database import StateDB
from bot.triage.categories import Category  # noqa: E402
from bot.triage.router import Decision  # noqa: E402
from webhook_receiver import SmtpSink, WebhookReceiver, free_port, poll  # noqa: E402

SECRET = "fault-injection-secret"
FAULTS = [
    "the projector in room {n} shows no signal",
    "the printer in lab {n} is jammed again",
    "chromebook cart {n} won't charge",
    "the smartboard in room {n} is frozen",
    "the speakers in hall {n} are not working",
]
FAST = {"backoff_base_seconds": 0.5, "backoff_max_seconds": 2.0, "poll_seconds": 0.2, "lease_seconds": 3}


@dataclass
class Outcome:
    scenario: str
    escalations: int
    expected: int  # deliveries expected (escalations x targets)
    delivered_rows: int
    attempts: int
    sent: int  # what the receivers saw, repeats included
    dropped: int  # repeats the receivers dropped on Idempotency-Key / Message-ID
    unique: int
    seconds: float

    @property
    def exactly_once(self) -> bool:
        return self.delivered_rows == self.expected == self.unique


def _record(settings: Settings, count: int, start: int = 1):
    """Record `count` helpdesk escalations and their outbox rows, as the coach would; deliver nothing."""
    db = StateDB(settings.state_url)
    esc, memory = Escalations(db), ConversationMemory(db)
    delivery = build_delivery(settings, db, esc, memory, start=False)
    assert delivery is not None, "no delivery target configured"
    for n in range(start, start + count):
        text = FAULTS[n % len(FAULTS)].format(n=n)
        key = f"slack:C{n}:{n}.0"
        opened = esc.open_or_add(target="helpdesk", reason="technical fault", category="fault", urgent=False,
                                 memory_key=key, platform="slack", user_id=f"U{n}", summary=text, detail={"text": text})
        delivery.listener.escalated(EscalationEvent(opened, text, Decision(Route.HELPDESK, Category.FAULT, "technical fault"),
                                                    [], "slack", key))
    return delivery


def _rows(delivery) -> tuple[int, int]:
    rows = delivery.outbox.rows(limit=100000)
    return sum(r.status == "delivered" for r in rows), sum(r.attempts for r in rows)


def smtp_down(work: Path, count: int, down: float) -> Outcome:
    port = free_port()  # nothing listens here yet: connection refused, as when the server is down
    settings = Settings(data_dir=work / "smtp", config_dir=ROOT / "config", outbox=FAST,
                        email={"host": "127.0.0.1", "port": port, "starttls": False, "from_addr": "coach@school.example",
                               "helpdesk_to": "it@school.example"})
    delivery = _record(settings, count)
    started = time.monotonic()
    delivery.worker.start()
    poll(lambda: time.monotonic() - started >= down, down + 5, "the outage to pass", interval=0.2)
    with SmtpSink(port=port) as smtp:
        poll(lambda: _rows(delivery)[0] == count, 60, "every e-mail after the SMTP server came back", interval=0.1)
        delivery.close(2)
        elapsed = time.monotonic() - started
        delivered, attempts = _rows(delivery)
        return Outcome(f"SMTP down {down:.0f}s", count, count, delivered, attempts, len(smtp.messages),
                       smtp.duplicates, len(smtp.unique), elapsed)


def webhook_flaky(work: Path, count: int, failures: int) -> Outcome:
    with WebhookReceiver(secret=SECRET) as hook:
        hook.fail_first(failures, status=500)
        settings = Settings(data_dir=work / "hook", config_dir=ROOT / "config", outbox=FAST,
                            webhook={"url": hook.url, "secret": SECRET})
        delivery = _record(settings, count)
        started = time.monotonic()
        delivery.worker.start()
        poll(lambda: _rows(delivery)[0] == count, 60, "every webhook delivery", interval=0.05)
        delivery.close(2)
        elapsed = time.monotonic() - started
        delivered, attempts = _rows(delivery)
        bad = sum(not r.signature_ok for r in hook.requests)
        assert bad == 0, f"{bad} request(s) failed signature verification"
        return Outcome(f"webhook 500 x{failures}, then 200", count, count, delivered, attempts, len(hook.requests),
                       hook.duplicates, len(hook.processed), elapsed)


def killed_mid_delivery(work: Path, count: int) -> Outcome:
    data = work / "kill"
    with SmtpSink() as smtp, WebhookReceiver(secret=SECRET) as hook:
        settings = Settings(data_dir=data, config_dir=ROOT / "config",
                            email={"host": "127.0.0.1", "port": smtp.port, "starttls": False,
                                   "from_addr": "coach@school.example", "helpdesk_to": "it@school.example"},
                            webhook={"url": hook.url, "secret": SECRET})
        delivery = _record(settings, count)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "SLACK_", "OPENAI_", "Microsoft"))}
        env.update({"PYTHONPATH": str(ROOT), "COACH_ENV_FILE": str(data / "no.env"), "COACH_DATA_DIR": str(data),
                    "COACH_CONFIG_DIR": str(ROOT / "config"), "COACH_EMAIL__HOST": "127.0.0.1",
                    "COACH_EMAIL__PORT": str(smtp.port), "COACH_EMAIL__STARTTLS": "false",
                    "COACH_EMAIL__FROM_ADDR": "coach@school.example", "COACH_EMAIL__HELPDESK_TO": "it@school.example",
                    "COACH_WEBHOOK__URL": hook.url, "COACH_WEBHOOK__SECRET": SECRET,
                    **{f"COACH_OUTBOX__{k.upper()}": str(v) for k, v in FAST.items()}})
        log = (data / "worker.log").open("ab")
        command = [sys.executable, "-m", "adapters.cli", "handoffs", "deliver"]
        started = time.monotonic()
        hook.hold_next()
        first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            poll(hook.holding.is_set, 60, "the worker's first webhook POST")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        hook.release()
        second = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            poll(lambda: _rows(delivery)[0] == 2 * count, 60, "every delivery after the restart", interval=0.1)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(15)
        elapsed = time.monotonic() - started
        delivered, attempts = _rows(delivery)
        return Outcome("worker SIGKILLed mid-delivery", count, 2 * count, delivered, attempts,
                       len(hook.requests) + len(smtp.messages), hook.duplicates + smtp.duplicates,
                       len(hook.processed) + len(smtp.unique), elapsed)


def _open(esc: Escalations, n: int):
    text = FAULTS[n % len(FAULTS)].format(n=n)
    return esc.open_or_add(target="helpdesk", reason="technical fault", category="fault", urgent=False,
                           memory_key=f"slack:C{n}:{n}.0", platform="slack", user_id=f"U{n}", summary=text,
                           detail={"text": text})


def outbox_write_fails_after_commit(work: Path, count: int) -> Outcome:
    """The escalation is committed, then writing its delivery rows fails (an older process, or a crash
    between the two); the running worker's recovery writes them, and each is delivered once, no restart."""
    with WebhookReceiver(secret=SECRET) as hook:
        settings = Settings(data_dir=work / "after-commit", config_dir=ROOT / "config",
                            outbox={**FAST, "recover_seconds": 1.0}, webhook={"url": hook.url, "secret": SECRET})
        db = StateDB(settings.state_url)
        delivery = build_delivery(settings, db, Escalations(db), ConversationMemory(db), start=False)
        started = time.monotonic()
        delivery.worker.start()
        bare = Escalations(db)  # commits the escalation without the outbox as its writer

        def failing(*_args, **_kwargs):
            raise ConnectionError("outbox write failed")

        delivery.outbox.enqueue_many = failing  # the listener's after-commit write fails too
        for n in range(1, count + 1):
            opened = _open(bare, n)
            try:
                delivery.listener.escalated(EscalationEvent(
                    opened, "", Decision(Route.HELPDESK, Category.FAULT, "technical fault"), [], "slack", ""))
            except ConnectionError:
                pass
        del delivery.outbox.enqueue_many
        poll(lambda: _rows(delivery)[0] == count, 60, "every escalation recovered and delivered", interval=0.05)
        time.sleep(2.5)  # two more recovery rounds: nothing written or sent again
        delivery.close(2)
        elapsed = time.monotonic() - started
        delivered, attempts = _rows(delivery)
        return Outcome("outbox write fails after the escalation commit", count, count, delivered, attempts,
                       len(hook.requests), hook.duplicates, len(hook.processed), elapsed)


def outbox_write_fails_in_transaction(work: Path, count: int) -> Outcome:
    """Writing the delivery rows fails inside the escalation's transaction: neither is recorded, the
    caller retries (as Slack retries an event), and the escalation is recorded and delivered once."""
    with WebhookReceiver(secret=SECRET) as hook:
        settings = Settings(data_dir=work / "in-transaction", config_dir=ROOT / "config", outbox=FAST,
                            webhook={"url": hook.url, "secret": SECRET})
        db = StateDB(settings.state_url)
        esc = Escalations(db)
        delivery = build_delivery(settings, db, esc, ConversationMemory(db), start=False)
        failed: set[str] = set()

        def flaky(_session, row, event, _seq) -> None:  # the first write for each escalation fails
            if event == "opened" and row.memory_key not in failed:
                failed.add(row.memory_key)
                raise ConnectionError("outbox write failed")

        esc.add_writer(flaky)
        started = time.monotonic()
        delivery.worker.start()
        for n in range(1, count + 1):
            for _attempt in range(3):
                try:
                    _open(esc, n)
                    break
                except ConnectionError:
                    continue
        poll(lambda: _rows(delivery)[0] == count, 60, "every escalation delivered", interval=0.05)
        delivery.close(2)
        elapsed = time.monotonic() - started
        delivered, attempts = _rows(delivery)
        recorded = len(esc.list(status=None, limit=100000))
        assert recorded == count, f"{recorded} escalations recorded for {count} requests"
        return Outcome("outbox write fails inside the escalation transaction", count, count, delivered, attempts,
                       len(hook.requests), hook.duplicates, len(hook.processed), elapsed)


def table(outcomes: list[Outcome]) -> str:
    head = ["scenario", "escalations", "deliveries", "delivered", "attempts", "received", "repeats dropped",
            "unique", "seconds", "exactly once"]
    rows = [[o.scenario, str(o.escalations), str(o.expected), str(o.delivered_rows), str(o.attempts), str(o.sent),
             str(o.dropped), str(o.unique), f"{o.seconds:.1f}", "yes" if o.exactly_once else "NO"] for o in outcomes]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--escalations", type=int, default=5, help="escalations per scenario")
    parser.add_argument("--smtp-down", type=float, default=10.0, help="seconds the SMTP server stays down")
    parser.add_argument("--webhook-failures", type=int, default=3, help="POSTs answered with 500 before 200s")
    args = parser.parse_args()
    # Retries are the point here: the table says what happened; errors would still show.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="coach-faults-") as tmp:
        work = Path(tmp)
        outcomes = []
        for name, run in (("SMTP down", lambda: smtp_down(work, args.escalations, args.smtp_down)),
                          ("webhook 500s", lambda: webhook_flaky(work, args.escalations, args.webhook_failures)),
                          ("killed mid-delivery", lambda: killed_mid_delivery(work, args.escalations)),
                          ("outbox write after commit",
                           lambda: outbox_write_fails_after_commit(work, args.escalations)),
                          ("outbox write in transaction",
                           lambda: outbox_write_fails_in_transaction(work, args.escalations))):
            print(f"running: {name} ...", file=sys.stderr, flush=True)
            outcomes.append(run())
    print(table(outcomes))
    ok = all(o.exactly_once for o in outcomes)
    print("\nEvery escalation delivered exactly once." if ok else "\nSOME ESCALATION WAS LOST OR DOUBLED.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
