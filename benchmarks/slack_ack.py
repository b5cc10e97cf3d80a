"""Slack HTTP mode under a burst: ack latency, and exactly one answer per event.

usage: python benchmarks/slack_ack.py [--events 200] [--retries 40] [--kb DIR] [--timeout 300]

Starts `coach serve slack` in HTTP mode as its own process (the production path), pointed at the
loopback Slack Web API stand-in from tests/slack_api_server.py, then fires N signed app_mention
events at POST /slack/events all at once, plus some of them again with X-Slack-Retry-Num (as Slack
does when an ack is slow). Prints the ack latency (target p99 < 1 s) and, once every answer has
arrived or the timeout passed, how many answers each event got (target: exactly one each).
Bounded: stops by itself; exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.slack_api_server import (  # noqa: E402
    SIGNING_SECRET, SlackAPIServer, app_mention, event_body, sign,
)

BOT_TOKEN = "xoxb-1234-5678-benchmark"


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of a list of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def prepare_kb(kb: Path, data_dir: Path, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "adapters.cli", "kb", "import", str(kb)], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)


def start_server(env: dict[str, str], log_path: Path, workers: int = 2,
                 timeout: float = 120) -> tuple[subprocess.Popen, str]:
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "slack", "--port", "0", "--host",
                             "127.0.0.1", "--workers", str(workers)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text()
        m = re.search(r"Slack ready .* on 127\.0\.0\.1:(\d+)", text)
        if m:
            return proc, f"http://127.0.0.1:{m.group(1)}/slack/events"
        if proc.poll() is not None:
            raise SystemExit(f"coach serve slack exited early:\n{text}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"coach serve slack did not start within {timeout}s:\n{log_path.read_text()}")


async def fire(url: str, bodies: list[tuple[str, dict[str, str]]]) -> list[tuple[int, float]]:
    """POST every body at once; returns (status, seconds) per request, in order."""
    connector = aiohttp.TCPConnector(limit=0)  # all at once: this is the burst being measured
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def one(body: str, extra: dict[str, str]) -> tuple[int, float]:
            headers = {"Content-Type": "application/json", **sign(body), **extra}
            started = time.monotonic()
            try:
                async with session.post(url, data=body.encode(), headers=headers) as resp:
                    await resp.read()
                    return resp.status, time.monotonic() - started
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return 0, time.monotonic() - started

        return await asyncio.gather(*(one(b, h) for b, h in bodies))


def answers_by_thread(api: SlackAPIServer) -> tuple[Counter, dict[str, float], int]:
    """Messages posted per thread, when each thread got its final answer, and thinking indicators."""
    posts = api.calls("chat.postMessage")
    per_thread = Counter(c.body.get("thread_ts") for c in posts)
    answered_at: dict[str, float] = {}
    thinking = 0
    for call in posts:
        blocks = json.dumps(call.body.get("blocks") or [])
        thinking += "coach.thinking" in blocks
        if "coach.reply" in blocks:
            answered_at[call.body.get("thread_ts")] = call.at
    for call in api.calls("chat.update"):  # a thinking indicator replaced by its answer
        posted = api.messages.get((str(call.body.get("channel")), str(call.body.get("ts"))), {})
        if posted.get("thread_ts") and "coach.reply" in json.dumps(call.body.get("blocks") or []):
            answered_at[posted["thread_ts"]] = call.at
    return per_thread, answered_at, thinking


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--retries", type=int, default=40, help="events sent a second time with X-Slack-Retry-Num")
    parser.add_argument("--kb", type=Path, default=ROOT / "tests" / "fixtures" / "kb")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up waiting for answers after this")
    parser.add_argument("--workers", type=int, default=2, help="coach serve slack --workers (its template default)")
    args = parser.parse_args()

    questions = [
        "how can my year 5s brainstorm together on padlet?", "how do I make a quick exit ticket in google forms?",
        "I want my students to record a podcast about their town", "the projector in room 12 shows no signal",
        "how could I use SAMR to reflect on a lesson?", "can students use AI to help write essays?",
    ]
    random.seed(4)
    with tempfile.TemporaryDirectory() as tmp, SlackAPIServer() as api:
        data = Path(tmp) / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COACH_"))}
        env.update({"COACH_DATA_DIR": str(data), "COACH_ENV_FILE": os.devnull, "SLACK_BOT_TOKEN": BOT_TOKEN,
                    "SLACK_SIGNING_SECRET": SIGNING_SECRET, "COACH_SLACK_API_URL": api.base_url})
        print(f"importing {args.kb} ...", file=sys.stderr)
        prepare_kb(args.kb, data, env)
        proc, url = start_server(env, Path(tmp) / "server.log", workers=args.workers)
        try:
            events = [app_mention(random.choice(questions), channel=f"C0BENCH{i % 7:03d}") for i in range(args.events)]
            bodies = [(event_body(e, event_id=f"Ev0BENCH{i:05d}"), {}) for i, e in enumerate(events)]
            print(f"firing {len(bodies)} events at {url} ...", file=sys.stderr)
            load_before = os.getloadavg()[0]
            started = time.monotonic()
            first = asyncio.run(fire(url, bodies))
            load_burst = os.getloadavg()[0]
            retried = random.sample(range(args.events), min(args.retries, args.events))
            retry_bodies = [(bodies[i][0], {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
                            for i in retried]
            second = asyncio.run(fire(url, retry_bodies)) if retry_bodies else []
            deadline = started + args.timeout
            threads = {e["ts"] for e in events}
            while time.monotonic() < deadline:
                _, answered_at, _ = answers_by_thread(api)
                if threads <= set(answered_at):
                    break
                time.sleep(0.2)
            api.settle(quiet=1.0, timeout=10)  # let any (wrong) second answer arrive before counting
            per_thread, answered_at, thinking = answers_by_thread(api)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    acks = [s for _, s in first + second]
    statuses = Counter(code for code, _ in first + second)
    exactly_one = sum(1 for e in events if per_thread.get(e["ts"]) == 1 and e["ts"] in answered_at)
    none = sum(1 for e in events if e["ts"] not in answered_at)
    more = sum(1 for e in events if per_thread.get(e["ts"], 0) > 1)
    sent_at = started
    answer_lat = [answered_at[e["ts"]] - sent_at for e in events if e["ts"] in answered_at]
    p99 = pct(acks, 99)
    ok = p99 < 1.0 and exactly_one == len(events) and statuses.get(200, 0) == len(acks)

    rows = [
        ("events fired at once", f"{len(events)} (server --workers {args.workers}, {os.cpu_count()} CPUs)"),
        ("machine load average (1 min) before / after burst", f"{load_before:.1f} / {load_burst:.1f}"),
        ("retries (X-Slack-Retry-Num: 1)", f"{len(second)}"),
        ("HTTP statuses", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))),
        ("ack latency p50", f"{pct(acks, 50) * 1000:.0f} ms"),
        ("ack latency p99 (target < 1 s)", f"{p99 * 1000:.0f} ms"),
        ("ack latency max", f"{max(acks) * 1000:.0f} ms"),
        ("events answered exactly once", f"{exactly_one} / {len(events)}"),
        ("events not answered", f"{none}"),
        ("events answered more than once", f"{more}"),
        ("thinking indicators (then updated)", f"{thinking}"),
        ("answer latency p50 / p99", f"{pct(answer_lat, 50):.1f} s / {pct(answer_lat, 99):.1f} s"
         if answer_lat else "-"),
        ("result", "PASS" if ok else "FAIL"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
