"""`coach report` end to end: a synthetic school's turns, feedback and escalations in, aggregates out.

Every message below is written for these tests (none comes from the evaluation data). Turns are
recorded the way the coach records them, so the report runs on the real state database, the real
embedding model and tests/fixtures/kb.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.handoff.escalations import EscalationRow
from bot.report.insights import build_insights
from bot.report.results import Insights
from bot.report.vectors import VectorCache
from bot.settings import Settings
from bot.state.memory import ConversationMemory
from bot.state.database import StateDB

TESTS = Path(__file__).resolve().parent
CONFIG_DIR = TESTS.parent / "config"
FIXTURE_KB = TESTS / "fixtures" / "kb"
CHROMIUM = "/usr/bin/chromium"

PODCAST = [  # answered well from podcast-voices
    "how can my class record a short podcast about our local river?",
    "what do we need to start a class podcast of book reviews?",
    "ideas for a student radio show recorded on tablets",
    "how do I help shy kids speak up when we record our podcast?",
]
VR = [  # nothing in the knowledge base: no answer, low confidence
    "we were given a class set of VR headsets, where do we even start?",
    "is virtual reality worth the hype for a history lesson?",
    "how do I plan a virtual reality field trip for year 7?",
    "what's a sensible first lesson with the new VR headsets?",
    "my student Jamie Lee (jamie.lee@example.org) feels sick in the VR headsets, what else can he do?",
]
ESPORTS = [  # answered from the wrong entry; the teachers said "Not quite"
    "how do I start an esports club at lunchtime?",
    "our students want an esports league against other schools, any advice?",
    "is an esports team worth running for year 10?",
]
SOLO = [  # one teacher, three questions: a group too small to show
    "which 3D printer filament is safest for a primary classroom?",
    "how long does a 3D printer filament keyring take to print?",
    "can the 3D printer filament spool run overnight unattended?",
]
USER_IDS = [f"U0PODCAST{i}" for i in range(4)] + [f"t-vr-{i}" for i in range(5)] + \
    [f"t-esports-{i}" for i in range(3)] + ["t-solo", "U0REPLAY1", "U0REPLAY2", "U0REPLAY3", "t-worried", "t-old"]


def make_settings(data_dir: Path) -> Settings:
    """This module's settings: every example shown, so masking is checked on all of them."""
    return Settings(data_dir=data_dir, config_dir=CONFIG_DIR, insights={"max_examples": 10, "min_group_size": 3})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@dataclass
class School:
    settings: Settings
    store: object
    db: StateDB
    now: datetime
    turn_ids: dict[str, list[str]] = field(default_factory=dict)
    cache: VectorCache = field(default_factory=VectorCache)  # one embedding per question for the module

    def report(self, settings: Settings | None = None, **kwargs) -> Insights:
        return build_insights(self.db, self.store, settings or self.settings, now=self.now, cache=self.cache,
                              **kwargs)


def record(memory: ConversationMemory, *, platform: str, user: str, text: str, route: str = "coach",
           sources: list[str] | None = None, confidence: float = 0.8, at: datetime, key: str | None = None) -> str:
    return memory.record(memory_key=key or f"{platform}:{user}:{at.timestamp()}", platform=platform, user_id=user,
                         text=text, route=route, reason="test", reply="(reply)", sources=sources or [],
                         confidence=confidence, composer="template", created_at=at)


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory, embedder) -> School:
    """Three weeks of a school's questions, clicks and escalations; built once, only read by the tests."""
    from knowledge.parser import load_folder
    from knowledge.store import KnowledgeStore, open_client

    settings = make_settings(tmp_path_factory.mktemp("insights") / "data")
    store = KnowledgeStore(open_client(data_dir=settings.data_dir, chroma_url=None), embedder)
    store.sync(load_folder(FIXTURE_KB).entries)
    db = StateDB(settings.state_url)
    memory = ConversationMemory(db)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ids: dict[str, list[str]] = {"podcast": [], "vr": [], "esports": [], "solo": [], "replay": []}
    for i, text in enumerate(PODCAST):
        ids["podcast"].append(record(memory, platform="slack", user=f"U0PODCAST{i}", text=text,
                                     sources=["podcast-voices"], at=now - timedelta(days=2 + i)))
    for i, text in enumerate(VR):
        ids["vr"].append(record(memory, platform="teams", user=f"t-vr-{i}", text=text, sources=[], confidence=0.1,
                                at=now - timedelta(days=3 + 3 * i)))
    for i, text in enumerate(ESPORTS):
        ids["esports"].append(record(memory, platform="slack", user=f"t-esports-{i}", text=text,
                                     sources=["ai-essays"], confidence=0.6, at=now - timedelta(days=1 + i)))
    for i, text in enumerate(SOLO):
        ids["solo"].append(record(memory, platform="slack", user="t-solo", text=text, sources=[], confidence=0.05,
                                  at=now - timedelta(days=4, minutes=-i), key="slack:solo"))
    for i, text in enumerate(["record a podcast interview with a grandparent, how?",
                              "what microphone do we need for a class podcast?",
                              "how do I edit our podcast episode with the class?"]):
        ids["replay"].append(record(memory, platform="replay", user=f"U0REPLAY{i + 1}", text=text,
                                    sources=["podcast-voices"], at=now - timedelta(hours=5 + i)))
    # Not coaching: counted, never quoted.
    record(memory, platform="slack", user="t-worried", text="I'm worried about the bruises on a pupil's arms",
           route="integrator", at=now - timedelta(days=6))
    record(memory, platform="slack", user="t-worried", text="the projector in room 4 keeps flickering",
           route="helpdesk", at=now - timedelta(days=6, hours=1))
    record(memory, platform="slack", user="t-old", text="hello", route="other", at=now - timedelta(days=90))
    record(memory, platform="slack", user="t-old", text="how do we run a podcast club?", sources=["podcast-voices"],
           at=now - timedelta(days=90, minutes=-1))
    for turn_id, user in zip(ids["podcast"][:3], USER_IDS):
        assert memory.add_feedback(turn_id, "helped", user)
    for i, turn_id in enumerate(ids["esports"]):
        assert memory.add_feedback(turn_id, "not_quite", f"t-esports-{i}")

    def escalation(target: str, category: str, minutes_to_claim: float | None, *, status: str = "open",
                   platform: str = "slack", details: list | None = None, urgent: bool = False) -> None:
        created = now - timedelta(days=5)
        with db.session() as s:
            s.add(EscalationRow(
                target=target, reason="test", category=category, urgent=urgent, status=status,
                memory_key=f"{platform}:esc:{created.timestamp()}:{category}:{minutes_to_claim}", platform=platform,
                user_id="t-worried", summary="(summary)", details=details or [], created_at=created,
                updated_at=created, claimed_at=created + timedelta(minutes=minutes_to_claim)
                if minutes_to_claim is not None else None, claimed_by="U0INTEGRATOR"))

    escalation("helpdesk", "fault", 30, status="claimed")
    escalation("helpdesk", "fault", 90, status="claimed")
    escalation("helpdesk", "fault", None)
    escalation("integrator", "safeguarding", 10, status="claimed", urgent=True)
    escalation("integrator", "complex", 120, status="resolved", details=[
        {"text": "could you help me plan a whole podcast unit for my grade 4s?", "at": now.isoformat()},
        {"note": "Start with a two-minute interview; my student Priya Shah's group modelled it.", "from": "integrator"},
    ])
    escalation("helpdesk", "account", None, platform="replay")
    return School(settings, store, db, now, ids)


@pytest.fixture(scope="module")
def full(school: School) -> Insights:
    """The default report (replayed turns included, no period)."""
    return school.report()


def test_gaps_are_found_grouped_ranked_and_masked(full: Insights) -> None:
    ins = full
    assert len(ins.gaps) >= 2
    vr, esports = ins.gaps[0], ins.gaps[1]
    assert vr.rank == 1 and esports.rank == 2
    assert (vr.questions, vr.teachers) == (5, 5)
    assert vr.signals == {"no_answer": 5, "low_confidence": 5}
    assert re.search(r"vr|virtual reality|headsets", vr.label)
    assert (esports.questions, esports.teachers) == (3, 3)
    assert esports.signals.get("not_quite") == 3 and "esports" in esports.label
    # One teacher's three 3D-printing questions stay out, however many there are.
    assert all("filament" not in g.label and "3d" not in g.label for g in ins.gaps)
    assert ins.hidden_gaps.questions >= 3
    # Examples are masked: no student name, no e-mail address.
    assert len(vr.examples) == 5
    joined = " ".join(vr.examples)
    assert "Jamie" not in joined and "example.org" not in joined and "[NAME-1]" in joined
    assert all(q.endswith("?") for q in vr.asked) and len(vr.asked) == 5
    assert vr.grades == ["6-8"]  # "year 7"


def test_topics_samr_feedback_weeks_and_routes(full: Insights, school: School) -> None:
    ins = full
    title = school.store.get("podcast-voices").title
    podcast = [t for t in ins.topics if t.label == title]
    assert podcast, [t.label for t in ins.topics]
    assert podcast[0].questions >= 7 and podcast[0].entries[0] == "podcast-voices"  # 4 live + 3 replayed
    assert ins.samr["modification"] == 8  # podcast-voices is a modification entry, drawn on by 8 turns
    stats = {e.entry_id: e for e in ins.entries}
    assert (stats["podcast-voices"].helped, stats["podcast-voices"].not_quite) == (3, 0)
    assert (stats["ai-essays"].cited, stats["ai-essays"].not_quite) == (3, 3)
    assert ins.routes == {"coach": 19, "helpdesk": 1, "integrator": 1, "other": 1}
    assert sum(w.total for w in ins.weeks) == ins.totals["messages"] == 22
    mondays = [datetime.fromisoformat(w.week) for w in ins.weeks]
    assert all(m.weekday() == 0 for m in mondays)
    assert all((b - a).days == 7 for a, b in zip(mondays, mondays[1:]))  # empty weeks are kept
    assert ins.totals["teachers"] == 18


def test_escalations_by_reason_and_time_to_claim(full: Insights, school: School) -> None:
    ins = full
    by = {(e.target, e.category): e for e in ins.escalations}
    fault = by[("helpdesk", "fault")]
    assert (fault.count, fault.claimed, fault.open) == (3, 2, 1)
    assert fault.median_hours_to_claim == pytest.approx(1.0)  # 30 and 90 minutes
    assert by[("integrator", "safeguarding")].urgent == 1
    assert by[("integrator", "complex")].resolved == 1
    assert ("helpdesk", "account") in by
    live = school.report(include_replay=False)
    assert ("helpdesk", "account") not in {(e.target, e.category) for e in live.escalations}


def test_replay_and_period_filters(full: Insights, school: School) -> None:
    live = school.report(include_replay=False)
    assert full.totals["replayed"] == 3 and live.totals["replayed"] == 0
    assert live.totals["messages"] == full.totals["messages"] - 3
    recent = school.report(since=school.now - timedelta(days=30))
    assert recent.totals["messages"] == full.totals["messages"] - 2
    assert recent.since == (school.now - timedelta(days=30)).date().isoformat()
    window = school.report(since=school.now - timedelta(days=30), until=school.now - timedelta(days=2, hours=12))
    assert window.totals["replayed"] == 0 and window.totals["messages"] < recent.totals["messages"]


def test_no_teacher_is_exposed(full: Insights) -> None:
    from adapters.report_html import render_html

    ins = full
    text = json.dumps(ins.to_dict(), ensure_ascii=False) + render_html(ins)
    for user in USER_IDS + ["U0INTEGRATOR"]:
        assert user.lower() not in text.lower(), user
    for private in ("bruises", "flickering", "filament", "Jamie", "jamie.lee@example.org", "Priya"):
        assert private not in text, private


def test_a_larger_group_size_hides_more(school: School) -> None:
    settings = school.settings
    strict = school.report(settings.model_copy(update={
        "insights": settings.insights.model_copy(update={"min_group_size": 4})}))
    assert [g.questions for g in strict.gaps] == [5]  # the three esports teachers are now too few
    assert all(t.teachers >= 4 for t in strict.topics)


def test_weak_match_catches_a_confident_answer_to_an_unrelated_question(settings: Settings, store) -> None:
    db = StateDB(settings.state_url)
    memory = ConversationMemory(db)
    now = datetime.now(timezone.utc)
    off_topic = ["how do I claim mileage for the school minibus trip?",
                 "where do I submit my minibus mileage claim form?",
                 "what's the mileage rate when I drive the minibus?"]
    for i, text in enumerate(off_topic):  # retrieval was sure (a word matched), the entry is unrelated
        record(memory, platform="slack", user=f"t-mile-{i}", text=text, sources=["early-years-coding"],
               confidence=0.7, at=now - timedelta(hours=i + 1))
    for i, text in enumerate(PODCAST[:3]):
        record(memory, platform="slack", user=f"t-pod-{i}", text=text, sources=["podcast-voices"],
               confidence=0.7, at=now - timedelta(hours=i + 1))
    ins = build_insights(db, store, settings, now=now)
    assert len(ins.gaps) == 1
    assert ins.gaps[0].signals == {"weak_match": 3} and "mileage" in ins.gaps[0].label
    off = build_insights(db, store, settings.model_copy(update={
        "insights": settings.insights.model_copy(update={"weak_match": 0.0})}), now=now)
    assert off.gaps == []


def test_turns_from_the_real_coach_and_not_quite_clicks_become_a_gap(settings: Settings, coach, store) -> None:
    from bot.models import Action, ActionEvent, InboundMessage

    questions = ["how should I teach touch typing to my year 3 class?",
                 "what's a good way to build typing speed with year 4?",
                 "my class types with two fingers, how do we practise touch typing?"]
    for i, text in enumerate(questions):
        reply = coach.handle(InboundMessage(platform="slack", conversation_id=f"D0TYPE{i}", user_id=f"U0TYPE{i}",
                                            text=text))
        assert reply.route.value == "coach" and reply.turn_id
        coach.handle_action(ActionEvent(platform="slack", conversation_id=f"D0TYPE{i}", user_id=f"U0TYPE{i}",
                                        turn_id=reply.turn_id, action=Action.NOT_QUITE))
    ins = build_insights(coach.memory.db, store, settings)
    assert ins.gaps and ins.gaps[0].questions == 3 and ins.gaps[0].signals.get("not_quite") == 3
    assert "typing" in ins.gaps[0].label
    assert ins.totals["not_quite"] == 3


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def shared_model(monkeypatch: pytest.MonkeyPatch, embedder) -> None:
    """The CLI builds its own store; give it the session's loaded model instead of loading another."""
    import adapters.wiring

    monkeypatch.setattr(adapters.wiring, "make_embedder", lambda settings: embedder)


def invoke(settings: Settings, args: list[str]):
    from adapters.cli import Context, main

    ctx = Context()
    ctx._settings = settings  # the test's settings, never the environment
    return CliRunner().invoke(main, args, obj=ctx, catch_exceptions=False)


def test_report_command_json_and_html(school: School, tmp_path: Path, shared_model: None) -> None:
    settings = school.settings
    html = tmp_path / "out" / "report.html"
    result = invoke(settings, ["report", "--json", "--html", str(html)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["totals"]["replayed"] == 3 and data["gaps"][0]["questions"] == 5
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 5
    # One self-contained file: nothing to fetch, nothing to run.
    assert not re.search(r"<script|<link|<img|<iframe|\b(?:src|href)=|url\(|@import", page, re.IGNORECASE)
    live = invoke(settings, ["report", "--json", "--exclude-replay", "--since",
                             (school.now - timedelta(days=30)).date().isoformat()])
    assert json.loads(live.stdout)["totals"]["replayed"] == 0
    text = invoke(settings, ["report"])
    assert text.exit_code == 0 and "Knowledge gaps" in text.output and "esports" in text.output
    assert "U0PODCAST" not in text.output and "t-vr-" not in text.output


def test_draft_gaps_writes_importable_drafts_once(school: School, tmp_path: Path, shared_model: None) -> None:
    from knowledge.parser import load_folder

    settings = school.settings
    folder = tmp_path / "drafts"
    result = invoke(settings, ["kb", "draft-gaps", str(folder), "--top", "2"])
    assert result.exit_code == 0, result.output
    loaded = load_folder(folder)
    assert len(loaded.entries) == 2 and not loaded.errors
    assert {p.field for p in loaded.warnings} == {"status"}
    for entry in loaded.entries:
        assert entry.extra["status"] == "draft" and entry.body.startswith("DRAFT:")
        assert entry.id.startswith("draft-") and all(q.endswith("?") for q in entry.questions)
    asked = " ".join(q for e in loaded.entries for q in e.questions)
    assert "esports" in asked and ("VR" in asked or "virtual reality" in asked)
    files = "".join(p.read_text() for p in folder.glob("*.md"))
    assert "Jamie" not in files and "t-vr-" not in files and "U0PODCAST" not in files
    again = invoke(settings, ["kb", "draft-gaps", str(folder), "--top", "2"])
    assert again.exit_code == 0 and "kept" in again.output
    assert len(list(folder.glob("*.md"))) == 2  # the same gaps, the same files: the integrator's edits stay


def test_draft_from_escalation(school: School, tmp_path: Path, shared_model: None) -> None:
    from knowledge.parser import load_folder

    settings = school.settings
    with school.db.session() as s:
        rows = {r.category: r.id for r in s.query(EscalationRow).all()}
    folder = tmp_path / "drafts"
    done = invoke(settings, ["kb", "draft-from-escalation", f"I-{rows['complex']:04d}", str(folder)])
    assert done.exit_code == 0, done.output
    [entry] = load_folder(folder).entries
    assert "Start with a two-minute interview" in entry.body and "Priya" not in entry.body
    assert entry.extra == {"status": "draft", "from_escalation": f"I-{rows['complex']:04d}"}
    assert entry.questions == ["Could you help me plan a whole podcast unit for my grade 4s?"]
    still_open = invoke(settings, ["kb", "draft-from-escalation", str(rows["fault"]), str(folder)])
    assert still_open.exit_code != 0 and "not resolved" in still_open.output
    missing = invoke(settings, ["kb", "draft-from-escalation", "I-9999", str(folder)])
    assert missing.exit_code != 0 and "no escalation" in missing.output


# -- the HTML in a real browser --------------------------------------------------------------


def read_png(path: Path) -> tuple[int, int, bytes]:
    """Width, height and RGB bytes of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    import numpy as np

    raw = zlib.decompress(idat)
    stride = width * bpp
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ftype == 2:
            line = bytearray(((np.frombuffer(line, np.uint8).astype(np.uint16)
                               + np.frombuffer(bytes(prev), np.uint8)) & 255).astype(np.uint8).tobytes())
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y * stride:(y + 1) * stride] = line
        prev = line
    if bpp == 4:  # drop alpha
        return width, height, np.frombuffer(bytes(out), np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return width, height, bytes(out)


def count_colour(rgb: bytes, colour: str, tolerance: int = 12) -> int:
    """Pixels within `tolerance` of `colour` on every channel."""
    import numpy as np

    pixels = np.frombuffer(rgb, dtype=np.uint8).reshape(-1, 3).astype(np.int16)
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return int((np.abs(pixels - target) <= tolerance).all(axis=1).sum())


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} (Debian's chromium) is not installed")
def test_html_report_renders_in_headless_chromium(full: Insights, tmp_path: Path) -> None:
    from adapters.report_charts import GAP, ROUTE_COLOURS, SAMR_COLOURS
    from adapters.report_html import render_html

    page = tmp_path / "report.html"
    page.write_text(render_html(full), encoding="utf-8")
    shot = tmp_path / "report.png"
    profile = tmp_path / "chromium-profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1200,2000",
           page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    keep = os.environ.get("INSIGHTS_SCREENSHOT")  # set it to look at the page yourself
    if keep:
        shutil.copy(shot, keep)
    width, height, rgb = read_png(shot)
    assert (width, height) == (1200, 2000)
    # The charts were drawn: gap bars, the weekly columns and route ring, the SAMR bars are on screen.
    assert count_colour(rgb, GAP) > 2000
    assert count_colour(rgb, ROUTE_COLOURS["coach"]) > 2000
    assert count_colour(rgb, SAMR_COLOURS["modification"]) > 200
    background = count_colour(rgb, "#f4f6f9", tolerance=2) + count_colour(rgb, "#ffffff", tolerance=2)
    assert background < width * height * 0.95  # not a blank page
