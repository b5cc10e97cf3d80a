"""`coach replay` and `coach kb` as a person runs them: subprocesses on a fresh data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURE_KB

COACH = [sys.executable, "-m", "adapters.cli"]
ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], data_dir: Path, stdin: str | None = None, extra_env: dict | None = None):
    env = {**os.environ, "COACH_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    return subprocess.run(COACH + args, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "data"
    result = run(["kb", "import", str(FIXTURE_KB)], path)
    assert result.returncode == 0, result.stderr
    assert "6 added" in result.stdout
    return path


def test_replay_contract(data_dir, tmp_path):
    cases = tmp_path / "cases.jsonl"
    lines = [
        {"id": "r1", "conversation": "a", "user": "t-1", "text": "I want my students to record a podcast about their town"},
        {"id": "r2", "conversation": "a", "user": "t-1", "text": "and how would that work for year 3?"},
        {"id": "r3", "conversation": "b", "user": "t-2", "text": "the projector in room 9 shows no signal"},
        {"id": "r4", "conversation": "c", "user": "t-3", "text": "good morning!"},
    ]
    body = "\n".join(json.dumps(x) for x in lines[:2]) + "\n{not json\n" + "\n".join(json.dumps(x) for x in lines[2:]) + "\n"
    cases.write_text(body)
    result = run(["replay", str(cases)], data_dir)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o.get("id") for o in out] == ["r1", "r2", None, "r3", "r4"]
    r1, r2, bad, r3, r4 = out
    assert set(r1) == {"id", "conversation", "route", "reply", "sources", "handoff", "followup"}
    assert r1["followup"] is None  # optional: only a reply that offers a check-in fills it
    assert r1["route"] == "coach" and r1["sources"][0] == "podcast-voices" and "?" in r1["reply"]
    assert r2["sources"][0] == "podcast-voices"
    assert "line 3" in bad["error"]
    assert r3["route"] == "helpdesk" and r3["handoff"]["target"] == "helpdesk" and r3["handoff"]["ticket"].startswith("H-")
    assert r4 == {"id": "r4", "conversation": "c", "route": "other", "reply": r4["reply"], "sources": [], "handoff": None,
                  "followup": None}


def test_replay_twice_starts_fresh(data_dir, tmp_path):
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"id": "x", "conversation": "z", "text": "the printer in the library is jammed"}) + "\n")
    first = json.loads(run(["replay", str(cases)], data_dir).stdout)
    second = json.loads(run(["replay", str(cases)], data_dir).stdout)
    assert first["handoff"]["ticket"] != second["handoff"]["ticket"]


def test_import_twice_does_nothing_and_export_round_trips(data_dir, tmp_path):
    again = run(["kb", "import", str(FIXTURE_KB)], data_dir)
    assert "Nothing to do" in again.stdout
    out = tmp_path / "export"
    assert run(["kb", "export", str(out)], data_dir).returncode == 0
    from knowledge.parser import load_folder

    assert {e.id: e for e in load_folder(out).entries} == {e.id: e for e in load_folder(FIXTURE_KB).entries}


def test_broken_file_is_reported_and_the_rest_imports(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    for src in FIXTURE_KB.glob("*.md"):
        (kb / src.name).write_text(src.read_text())
    (kb / "broken.md").write_text("---\nid: broken-one\ntitle: x\nkind: strategy\nquestions:\n  - no mark\n---\nbody\n")
    result = run(["kb", "import", str(kb)], tmp_path / "data")
    assert result.returncode == 1
    assert "broken.md: questions[0]: must end with '?'" in result.stderr
    assert "6 added" in result.stdout


def test_first_run_imports_starter_once_then_a_school_folder_replaces_it(tmp_path):
    data = tmp_path / "data"
    first = run(["ask", "--json", "how can students brainstorm together online?"], data)
    assert first.returncode == 0, first.stderr
    assert "starter knowledge base" in first.stderr
    assert json.loads(first.stdout)["route"] == "coach"
    second = run(["ask", "--json", "hello"], data)
    assert "starter knowledge base" not in second.stderr
    run(["kb", "import", str(FIXTURE_KB)], data)
    listed = run(["kb", "search", "--json", "podcast"], data)
    ids = [h["id"] for h in json.loads(listed.stdout)["hits"]]
    assert set(ids) <= {p.stem for p in FIXTURE_KB.glob("*.md")}


def test_bad_setting_fails_at_start_naming_it(tmp_path):
    result = run(["ask", "hi"], tmp_path / "data", extra_env={"COACH_RETRIEVAL__MODE": "psychic"})
    assert result.returncode == 2
    assert "COACH_RETRIEVAL__MODE" in result.stderr


def test_unusable_data_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the data directory should go")
    result = run(["ask", "hi"], blocker / "data")
    assert result.returncode == 2 and "not writable" in result.stderr and "COACH_DATA_DIR" in result.stderr


def test_read_only_data_dir_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.geteuid() == 0:
            pytest.skip("running as root: a read-only directory is still writable (needs a non-root user)")
        result = run(["ask", "hi"], ro / "data")
        assert result.returncode == 2 and "not writable" in result.stderr
    finally:
        ro.chmod(0o700)


def test_corrupted_state_database_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    run(["kb", "import", str(FIXTURE_KB)], data)
    (data / "state.db").write_bytes(b"this is not a database" * 100)
    result = run(["ask", "hi"], data)
    assert result.returncode == 2
    assert "state database" in result.stderr


def test_chat_answers_starts_afresh_and_leaves_on_slash_quit(data_dir):
    result = run(["chat"], data_dir, stdin="I want my students to record a podcast about their town\n/new\n/quit\n"
                 "this line is never read\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("route: coaching") == 1  # "/new" and "/quit" are commands, not questions
    assert "Started a new conversation" in result.stdout
    assert "Student podcasts" in result.stdout
