"""District load test: several bot processes on one PostgreSQL and one Chroma server, all on loopback.

usage: python benchmarks/load.py [--events 2000] [--teams 500] [--duplicates 0.1] [--processes 3]
                                 [--teams-processes N] [--rate 40] [--faults] [--max-seconds 900] [--keep]

Starts a PostgreSQL cluster and a `chroma run` server of its own (tests/services.py), the Slack Web
API stand-in (tests/slack_api_server.py) and the Bot Connector stand-in (tests/bot_connector_server.py),
upgrades the schema and imports the starter knowledge base once, then starts `--processes` copies
of `coach serve slack` (HTTP mode) and `--teams-processes` copies of `coach serve teams`, all sharing
the database and the Chroma server, as a district runs them behind a load balancer.

It then sends `--events` signed Slack events (one DM conversation each; a share of them ask for a
person or report broken equipment, so escalations are opened and delivered to the integrators'
channel through the outbox) and `--teams` Teams activities, paced at `--rate` per second, spread
round-robin over the processes. `--duplicates` of the Slack events are delivered again, with
X-Slack-Retry-Num, to a *different* process, as Slack does when an ack looks lost. Like Slack and
the Bot Connector, the sender retries (up to 3 times, on another process) a request that failed or
took over 3 s to acknowledge.

With --faults one Slack bot process is killed (SIGKILL) a third of the way in, and PostgreSQL is
restarted halfway through; nothing may be lost and nothing answered twice.

Bounded: at most 20,000 events, loopback only, and everything stops after --max-seconds. Progress
goes to stderr; the last line on stdout is one JSON object:
  events, answered_once, answered_twice, lost, ack_p50_ms, ack_p99_ms, replies_per_second,
  escalations, escalations_delivered_once, ... (details after those); `doubled` lists each job
  answered more than once with every call counted as its answer, `slow_acks` every ack over 1 s.
Exit status 0 when every event was answered exactly once and every escalation delivered exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.bot_connector_server import BotConnectorServer, TeamsActivities  # noqa: E402
from tests.services import ChromaServer, PostgresServer, free_port  # noqa: E402
from tests.slack_api_server import SIGNING_SECRET, ServiceThread, SlackAPIServer, event_body, im_message, sign  # noqa: E402

try:  # the indicator a slow answer posts first (and then replaces): not an answer itself
    from adapters.slack.translate import THINKING_TEXT  # noqa: E402
except ImportError:  # pragma: no cover  (an older Slack adapter)
    THINKING_TEXT = "\x00no thinking indicator"

BOT_TOKEN = "xoxb-1234-5678-districtload"
INTEGRATOR_CHANNEL = "C0INTEGRATE"
ACK_TIMEOUT = 3.0  # Slack retries an event whose ack took longer than this
MAX_ATTEMPTS = 4  # the first delivery and Slack's three retries
SORRY = "Sorry, something went wrong"
TICKET = re.compile(r"\b([HIE])-(\d{4,})\b")

QUESTIONS = [
    "How could my year 5s brainstorm together on a shared wall?",
    "my kids never speak up, could they record a radio show instead?",
    "Any ideas for unplugged coding with very young children?",
    "How do I handle students using AI to write their essays?",
    "What is SAMR and how would I use it to reflect on a lesson?",
    "I want my class to give each other feedback on their drafts online",
    "Could we make a podcast about our town's history?",
    "How can quieter students share ideas without speaking in front of everyone?",
    "What's a good way to start with digital portfolios in year 3?",
    "We are doing persuasive writing next week, how could tech help?",
    "How do I check my students actually understood the video homework?",
    "Is a shared padlet wall a good idea for exit tickets?",
]
ESCALATING = [
    "Could I talk to a person about planning our podcast unit?",
    "I'd rather talk it through with an integrator, is someone free this week?",
    "The projector in room 14 is broken, it shows no signal at all",
    "My laptop won't turn on and I have a class in ten minutes",
]


def pct(values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the bot processes --------------------------------------------------------------------------------

@dataclass
class Bot:
    """One `coach serve slack|teams` process on a loopback port."""

    kind: str
    index: int
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        path = "/slack/events" if self.kind == "slack" else "/api/messages"
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, env: dict[str, str]) -> None:
        # Each process its own data directory, as in deploy/coach-slack@.service: the shared state
        # is in PostgreSQL and the Chroma server, nothing local is shared.
        data_dir = self.log_path.parent / "data" / f"{self.kind}-{self.index}"
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "kb-source.json").write_text(json.dumps({"source": "starter"}))
        env = {**env, "COACH_DATA_DIR": str(data_dir)}
        if self.kind == "slack":
            cmd = ["serve", "slack", "--mode", "http", "--host", "127.0.0.1", "--port", str(self.port)]
        else:
            cmd = ["serve", "teams", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "adapters.cli", *cmd], cwd=ROOT, env=env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL: no shutdown, answers in flight die with it (what a crash or an OOM kill does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def wait_healthy(session: aiohttp.ClientSession, bots: list[Bot], timeout: float) -> None:
    """Poll GET /healthz on every process until all answer (model loading takes a while)."""
    deadline = time.monotonic() + timeout
    pending = list(bots)
    while pending:
        for bot in list(pending):
            if not bot.alive:
                raise RuntimeError(f"{bot.kind} bot {bot.index} exited during start-up:\n{bot.tail()}")
            try:
                async with session.get(f"http://127.0.0.1:{bot.port}/healthz",
                                       timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        pending.remove(bot)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} bot process(es) not healthy after {timeout}s:\n{pending[0].tail()}")
        await asyncio.sleep(0.5)


# -- what is sent ------------------------------------------------------------------------------------

@dataclass
class Job:
    """One event (Slack) or activity (Teams), however many times it is delivered."""

    kind: str
    index: int
    key: str  # the Slack DM channel or Teams conversation the answer must arrive in
    body: str
    escalates: bool
    duplicate_after: float | None = None  # Slack: deliver again to another process after this many seconds
    acked: bool = False
    acked_by: set[int] = field(default_factory=set)  # which processes acknowledged it (a duplicate: two)
    attempts: int = 0


@dataclass
class Stats:
    """What the sender saw: ack and request latencies, retries, give-ups."""

    ack_ms: list[float] = field(default_factory=list)  # Slack: every 2xx ack, duplicates and retries included
    teams_ms: list[float] = field(default_factory=list)  # Teams: request to its 202 (the answer follows, proactively)
    retries: Counter[str] = field(default_factory=Counter)  # by platform: a failed or slow (timed-out) request sent again
    duplicates_sent: int = 0
    gave_up: Counter[str] = field(default_factory=Counter)  # every attempt failed or timed out (it may still be answered)
    slow: list[tuple[str, int, float, float]] = field(default_factory=list)  # acks over 1 s: kind, process, sent at, ms


def build_jobs(args: argparse.Namespace, service_url: str) -> list[Job]:
    """The run's messages, reproducible from --seed: one conversation each, Slack and Teams interleaved."""
    rng = random.Random(args.seed)
    teams = TeamsActivities(service_url=service_url)
    jobs: list[Job] = []
    for i in range(args.events):
        escalates = rng.random() < args.escalations
        text = rng.choice(ESCALATING if escalates else QUESTIONS)
        channel = f"D{i:08d}L"
        event = im_message(text, user=f"U{rng.randrange(400):07d}T", channel=channel)
        body = event_body(event, event_id=f"EvLOAD{args.seed}{i:06d}")
        duplicate = rng.uniform(0.0, 1.5) if rng.random() < args.duplicates else None
        jobs.append(Job("slack", i, channel, body, escalates, duplicate))
    for i in range(args.teams):
        escalates = rng.random() < args.escalations
        text = rng.choice(ESCALATING if escalates else QUESTIONS)
        conversation = f"a:load-{args.seed}-{i:06d}"
        activity = teams.personal(text, conversation=conversation, user=f"teacher{rng.randrange(400)}")
        jobs.append(Job("teams", i, conversation, json.dumps(activity), escalates))
    rng.shuffle(jobs)  # Slack and Teams interleaved, as in a school day
    return jobs


class Balancer:
    """Round-robin over a platform's processes; one that refused a connection is taken out (a health check)."""

    def __init__(self, bots: list[Bot]) -> None:
        self.bots = bots
        self.down: set[int] = set()
        self.next = 0

    def pick(self, avoid: int | None = None) -> Bot:
        live = [b for b in self.bots if b.index not in self.down] or self.bots
        choices = [b for b in live if b.index != avoid] or live
        bot = choices[self.next % len(choices)]
        self.next += 1
        return bot


async def deliver(session: aiohttp.ClientSession, job: Job, balancer: Balancer, stats: Stats, *,
                  first: Bot | None = None, retry_num: int = 0, avoid: int | None = None) -> None:
    """Deliver as the platform does: sign, POST, and on a failed or slow ack retry on another process."""
    last: int | None = avoid
    for attempt in range(retry_num, MAX_ATTEMPTS):
        bot = first if first is not None and attempt == retry_num else balancer.pick(avoid=last)
        last = bot.index
        job.attempts += 1
        headers = {"Content-Type": "application/json"}
        if job.kind == "slack":
            headers.update(sign(job.body, secret=SIGNING_SECRET))
            if attempt:
                headers.update({"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_timeout"})
            timeout = ACK_TIMEOUT
        else:
            timeout = 30.0  # the Bot Framework's own patience; the turn only records the message and answers 202
        started = time.monotonic()
        try:
            async with session.post(bot.url, data=job.body.encode(), headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                await resp.read()
                status = resp.status
        except aiohttp.ClientConnectorError:
            balancer.down.add(bot.index)
            status = None
        except (aiohttp.ClientError, asyncio.TimeoutError):
            status = None
        elapsed_ms = (time.monotonic() - started) * 1000
        if status is not None and 200 <= status < 300:
            (stats.ack_ms if job.kind == "slack" else stats.teams_ms).append(elapsed_ms)
            if elapsed_ms > 1000:
                stats.slow.append((job.kind, bot.index, started, elapsed_ms))
            job.acked = True
            job.acked_by.add(bot.index)
            return
        stats.retries[job.kind] += 1
        await asyncio.sleep(min(0.25 * 2 ** (attempt - retry_num), 2.0))
    stats.gave_up[job.kind] += 1


async def send_all(jobs: list[Job], slack: Balancer, teams: Balancer, stats: Stats, args: argparse.Namespace,
                   faults: list[tuple[float, Any]]) -> None:
    """Pace the jobs at --rate; run the fault actions when their share of jobs has been launched."""
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        pending_faults = sorted(faults, key=lambda f: f[0])
        last_report = start
        for n, job in enumerate(jobs):
            while pending_faults and n >= pending_faults[0][0] * len(jobs):
                _, action = pending_faults.pop(0)
                tasks.add(asyncio.create_task(action()))
            delay = start + n / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            balancer = slack if job.kind == "slack" else teams
            first = balancer.pick()
            tasks.add(asyncio.create_task(deliver(session, job, balancer, stats, first=first)))
            if job.duplicate_after is not None:
                stats.duplicates_sent += 1
                tasks.add(asyncio.create_task(_duplicate(session, job, balancer, stats, first.index)))
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                log(f"sent {n + 1}/{len(jobs)}")
            tasks = {t for t in tasks if not t.done()}
        if tasks:
            await asyncio.gather(*tasks)


async def _duplicate(session: aiohttp.ClientSession, job: Job, balancer: Balancer, stats: Stats, first: int) -> None:
    await asyncio.sleep(job.duplicate_after or 0.0)
    await deliver(session, job, balancer, stats, retry_num=1, avoid=first)


# -- what arrived ------------------------------------------------------------------------------------

def slack_answers(api: SlackAPIServer) -> tuple[Counter[str], dict[str, float], int]:
    """Answers per channel, the time of each channel's first one, and apologies seen.

    An answer is a chat.postMessage that is not the "thinking" indicator, or the chat.update
    that replaces an indicator with the answer (no other updates happen in this run).
    """
    counts: Counter[str] = Counter()
    first: dict[str, float] = {}
    sorry = 0
    for call in api.requests:
        if call.method not in ("chat.postMessage", "chat.update"):
            continue
        text = str(call.body.get("text") or "")
        if call.method == "chat.postMessage" and text == THINKING_TEXT:
            continue
        channel = str(call.body.get("channel"))
        counts[channel] += 1
        first.setdefault(channel, call.at)
        sorry += SORRY in text
    return counts, first, sorry


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError:
            meta = {}
    return meta if isinstance(meta, dict) else {}


def doubled(jobs: list[Job], api: SlackAPIServer, connector: BotConnectorServer, t0: float,
            limit: int = 20) -> list[dict[str, Any]]:
    """The jobs answered more than once, each with every call counted as its answer (so a failure explains itself).

    Slack: method, seconds after the run started, the message ts updated or thread, the metadata mark
    (`coach_thinking`, `coach_answer`) and the text's start. Teams: kind (send/reply), seconds, replyToId, text.
    """
    slack_counts, _, _ = slack_answers(api)
    teams_counts, _, _ = teams_answers(connector)
    keys = {("slack", j.key) for j in jobs if j.kind == "slack" and slack_counts[j.key] >= 2}
    keys |= {("teams", j.key) for j in jobs if j.kind == "teams" and teams_counts[j.key] >= 2}
    out: list[dict[str, Any]] = []
    for kind, key in sorted(keys)[:limit]:
        job = next(j for j in jobs if j.kind == kind and j.key == key)
        calls: list[dict[str, Any]] = []
        if kind == "slack":
            for call in api.requests:
                if call.method.startswith(("chat.", "conversations.")) and str(call.body.get("channel")) == key:
                    calls.append({"method": call.method, "s": round(call.at - t0, 2),
                                  "ts": call.body.get("ts"), "thread_ts": call.body.get("thread_ts"),
                                  "mark": _metadata(call.body).get("event_type"),
                                  "inbound": (_metadata(call.body).get("event_payload") or {}).get("inbound"),
                                  "text": str(call.body.get("text") or "")[:40]})
        else:
            for record in list(connector.requests):
                if str(record.conversation_id) == key:
                    calls.append({"kind": record.kind, "type": record.type, "s": round(record.at - t0, 2),
                                  "reply_to": record.body.get("replyToId"),
                                  "text": str(record.body.get("text") or "")[:40]})
        out.append({"kind": kind, "key": key, "index": job.index, "attempts": job.attempts,
                    "acked_by": sorted(job.acked_by), "duplicate_after": job.duplicate_after, "calls": calls})
    return out


def teams_answers(connector: BotConnectorServer) -> tuple[Counter[str], dict[str, float], int]:
    counts: Counter[str] = Counter()
    first: dict[str, float] = {}
    sorry = 0
    for record in list(connector.requests):
        if record.kind in ("send", "reply") and record.type == "message":
            counts[str(record.conversation_id)] += 1
            first.setdefault(str(record.conversation_id), record.at)
            sorry += SORRY in str(record.body.get("text") or "")
    return counts, first, sorry


def handoff_posts(api: SlackAPIServer) -> Counter[str]:
    """Tickets posted as new handoffs (`opened`) in the integrators' channel, counted."""
    tickets: Counter[str] = Counter()
    for call in api.calls("chat.postMessage", lambda c: c.body.get("channel") == INTEGRATOR_CHANNEL):
        metadata = call.body.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except json.JSONDecodeError:
                metadata = {}
        payload = metadata.get("event_payload") or {}
        if payload:
            if payload.get("event") == "opened":
                tickets[str(payload.get("ticket"))] += 1
            continue
        if call.body.get("thread_ts"):  # without metadata: a threaded post is an update, not the handoff
            continue
        match = TICKET.search(json.dumps(call.body))
        if match:
            tickets[f"{match.group(1)}-{match.group(2)}"] += 1
    return tickets


def database_view(url: str) -> tuple[list[str], dict[str, int]]:
    """Every escalation's ticket, and outbox rows per status (empty when the outbox is not there)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, target FROM escalations ORDER BY id")).all()
            prefix = {"helpdesk": "H", "integrator": "I"}
            tickets = [f"{prefix.get(target, 'E')}-{rid:04d}" for rid, target in rows]
            try:
                outbox = dict(conn.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all())
            except Exception:  # noqa: BLE001  (no outbox table in this version)
                outbox = {}
        return tickets, {str(k): int(v) for k, v in outbox.items()}
    finally:
        engine.dispose()


async def wait_for_answers(jobs: list[Job], api: SlackAPIServer, connector: BotConnectorServer, db_url: str,
                           stall: float) -> None:
    """Until every job has its answer and the outbox is drained, or nothing has changed for `stall` seconds.

    A backlog drains at the processes' pace (the embedding model is CPU-bound), so the wait
    lasts as long as answers keep arriving; --max-seconds bounds the whole run regardless.
    """
    slack_keys = [j.key for j in jobs if j.kind == "slack"]
    teams_keys = [j.key for j in jobs if j.kind == "teams"]
    last_report = 0.0
    last_state: tuple[int, int] | None = None
    changed_at = time.monotonic()
    while time.monotonic() - changed_at < stall:
        slack_counts, _, _ = slack_answers(api)
        teams_counts, _, _ = teams_answers(connector)
        missing = sum(1 for k in slack_keys if not slack_counts[k]) + sum(1 for k in teams_keys if not teams_counts[k])
        try:
            _, outbox = await asyncio.to_thread(database_view, db_url)
        except Exception:  # noqa: BLE001  (the database may be restarting)
            outbox = {"unknown": 1}
        busy = outbox.get("pending", 0) + outbox.get("sending", 0) + outbox.get("unknown", 0)
        if missing == 0 and busy == 0:
            return
        if (missing, busy) != last_state:
            last_state, changed_at = (missing, busy), time.monotonic()
        if time.monotonic() - last_report > 5:
            last_report = time.monotonic()
            log(f"waiting: {missing} unanswered, outbox {outbox or 'empty'}")
        await asyncio.sleep(0.5)


# -- the run ---------------------------------------------------------------------------------------

def bot_env(base: dict[str, str], db_url: str, chroma_url: str, data_dir: Path, api: SlackAPIServer) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith(("COACH_", "SLACK_", "Microsoft", "OPENAI_"))}
    env.update({
        "COACH_DATABASE_URL": db_url,
        "COACH_CHROMA_URL": chroma_url,
        "COACH_DATA_DIR": str(data_dir),
        "COACH_COMPOSER": "template",
        "COACH_LOG_LEVEL": "WARNING",
        "COACH_ENV_FILE": str(data_dir / "no.env"),  # never a developer's .env
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "COACH_SLACK_API_URL": api.base_url,
        "COACH_SLACK__INTEGRATOR_CHANNEL": INTEGRATOR_CHANNEL,
        "COACH_OUTBOX__POLL_SECONDS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    })
    return env


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="coach-load-"))
    started = time.monotonic()
    pg = chroma = api = connector_thread = None
    bots: list[Bot] = []
    keep = args.keep
    try:
        log(f"starting PostgreSQL and Chroma in {work}")
        pg = PostgresServer().start()
        db_url = pg.create_database("coach_load")
        chroma = ChromaServer(work / "chroma").start()
        api = SlackAPIServer().start()
        connector_thread = ServiceThread(BotConnectorServer)
        connector: BotConnectorServer = connector_thread.start()
        env = bot_env(dict(os.environ), db_url, chroma.url, work / "data", api)
        for step in (["db", "upgrade"], ["kb", "import", str(ROOT / "knowledge" / "starter")]):
            # Once, before the processes start: N processes would otherwise all import at once.
            subprocess.run([sys.executable, "-m", "adapters.cli", *step], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        for kind, count in (("slack", args.processes), ("teams", args.teams_processes)):
            for i in range(count):
                bot = Bot(kind, i, free_port(), work / f"{kind}-{i}.log")
                bot.start(env)
                bots.append(bot)
        log(f"started {args.processes} Slack and {args.teams_processes} Teams bot processes; waiting for them")
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, bots, timeout=args.startup_seconds)
        log(f"all healthy after {time.monotonic() - started:.0f}s")

        jobs = build_jobs(args, connector.url)
        slack = Balancer([b for b in bots if b.kind == "slack"])
        teams = Balancer([b for b in bots if b.kind == "teams"])
        stats = Stats()
        faults: list[tuple[float, Any]] = []
        fault_log: list[str] = []
        killed: int | None = None
        if args.faults:
            victim = slack.bots[-1]
            killed = victim.index

            async def kill_bot() -> None:
                victim.kill()
                fault_log.append(f"killed slack bot {victim.index} at {time.monotonic() - t0:.1f}s")
                log(fault_log[-1])

            async def restart_postgres() -> None:
                log("restarting PostgreSQL")
                await asyncio.to_thread(pg.restart, down_seconds=args.pg_down_seconds)
                fault_log.append(f"restarted PostgreSQL (down {args.pg_down_seconds}s) at {time.monotonic() - t0:.1f}s")
                log(fault_log[-1])

            faults = [(0.33, kill_bot), (0.5, restart_postgres)]
        t0 = time.monotonic()
        await send_all(jobs, slack, teams, stats, args, faults)
        sent_seconds = time.monotonic() - t0
        log(f"all {len(jobs)} sent in {sent_seconds:.1f}s; waiting for answers and handoffs")
        await wait_for_answers(jobs, api, connector, db_url, stall=args.stall_seconds)
        await asyncio.sleep(args.settle_seconds)  # late duplicates would arrive now
        result = summarize(jobs, stats, api, connector, db_url, args, t0, bots, fault_log, killed=killed)
        # Something went wrong: keep the bots' logs to find out what.
        keep = keep or bool(result["lost"] or result["answered_twice"] or result["exited"])
        return result
    except BaseException:
        keep = True
        raise
    finally:
        for bot in bots:
            bot.stop()
        if connector_thread is not None:
            connector_thread.stop()
        if api is not None:
            api.stop()
        if chroma is not None:
            chroma.cleanup()
        if pg is not None:
            pg.cleanup()
        if keep:
            log(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def summarize(jobs: list[Job], stats: Stats, api: SlackAPIServer, connector: BotConnectorServer, db_url: str,
              args: argparse.Namespace, t0: float, bots: list[Bot], fault_log: list[str],
              killed: int | None = None) -> dict[str, Any]:
    slack_counts, slack_first, slack_sorry = slack_answers(api)
    teams_counts, teams_first, teams_sorry = teams_answers(connector)
    per_job = []
    times = []
    for job in jobs:
        n = slack_counts[job.key] if job.kind == "slack" else teams_counts[job.key]
        per_job.append(n)
        at = slack_first.get(job.key) if job.kind == "slack" else teams_first.get(job.key)
        if n and at is not None:
            times.append(at)
    tickets, outbox = database_view(db_url)
    posted = handoff_posts(api)
    answered = sum(1 for n in per_job if n >= 1)
    span = (max(times) - t0) if times else 0.0
    return {
        "events": len(jobs),
        "answered_once": sum(1 for n in per_job if n == 1),
        "answered_twice": sum(1 for n in per_job if n >= 2),
        "lost": sum(1 for n in per_job if n == 0),
        "ack_p50_ms": _round(pct(stats.ack_ms, 50)),
        "ack_p99_ms": _round(pct(stats.ack_ms, 99)),
        "replies_per_second": round(answered / span, 1) if span else None,
        "escalations": len(tickets),
        "escalations_delivered_once": sum(1 for t in tickets if posted[t] == 1),
        "escalations_delivered_twice": sum(1 for t in tickets if posted[t] >= 2),
        "escalations_undelivered": sum(1 for t in tickets if posted[t] == 0),
        "slack_events": sum(1 for j in jobs if j.kind == "slack"),
        "teams_activities": sum(1 for j in jobs if j.kind == "teams"),
        "duplicates_sent": stats.duplicates_sent,
        "slack_retries": stats.retries["slack"],
        "teams_retries": stats.retries["teams"],
        "gave_up": dict(stats.gave_up),
        "apologies": slack_sorry + teams_sorry,
        "teams_p50_ms": _round(pct(stats.teams_ms, 50)),
        "teams_p99_ms": _round(pct(stats.teams_ms, 99)),
        "outbox": outbox,
        "processes": {"slack": args.processes, "teams": args.teams_processes,
                      "alive": sum(1 for b in bots if b.alive)},
        # Processes that ended by themselves (not the one --faults killed), with their exit status.
        "exited": [f"{b.kind}-{b.index}: exit {b.proc.returncode}" for b in bots
                   if not b.alive and b.proc is not None and not (b.kind == "slack" and b.index == killed)],
        "faults": fault_log if args.faults else None,
        # Lost events by where they were: acknowledged only by the process that was killed (its
        # queue died with it), acknowledged elsewhere (dropped by a process that stayed up), never acknowledged.
        "lost_where": {
            "acked_by_killed_process": sum(1 for j, n in zip(jobs, per_job) if n == 0 and j.kind == "slack"
                                           and killed is not None and j.acked_by == {killed}),
            "acked_by_a_live_process": sum(1 for j, n in zip(jobs, per_job) if n == 0 and j.acked_by
                                           and not (j.kind == "slack" and killed is not None
                                                    and j.acked_by == {killed})),
            "never_acked": sum(1 for j, n in zip(jobs, per_job) if n == 0 and not j.acked_by),
        },
        "seconds": round(time.monotonic() - t0, 1),
        "doubled": doubled(jobs, api, connector, t0),
        # Acks that took over a second: platform, process, seconds after the first send, ms (when, and where).
        "slow_acks": [[kind, index, round(at - t0, 1), round(ms)] for kind, index, at, ms in sorted(stats.slow)][:40],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000, help="Slack events (unique; duplicates come on top)")
    parser.add_argument("--teams", type=int, default=500, help="Teams activities")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of Slack events delivered again")
    parser.add_argument("--escalations", type=float, default=0.05, help="share of messages that need a person")
    parser.add_argument("--processes", type=int, default=3, help="`coach serve slack` processes")
    parser.add_argument("--teams-processes", type=int, default=None, help="`coach serve teams` processes "
                        "(default: as many as --processes)")
    parser.add_argument("--rate", type=float, default=10.0, help="messages sent per second (both platforms)")
    parser.add_argument("--faults", action="store_true", help="kill a bot process and restart PostgreSQL mid-load")
    parser.add_argument("--pg-down-seconds", type=float, default=2.0)
    parser.add_argument("--startup-seconds", type=float, default=300.0)
    parser.add_argument("--stall-seconds", type=float, default=60.0,
                        help="stop waiting for answers when none has arrived for this long")
    parser.add_argument("--settle-seconds", type=float, default=3.0)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="hard limit for the whole run")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the work directory with the bots' logs")
    args = parser.parse_args(argv)
    if args.teams_processes is None:
        args.teams_processes = args.processes
    # Bounded by design: this is a loopback benchmark, not a way to flood anything.
    if not (0 <= args.events <= 20000 and 0 <= args.teams <= 5000 and args.events + args.teams > 0):
        parser.error("--events must be 0..20000 and --teams 0..5000 (and not both 0)")
    if not (1 <= args.processes <= 8 and 1 <= args.teams_processes <= 8):
        parser.error("--processes and --teams-processes must be 1..8")
    if args.faults and args.processes < 2:
        parser.error("--faults needs --processes 2 or more (one is killed)")
    if not (0 < args.rate <= 500):
        parser.error("--rate must be in (0, 500]")
    if not (0 <= args.duplicates <= 1 and 0 <= args.escalations <= 1):
        parser.error("--duplicates and --escalations are shares between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        result = asyncio.run(asyncio.wait_for(run(args), timeout=args.max_seconds))
    except asyncio.TimeoutError:
        result = {"events": args.events + args.teams, "error": f"stopped after --max-seconds {args.max_seconds}"}
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None)
        result = {"events": args.events + args.teams,
                  "error": f"{exc}" + (f"\n{detail.decode(errors='replace')[-1500:]}" if detail else "")}
    print(json.dumps(result), flush=True)
    ok = ("error" not in result and result["answered_once"] == result["events"]
          and result["escalations_delivered_once"] == result["escalations"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
