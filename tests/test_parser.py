"""The knowledge format: every problem named by path and field, the rest of the folder still imports."""

from __future__ import annotations

import os
from pathlib import Path

from knowledge.parser import load_folder, parse_text, render_entry

from conftest import FIXTURE_KB

GOOD = """---
id: sample-entry
title: A sample
kind: strategy
questions:
  - What should students notice?
---
Body text.
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_fixture_folder_parses_cleanly():
    result = load_folder(FIXTURE_KB)
    assert len(result.entries) == 6
    assert result.problems == []


def test_question_without_question_mark_names_the_index(tmp_path):
    write(tmp_path, "padlet.md", GOOD.replace("  - What should students notice?",
                                              "  - What should students notice?\n  - Tell me more\n  - And this one"))
    result = load_folder(tmp_path)
    assert result.entries == []
    assert [str(p) for p in result.errors] == [
        "padlet.md: questions[1]: must end with '?'",
        "padlet.md: questions[2]: must end with '?'",
    ]


def test_broken_files_are_reported_and_the_rest_imports(tmp_path):
    write(tmp_path, "good.md", GOOD)
    write(tmp_path, "nofront.md", "Just some notes\n")
    write(tmp_path, "yaml.md", "---\nid: [unclosed\n---\nbody\n")
    write(tmp_path, "types.md", GOOD.replace("id: sample-entry", "id: typed-entry\ntags: wrong").replace("kind: strategy", "kind: gadget"))
    write(tmp_path, "empty.md", GOOD.replace("id: sample-entry", "id: empty-body").replace("Body text.\n", "   \n"))
    write(tmp_path, "latin1.md", GOOD.replace("sample-entry", "latin-entry").encode("utf-8") + "caf\xe9".encode("latin-1"))
    write(tmp_path, "dup.md", GOOD)
    result = load_folder(tmp_path)
    assert [e.id for e in result.entries] == ["sample-entry"]
    messages = {str(p) for p in result.errors}
    assert any(m.startswith("nofront.md: no YAML front matter") for m in messages)
    assert any(m.startswith("yaml.md: front matter: YAML syntax error") for m in messages)
    assert any(m.startswith("types.md: kind:") for m in messages)
    assert any(m.startswith("types.md: tags:") for m in messages)
    assert "empty.md: body: must not be empty" in messages
    assert any(m.startswith("latin1.md: not UTF-8") for m in messages)
    assert "good.md: id: duplicate id 'sample-entry', already used by dup.md" in messages or \
        "dup.md: id: duplicate id 'sample-entry', already used by good.md" in messages


def test_unknown_field_is_kept_and_warned(tmp_path):
    write(tmp_path, "typo.md", GOOD.replace("title: A sample", "title: A sample\ntittle: oops"))
    result = load_folder(tmp_path)
    assert result.entries[0].extra == {"tittle": "oops"}
    assert [str(w) for w in result.warnings] == ["typo.md: tittle: unknown field, kept as metadata (a typo?)"]


def test_missing_required_fields(tmp_path):
    write(tmp_path, "bare.md", "---\nid: bare-entry\n---\nbody\n")
    fields = {p.field for p in load_folder(tmp_path).errors}
    assert {"title", "kind", "questions"} <= fields


def test_huge_file_is_refused(tmp_path):
    write(tmp_path, "huge.md", GOOD + "x" * 5_000_000)
    result = load_folder(tmp_path)
    assert result.entries == []
    assert "limit" in str(result.errors[0])


def test_symlink_loop_does_not_hang(tmp_path):
    write(tmp_path, "good.md", GOOD)
    os.symlink(tmp_path, tmp_path / "loop")
    os.symlink(tmp_path / "missing.md", tmp_path / "dangling.md")
    result = load_folder(tmp_path)
    assert [e.id for e in result.entries] == ["sample-entry"]
    assert any(p.path == "dangling.md" for p in result.errors)


def test_render_round_trip_keeps_every_field():
    for entry in load_folder(FIXTURE_KB).entries:
        again, problems = parse_text(render_entry(entry), "x.md")
        assert problems == []
        assert again == entry


def test_starter_knowledge_base_is_valid_and_broad():
    from adapters.wiring import STARTER_DIR

    result = load_folder(STARTER_DIR)
    assert result.problems == []
    assert len(result.entries) >= 60
    assert all(2 <= len(e.questions) <= 4 for e in result.entries)
