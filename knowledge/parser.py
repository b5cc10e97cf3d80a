"""Reading knowledge files: Markdown with YAML front matter, every problem named by path and field."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from knowledge.entry import KNOWN_FIELDS, KnowledgeEntry

MAX_FILE_BYTES = 1_000_000  # a knowledge note is a page, not a book; 5 MB is a mistake


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    path: str
    field: str | None
    message: str
    severity: str = "error"  # "error" skips the file, "warning" keeps it

    def __str__(self) -> str:
        where = f"{self.path}: {self.field}" if self.field else self.path
        return f"{where}: {self.message}"


@dataclass
class FolderResult:
    """What a folder held: the entries that passed, and every problem found."""

    entries: list[KnowledgeEntry] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # entry id -> file path
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases: a knowledge file never needs them, and a chain of
    aliases (the "billion laughs") expands a few lines into gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "YAML anchors and aliases (&name, *name) are not allowed in knowledge files; "
                            "write each value out", event.start_mark)
        return super().compose_node(parent, index)


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated values out in full, so what we write reads back under `_NoAliasLoader`."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _split_front_matter(text: str) -> tuple[str, str] | None:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1:])
    return None


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _normalise_dates(meta: dict[str, Any]) -> dict[str, Any]:
    # YAML turns `updated: 2026-11-01` into a date already; a datetime is cut to its date.
    value = meta.get("updated")
    if isinstance(value, datetime):
        meta["updated"] = value.date()
    elif isinstance(value, date):
        pass
    return meta


def parse_text(text: str, path: str) -> tuple[KnowledgeEntry | None, list[Problem]]:
    """Parse one file's text; returns the entry (or None) and the problems found."""
    problems: list[Problem] = []
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    split = _split_front_matter(text)
    if split is None:
        return None, [Problem(path, None, "no YAML front matter (the file must start with a '---' line and close it with another)")]
    head, body = split
    try:
        meta = yaml.load(head, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader without aliases
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [Problem(path, "front matter", f"YAML syntax error{where}: {reason}")]
    if not isinstance(meta, dict):
        return None, [Problem(path, "front matter", "must be a mapping of field: value")]
    meta = _normalise_dates({str(k): v for k, v in meta.items()})
    extra = {k: v for k, v in meta.items() if k not in KNOWN_FIELDS}
    for key in extra:
        problems.append(Problem(path, key, "unknown field, kept as metadata (a typo?)", "warning"))
    known = {k: v for k, v in meta.items() if k in KNOWN_FIELDS}
    try:
        entry = KnowledgeEntry.model_validate({**known, "body": body, "extra": _jsonable(extra)})
    except ValidationError as exc:
        for err in exc.errors():
            field_name = _field_path(err["loc"]) or "entry"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "required field is missing"
            for line in message.split("\n"):
                item = re.match(r"^\[(\d+)\] (.*)$", line)
                if item:
                    problems.append(Problem(path, f"{field_name}[{item.group(1)}]", item.group(2)))
                else:
                    problems.append(Problem(path, field_name, line))
        return None, problems
    return entry, problems


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def parse_file(path: Path, display: str | None = None) -> tuple[KnowledgeEntry | None, list[Problem]]:
    """Parse one knowledge file from disk, refusing oversized and non-UTF-8 files."""
    name = display or str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return None, [Problem(name, None, f"cannot read: {exc.strerror}")]
    if size > MAX_FILE_BYTES:
        return None, [Problem(name, None, f"file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}")]
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(name, None, f"cannot read: {exc.strerror}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(name, None, f"not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})")]
    return parse_text(text, name)


def _markdown_files(root: Path) -> tuple[list[Path], list[Problem]]:
    # os.walk without following links cannot loop; linked files are read once by real path, and a
    # link that leads out of the folder is refused (it would import whatever it points at).
    found: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    base = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(".md") or name.startswith(".") or name.lower() == "readme.md":
                continue
            path = Path(dirpath) / name
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):
                found.append(path)  # reported as unreadable by parse_file
                continue
            if not real.is_relative_to(base):
                problems.append(Problem(str(path.relative_to(root)), None,
                                        "symlink points outside the knowledge folder; refused (copy the file "
                                        "into the folder instead)"))
                continue
            if real not in seen:
                seen.add(real)
                found.append(path)
    return found, problems


def load_folder(root: Path) -> FolderResult:
    """Parse every `.md` file below `root`; bad files are reported and skipped, never fatal."""
    result = FolderResult()
    if not root.is_dir():
        result.problems.append(Problem(str(root), None, "not a folder"))
        return result
    paths, refused = _markdown_files(root)
    result.problems.extend(refused)
    for path in paths:
        display = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        entry, problems = parse_file(path, display)
        result.problems.extend(problems)
        if entry is None:
            continue
        if entry.id in result.files:
            result.problems.append(Problem(display, "id", f"duplicate id {entry.id!r}, already used by {result.files[entry.id]}"))
            continue
        result.files[entry.id] = display
        result.entries.append(entry)
    return result


def render_entry(entry: KnowledgeEntry) -> str:
    """Write an entry back in the contract format (the inverse of `parse_text`)."""
    meta: dict[str, Any] = {"id": entry.id, "title": entry.title, "kind": entry.kind.value}
    for key in ("tags", "subjects", "grades"):
        value = getattr(entry, key)
        if value:
            meta[key] = list(value)
    if entry.samr:
        meta["samr"] = entry.samr.value
    meta["questions"] = list(entry.questions)
    if entry.links:
        meta["links"] = [{"title": link.title, "url": str(link.url)} for link in entry.links]
    if entry.owner is not None:
        meta["owner"] = entry.owner
    if entry.updated is not None:
        meta["updated"] = entry.updated
    meta.update(entry.extra)
    head = yaml.dump(meta, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{head}---\n{entry.body}"
