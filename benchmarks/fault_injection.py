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

And for Slack, against the real `coach serve slack` (HTTP mode) and the loopback Web API stand-in
(tests/slack_api_server.py):

6. Slash command retried: every /coach command is delivered twice (the same trigger_id).
7. Click retried: every "Read it" click (which posts each time it is really clicked) is delivered twice.
8. Killed between posting and recording: the stand-in applies the answers but holds its replies,
   the process is SIGKILLed, and a second process's sweeper finishes the items from the messages'
   metadata rather than answering again.

For the Slack rows an item is a question or click, "delivered" a row done with its answer written
down, and "received"/"unique" the answer messages Slack ends up holding for them, all and per item.

Ends with a table; the exit code is 1 if any item was lost or answered twice.
    --only slack   runs the Slack rows alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import urllib.parse
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
from bot.handoff.desk import EscalationEvent  # noqa: E402
from bot.handoff.escalations import Escalations  # noqa: E402
from bot.models import Route  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.state.memory import ConversationMemory  # noqa: E402
from bot.state.database import StateDB  # noqa: E402
from bot.triage.categories import Category  # noqa: E402
from bot.triage.router import Decision  # noqa: E402
from webhook_receiver import SmtpSink, WebhookReceiver, free_port, poll  # noqa: E402
from adapters.slack.actions import action_item  # noqa: E402
from adapters.slack.commands import command_item  # noqa: E402
from bot.state.inbound import DONE, InboundQueue  # noqa: E402
from slack_api_server import (  # noqa: E402
    SIGNING_SECRET, SlackAPIServer, app_mention, block_actions, event_body, im_message, post_to_app, slash_command,
)

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
    extra: int = 0  # answers beyond one per item (Slack rows: messages carrying the same inbound key)

    @property
    def exactly_once(self) -> bool:
        return self.delivered_rows == self.expected == self.unique and self.extra == 0


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


# -- Slack: commands, clicks and answers through the inbound queue -----------------------------

SLACK_BOT_TOKEN = "xoxb-1234-5678-faults"
FORM = "application/x-www-form-urlencoded"
QUESTIONS = ["how do I make a quick exit ticket in google forms?",
             "how can my year 5s brainstorm together on padlet?",
             "what is a good warm-up for a podcast lesson?"]


class SlackServer:
    """`coach serve slack` (HTTP) as its own process; the knowledge base imported once, a database per scenario."""

    def __init__(self, work: Path, api: SlackAPIServer) -> None:
        self.work, self.api = work, api
        self.data = work / "slack-data"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COACH_"))}
        self.env.update({"PYTHONPATH": str(ROOT), "COACH_ENV_FILE": os.devnull, "COACH_DATA_DIR": str(self.data),
                         "COACH_CONFIG_DIR": str(ROOT / "config"), "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
                         "SLACK_SIGNING_SECRET": SIGNING_SECRET, "COACH_SLACK__API_URL": api.base_url,
                         "COACH_SLACK__THINKING_AFTER_SECONDS": "30", "PYTHONUNBUFFERED": "1"})
        if not self.data.exists():
            kb = ROOT / "tests" / "fixtures" / "kb"
            subprocess.run([sys.executable, "-m", "adapters.cli", "kb", "import", str(kb)], cwd=ROOT, env=self.env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)

    def start(self, state: str, name: str) -> tuple[subprocess.Popen, str]:
        log_path = self.work / f"{name}.log"
        env = {**self.env, "COACH_DATABASE_URL": f"sqlite:///{self.work / (state + '.db')}"}
        proc = subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "slack", "--port", "0", "--host",
                                 "127.0.0.1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("w"))
        found: list[str] = []

        def ready() -> bool:
            m = re.search(r"Slack ready .* on 127\.0\.0\.1:(\d+)", log_path.read_text())
            if m:
                found.append(f"http://127.0.0.1:{m.group(1)}/slack/events")
            elif proc.poll() is not None:
                raise SystemExit(f"coach serve slack exited early:\n{log_path.read_text()}")
            return bool(m)

        poll(ready, 120, "coach serve slack to start", interval=0.1)
        return proc, found[0]

    def queue(self, state: str) -> InboundQueue:
        return InboundQueue(StateDB(f"sqlite:///{self.work / (state + '.db')}"))


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _slack_outcome(name: str, server: SlackServer, state: str, keys: list[str], sent: int, started: float,
                   api: SlackAPIServer) -> Outcome:
    """Rows done with an answer, and the answer messages Slack holds per key (from their metadata)."""
    queue = server.queue(state)
    poll(lambda: all((r := queue.get(k)) is not None and r.status == DONE for k in keys), 90,
         f"every {name} item done", interval=0.2)
    elapsed = time.monotonic() - started
    time.sleep(1.0)  # anything posted late would still show
    rows = [queue.get(k) for k in keys]
    answers = [m["metadata"]["event_payload"]["inbound"] for m in list(api.messages.values())
               if (m.get("metadata") or {}).get("event_type") == "coach_answer"
               and m["metadata"]["event_payload"].get("inbound") in keys]
    return Outcome(name, len(keys), len(keys), sum(bool(r and r.answer_ts) for r in rows),
                   sum(r.attempts for r in rows if r), len(answers), sent - len(keys), len(set(answers)), elapsed,
                   extra=len(answers) - len(set(answers)))


def slash_command_retried(server: SlackServer, count: int) -> Outcome:
    api = server.api
    api.reset()
    proc, url = server.start("commands", "commands")
    try:
        started = time.monotonic()
        keys, sent = [], 0
        for n in range(count):
            body = slash_command(QUESTIONS[n % len(QUESTIONS)], channel=f"C0CLASS{n:04d}",
                                 response_url=api.response_url(f"cmd{n}"))
            for _ in range(2):  # Slack's retry, or a double submit: the same trigger_id
                assert post_to_app(url, body, content_type=FORM).status == 200
                sent += 1
            keys.append(command_item(dict(urllib.parse.parse_qsl(body)))[0])
        return _slack_outcome("Slack: slash command retried", server, "commands", keys, sent, started, api)
    finally:
        _stop(proc)


def click_retried(server: SlackServer, count: int) -> Outcome:
    api = server.api
    api.reset()
    proc, url = server.start("clicks", "clicks")
    try:
        clicks = []
        for n in range(count):
            channel = f"C0CLICK{n:04d}"
            event = app_mention(QUESTIONS[0], channel=channel)
            assert post_to_app(url, event_body(event)).status == 200
            answered = lambda: any(ch == channel and m.get("thread_ts") == event["ts"]  # noqa: E731
                                   for (ch, _), m in api.messages.items())
            poll(answered, 60, "the answer to click on", interval=0.05)
            ts, message = next((ts, m) for (ch, ts), m in api.messages.items() if ch == channel)
            button = next(b["accessory"] for b in message["blocks"]
                          if b.get("block_id") == "coach.source.exit-ticket-checks")
            clicks.append(block_actions({**message, "ts": ts}, "coach.read_source", button["value"], channel=channel))
        started = time.monotonic()
        keys, sent = [], 0
        for click in clicks:
            for _ in range(2):
                assert post_to_app(url, click, content_type=FORM).status == 200
                sent += 1
            keys.append(action_item(json.loads(urllib.parse.parse_qs(click)["payload"][0]))[0])
        return _slack_outcome("Slack: click retried", server, "clicks", keys, sent, started, api)
    finally:
        _stop(proc)


def killed_between_posting_and_recording(server: SlackServer, count: int) -> Outcome:
    api = server.api
    api.reset()
    first, url = server.start("killed", "killed-first")
    started = time.monotonic()
    api.hold_after("chat.postMessage")  # the answers reach Slack; their ts never reaches the process
    try:
        keys = []
        for n in range(count):
            event_id = f"EvKILL{n:05d}"
            assert post_to_app(url, event_body(im_message(QUESTIONS[n % len(QUESTIONS)], channel=f"D0KILL{n:04d}"),
                                               event_id=event_id)).status == 200
            keys.append(f"slack:{event_id}")
        poll(lambda: len(api.messages) >= count, 60, "every answer posted", interval=0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        api.release()
    second, _ = server.start("killed", "killed-second")  # its sweeper takes over once the leases run out
    try:
        return _slack_outcome("Slack: killed between posting and recording", server, "killed", keys, count,
                              started, api)
    finally:
        _stop(second)


def table(outcomes: list[Outcome]) -> str:
    head = ["scenario", "items", "deliveries", "delivered", "attempts", "received", "repeats dropped",
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
    parser.add_argument("--slack-items", type=int, default=5, help="commands, clicks and messages per Slack scenario")
    parser.add_argument("--only", choices=["handoffs", "slack"], default=None, help="run one group of rows")
    args = parser.parse_args()
    # Retries are the point here: the table says what happened; errors would still show.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="coach-faults-") as tmp:
        work = Path(tmp)
        outcomes = []
        scenarios = []
        if args.only != "slack":
            scenarios += [("SMTP down", lambda: smtp_down(work, args.escalations, args.smtp_down)),
                          ("webhook 500s", lambda: webhook_flaky(work, args.escalations, args.webhook_failures)),
                          ("killed mid-delivery", lambda: killed_mid_delivery(work, args.escalations)),
                          ("outbox write after commit",
                           lambda: outbox_write_fails_after_commit(work, args.escalations)),
                          ("outbox write in transaction",
                           lambda: outbox_write_fails_in_transaction(work, args.escalations))]
        api = SlackAPIServer().start() if args.only != "handoffs" else None
        try:
            if api is not None:
                scenarios += [("Slack: slash command retried",
                               lambda: slash_command_retried(SlackServer(work, api), args.slack_items)),
                              ("Slack: click retried", lambda: click_retried(SlackServer(work, api), args.slack_items)),
                              ("Slack: killed between posting and recording",
                               lambda: killed_between_posting_and_recording(SlackServer(work, api), args.slack_items))]
            for name, run in scenarios:
                print(f"running: {name} ...", file=sys.stderr, flush=True)
                outcomes.append(run())
        finally:
            if api is not None:
                api.stop()
    print(table(outcomes))
    ok = all(o.exactly_once for o in outcomes)
    print("\nEvery item delivered exactly once." if ok else "\nSOME ITEM WAS LOST OR DOUBLED.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
