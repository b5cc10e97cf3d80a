"""Teams endpoint under load: how long /api/messages takes to answer, and one answer per activity.

usage: python benchmarks/teams_ack.py [--activities 120] [--rate 10] [--inside-request] [--timeout 300]

Builds the runtime over the test knowledge base in a temporary directory, serves the real Teams
app (CloudAdapter, emulator mode) on loopback with the Bot Connector stand-in from
tests/bot_connector_server.py, and posts coaching questions at `--rate` a second (0: all at once),
each in its own chat. `--inside-request` answers inside the HTTP request instead, as before the
inbound queue, for comparison. Prints one JSON line: the HTTP statuses, answer time p50/p90/max
in ms, and how many activities got exactly one answer. Exit status 1 unless every activity got
exactly one answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.teams.server import BOT_KEY, WORKER_KEY, build_app  # noqa: E402
from adapters.wiring import build_runtime  # noqa: E402
from bot.settings import Settings  # noqa: E402
from knowledge.minilm import MiniLMEmbedder  # noqa: E402
from knowledge.parser import load_folder  # noqa: E402
from knowledge.store import KnowledgeStore, open_client  # noqa: E402
from tests.bot_connector_server import BotConnectorServer, TeamsActivities  # noqa: E402
from tests.scenarios import SCENARIOS  # noqa: E402

QUESTIONS = [s.text for s in SCENARIOS if s.route == "coach"]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 1) if ordered else 0.0


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, object]:
    settings = Settings(data_dir=data_dir, config_dir=ROOT / "config")
    KnowledgeStore(open_client(data_dir=data_dir, chroma_url=None), MiniLMEmbedder()).sync(
        load_folder(ROOT / "tests" / "fixtures" / "kb").entries)
    runtime = build_runtime(settings, auto_starter=False)
    app = build_app(runtime)
    if args.inside_request:
        app[BOT_KEY].enqueue = None
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/messages"
    try:
        async with BotConnectorServer() as connector, aiohttp.ClientSession() as session:
            acts = TeamsActivities(connector.url)
            chats = [f"a:1bench-{i}" for i in range(args.activities)]

            async def post(i: int) -> tuple[int, float]:
                await asyncio.sleep(i / args.rate if args.rate else 0)
                data = acts.personal(QUESTIONS[i % len(QUESTIONS)], conversation=chats[i])
                started = time.monotonic()
                async with session.post(url, json=data) as response:
                    await response.read()
                    return response.status, (time.monotonic() - started) * 1000

            results = await asyncio.gather(*(post(i) for i in range(args.activities)))
            try:
                await connector.wait_for(lambda r: r.type == "message", args.activities, timeout=args.timeout)
            except AssertionError:
                pass  # counted below
            await app[WORKER_KEY].idle()
            await asyncio.sleep(0.5)  # anything sent twice would show now
            answers = Counter(r.conversation_id for r in connector.messages())
    finally:
        await runner.cleanup()
        runtime.close(flush_seconds=0.5)
    took = [ms for _, ms in results]
    return {"activities": args.activities, "rate": args.rate,
            "mode": "inside-request" if args.inside_request else "queued",
            "statuses": dict(Counter(status for status, _ in results)),
            "http_p50_ms": pct(took, 50), "http_p90_ms": pct(took, 90), "http_max_ms": round(max(took), 1),
            "answered_once": sum(1 for c in chats if answers[c] == 1),
            "answered_twice": sum(1 for c in chats if answers[c] > 1),
            "lost": sum(1 for c in chats if answers[c] == 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activities", type=int, default=120)
    parser.add_argument("--rate", type=float, default=10.0, help="activities a second; 0 sends all at once")
    parser.add_argument("--inside-request", action="store_true", help="answer inside the request (the old way)")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    if not 1 <= args.activities <= 2000:
        parser.error("--activities must be 1..2000")
    with tempfile.TemporaryDirectory(prefix="teams-ack-") as tmp:
        result = asyncio.run(run(args, Path(tmp) / "data"))
    print(json.dumps(result))
    return 0 if result["answered_once"] == args.activities else 1


if __name__ == "__main__":
    sys.exit(main())
