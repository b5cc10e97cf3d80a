"""Planted student data through every exit, on loopback: what was planted, what leaked.

Each line of a set is {"text": ..., "planted": [{"kind": "name", "value": "Kayden"}, ...],
"tools": ["Seesaw"]}. Every message goes through:

- masker   the masker on its own (`Masker.mask`)
- email    an integrator handoff delivered by the outbox to an SMTP sink (aiosmtpd), subject and body
- webhook  the same handoff to a webhook receiver (signed JSON)
- card     the Slack/Teams integrators' card text of that handoff (`HandoffContext.channel_text`)
- llm      a coaching reply by the LLM composer, message and history, to an OpenAI-compatible recorder
- embed    remote embeddings (COACH_EMBEDDINGS=openai) to the same recorder
- report   an example question as `coach report` and its HTML page quote it (`Scrubber`)

A planted value leaks when it is found in what the exit sent: the whole value (a name: any of
its words but titles and particles), case-sensitively for names and class codes, in any case
otherwise. `report` is the masking `coach report` and its HTML page apply to every quoted example.
A tool is left alone when its name is still in what was sent, as the teacher wrote it ("iPads",
"AirDropped" keep "iPad" and "AirDrop").

    .venv/bin/python benchmarks/privacy.py                      # the team set, without and with a roster
    .venv/bin/python benchmarks/privacy.py --set PATH --exits masker,email,llm
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from email import policy
from email.parser import BytesParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.privacy.kinds import Kind  # noqa: E402

DEFAULT_SET = ROOT / "eval" / "privacy" / "planted-team.jsonl"
EXITS = ("masker", "email", "webhook", "card", "llm", "embed", "report")
KINDS = [k.value for k in Kind]
# The channel card carries the ticket's title and fields, not the teacher's whole message: tools are not scored there.
NO_MESSAGE_TEXT = {"card"}
_NOT_NAME_WORDS = {"mr", "mrs", "ms", "miss", "mx", "dr", "sir", "van", "der", "de", "da", "von", "la", "le", "di", "du"}


def leaked(kind: str, value: str, sent: str) -> bool:
    """Whether a planted value can be read in what an exit sent."""
    if kind == Kind.NAME.value:
        words = [w.strip("'\"’.,") for w in value.split()]
        words = [w for w in words if len(w) >= 2 and w.lower() not in _NOT_NAME_WORDS]
        return any(re.search(rf"(?<![\w\[-]){re.escape(w)}(?![\w-])", sent) for w in words)
    # Class codes as written ("4O" is not the "4o" of a model name); the rest in any case.
    flags = 0 if kind == Kind.CLASS_CODE.value else re.IGNORECASE
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", sent, flags) is not None


def tool_kept(tool: str, sent: str) -> bool:
    """Whether a tool's name can still be read in what was sent, as written: "iPads", "AirDropped", "Seesaw's"."""
    inflected = r"(?:s|es|'s|’s|ed|d|ped|ing|ping)?"
    return re.search(rf"(?<!\w){re.escape(tool)}{inflected}(?!\w)", sent, re.IGNORECASE) is not None


def load_set(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for i, row in enumerate(rows, 1):
        if "text" not in row or not isinstance(row.get("planted", []), list):
            raise SystemExit(f"{path}:{i}: each line needs 'text' and a 'planted' list")
    return rows


class Run:
    """The loopback servers and the coach parts for one pass over a set."""

    def __init__(self, data_dir: Path, exits: list[str], roster_names: list[str] | None) -> None:
        from bot.settings import Settings
        from bot.privacy.masker import forget_shared_maskers, shared_masker
        from bot.privacy.roster import Roster

        self.exits = exits
        self.stack: list = []
        self.data_dir = data_dir
        if roster_names:
            roster = Roster.load(data_dir)
            roster.add(roster_names)
            roster.save(data_dir)
        forget_shared_maskers()
        config = {"data_dir": data_dir, "config_dir": ROOT / "config",
                  "outbox": {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2, "poll_seconds": 0.05}}
        self.smtp = self.webhook = self.openai = None
        if {"email", "webhook"} & set(exits):
            from webhook_receiver import SmtpSink, WebhookReceiver

            self.smtp = SmtpSink().__enter__()
            self.webhook = WebhookReceiver("bench-secret").__enter__()
            self.stack += [self.smtp, self.webhook]
            config["email"] = {"host": "127.0.0.1", "port": self.smtp.port, "starttls": False,
                               "from_addr": "coach@school.example", "integrator_to": "tic@school.example",
                               "helpdesk_to": "helpdesk@school.example"}
            config["webhook"] = {"url": self.webhook.url, "secret": "bench-secret"}
        if {"llm", "embed"} & set(exits):
            from openai_server import OpenAIServer, chat

            self.openai = OpenAIServer().__enter__()
            self.openai.default = chat({"reply": "What would you like them to do first?", "sources": []})
            self.stack.append(self.openai)
            config["openai"] = {"api_key": "bench-key", "base_url": self.openai.url, "max_retries": 0}
        self.settings = Settings(**config)
        self.masker = shared_masker(self.settings)

    def close(self) -> None:
        for thing in reversed(self.stack):
            thing.__exit__(None, None, None)

    def sent(self, texts: list[str]) -> dict[str, list[str]]:
        """Per exit, what left the machine for each text (same order as `texts`)."""
        out: dict[str, list[str]] = {}
        if "masker" in self.exits:
            out["masker"] = [self.masker.mask(t).text for t in texts]
        if "report" in self.exits:
            from bot.report.masking import Scrubber

            scrub = Scrubber([], self.masker)
            out["report"] = [scrub(t, 10_000) for t in texts]
        if {"email", "webhook", "card"} & set(self.exits):
            out.update(self._handoffs(texts))
        if "llm" in self.exits:
            out["llm"] = self._llm(texts)
        if "embed" in self.exits:
            out["embed"] = self._embed(texts)
        return {k: v for k, v in out.items() if k in self.exits}

    def _handoffs(self, texts: list[str]) -> dict[str, list[str]]:
        from adapters.delivery import build_delivery
        from bot.handoff.desk import EscalationEvent
        from bot.handoff.context import build_context
        from bot.handoff.escalations import Escalations
        from bot.state.database import StateDB
        from bot.state.memory import ConversationMemory
        from bot.triage.categories import Category
        from bot.triage.router import DecidedBy, Decision

        db = StateDB(self.settings.state_url)
        escalations, memory = Escalations(db), ConversationMemory(db)
        delivery = build_delivery(self.settings, db, escalations, memory) if self.smtp else None
        cards, ids = [], []
        decision = Decision.of(Category.HUMAN_REQUEST, DecidedBy.RULE)
        for i, text in enumerate(texts):
            key = f"bench:C{i}"
            opened = escalations.open_or_add(target="integrator", reason="teacher asked for a person",
                                             category="human_request", urgent=False, memory_key=key,
                                             platform="slack", user_id=f"U{i}", summary=text[:200],
                                             detail={"text": text})
            ids.append(opened.ticket)
            row = escalations.get(opened.id)
            cards.append(build_context(row, [], self.settings, event="opened").channel_text())
            if delivery is not None:
                delivery.listener.escalated(EscalationEvent(opened, text, decision, [], "slack", key))
        out = {"card": cards}
        if delivery is not None:
            mails = self.smtp.wait_for(len(texts), timeout=120 + len(texts))
            posts = self.webhook.wait_for(len(texts), timeout=120 + len(texts))
            delivery.close(5)
            by_ticket_mail: dict[str, str] = {}
            for mail in mails:
                msg = BytesParser(policy=policy.default).parsebytes(mail.as_bytes())
                body = msg.get_body(preferencelist=("plain",))
                by_ticket_mail[msg["X-Coach-Ticket"]] = f"{msg['Subject']}\n{body.get_content() if body else ''}"
            by_ticket_hook: dict[str, str] = {}
            for post in posts:
                body = post.body if hasattr(post, "body") else post
                ctx = body.get("context", body) if isinstance(body, dict) else {}
                by_ticket_hook[str(ctx.get("ticket"))] = json.dumps(body, ensure_ascii=False)
            out["email"] = [by_ticket_mail.get(t, "") for t in ids]
            out["webhook"] = [by_ticket_hook.get(t, "") for t in ids]
        return out

    def _llm(self, texts: list[str]) -> list[str]:
        from datetime import datetime, timezone

        from bot.compose.llm import LLMComposer
        from bot.compose.templates import CoachingRequest
        from bot.models import PastTurn

        composer = LLMComposer(self.settings, masker=self.masker)
        out = []
        for i, text in enumerate(texts):
            before = len(self.openai.chat_requests)
            # The message as history of a later turn too: history leaves the machine as well.
            past = [PastTurn(f"b{i}", text, "coach", "Thanks, tell me more.", [], 0.5, datetime.now(timezone.utc))]
            composer.compose(CoachingRequest(text=text, hits=[], confident=False, history=past))
            sent = [json.dumps(r.body, ensure_ascii=False) for r in self.openai.chat_requests[before:]]
            out.append("\n".join(sent))
        return out

    def _embed(self, texts: list[str]) -> list[str]:
        from adapters.wiring import make_embedder

        settings = self.settings.model_copy(update={"embeddings": "openai"})
        embedder = make_embedder(settings)
        out = []
        for text in texts:
            before = len(self.openai.embedding_requests)
            embedder.embed([text])
            out.append("\n".join(json.dumps(r.body, ensure_ascii=False) for r in self.openai.embedding_requests[before:]))
        return out


def score(rows: list[dict], sent: dict[str, list[str]]) -> dict:
    table: dict[str, dict[str, list[int]]] = {e: {k: [0, 0] for k in KINDS} for e in sent}
    tools: dict[str, list[int]] = {e: [0, 0] for e in sent}
    examples: dict[str, list[str]] = defaultdict(list)
    for exit_, outs in sent.items():
        for row, out in zip(rows, outs):
            for p in row.get("planted", []):
                cell = table[exit_].setdefault(p["kind"], [0, 0])
                cell[0] += 1
                if leaked(p["kind"], p["value"], out):
                    cell[1] += 1
                    examples[exit_].append(f"{p['kind']}: {p['value']!r}")
            for tool in row.get("tools", []) if exit_ not in NO_MESSAGE_TEXT else []:
                tools[exit_][0] += 1
                kept = tool_kept(tool, out)
                tools[exit_][1] += kept
                if not kept:
                    examples[exit_].append(f"tool masked: {tool!r} in {out[:120]!r}")
    return {"table": table, "tools": tools, "examples": examples}


def print_table(title: str, result: dict) -> None:
    table, tools = result["table"], result["tools"]
    kinds = [k for k in KINDS if any(table[e].get(k, [0])[0] for e in table)]
    print(f"\n{title}")
    print(f"{'exit':<8} " + " ".join(f"{k:>16}" for k in kinds) + f" {'tools kept':>12}")
    for exit_ in table:
        cells = " ".join(f"{f'{table[exit_][k][1]}/{table[exit_][k][0]} leaked':>16}" for k in kinds)
        kept, total = tools[exit_][1], tools[exit_][0]
        share = f"{100 * kept / total:.1f}%" if total else "n/a"
        print(f"{exit_:<8} {cells} {share:>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="a planted-data set (JSONL)")
    parser.add_argument("--exits", default=",".join(EXITS), help=f"comma-separated, of {','.join(EXITS)}")
    parser.add_argument("--roster", choices=("both", "without", "with"), default="both",
                        help="with: the set's planted names are loaded as the school's roster first")
    parser.add_argument("--limit", type=int, default=0, help="only the first N messages")
    parser.add_argument("--show", type=int, default=0, help="print up to N leaked values per exit")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    exits = [e.strip() for e in args.exits.split(",") if e.strip()]
    bad = [e for e in exits if e not in EXITS]
    if bad:
        raise SystemExit(f"unknown exit(s) {bad}; choose from {EXITS}")
    rows = load_set(args.set)
    if args.limit:
        rows = rows[: args.limit]
    texts = [r["text"] for r in rows]
    modes = ["without", "with"] if args.roster == "both" else [args.roster]
    results = {}
    print(f"{args.set.name}: {len(rows)} messages; exits {', '.join(exits)}")
    for mode in modes:
        names = [p["value"] for r in rows for p in r.get("planted", []) if p["kind"] == "name"] if mode == "with" else None
        with tempfile.TemporaryDirectory(prefix="coach-privacy-") as tmp:
            run = Run(Path(tmp), exits, names)
            try:
                started = time.perf_counter()
                run.masker.mask("Warm-up for Sam in 4B")  # the language pipeline loads on first use: not timed per message
                load_seconds = time.perf_counter() - started
                t0 = time.perf_counter()
                for t in texts:
                    run.masker.mask(t)
                per_message = (time.perf_counter() - t0) * 1000 / max(len(texts), 1)
                sent = run.sent(texts)
                result = score(rows, sent)
                result["mask_ms_per_message"] = round(per_message, 1)
                result["load_seconds"] = round(load_seconds, 2)
                result["seconds"] = round(time.perf_counter() - started, 1)
            finally:
                run.close()
        results[mode] = result
        print_table(f"{mode} a roster (masker {result['mask_ms_per_message']} ms/message, "
                    f"{result['load_seconds']} s to load)", result)
        for exit_, found in result["examples"].items():
            for line in found[: args.show]:
                print(f"  {exit_} {'lost' if line.startswith('tool') else 'leaked'} {line}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=list))


if __name__ == "__main__":
    main()
