"""Tool and product names the masker must never take for a student's name.

Light on purpose (no spaCy, no Presidio): the masker is built at start-up, and its tool list
with it, while the language pipeline loads only when the first text is masked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path

import yaml


def tool_matcher(tools: Iterable[str]) -> Callable[[str], bool]:
    """A test for "is this span a tool or app name" from the school's vocabulary, any case."""
    words: set[str] = set()
    for tool in tools:
        t = tool.strip().lower()
        if t:
            words.add(t)

    def is_tool(span: str) -> bool:
        s = span.strip().lower().rstrip("'’s").strip()
        return s in words or span.strip().lower() in words

    return is_tool


def glossary_tools(path: Path) -> list[str]:
    """Tool names from the school's tool glossary (`config/tool-glossary.yaml`), keys only."""
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    return [str(k) for k in data] if isinstance(data, dict) else []


_TAGS = re.compile(r"^tags:\s*\[(.*)\]\s*$", re.MULTILINE)


def knowledge_tools(folder: Path) -> list[str]:
    """Products named in the knowledge entries' tags: "Seesaw", "Mote", "Google Earth".

    Only capitalised tags of up to three words count (a product's name, not a topic such as
    "retrieval practice"); acronyms such as "UDL" are left out, they are never taken for names.
    """
    if not folder.is_dir():
        return []
    found: set[str] = set()
    for path in sorted(folder.rglob("*.md")):
        try:
            head = path.read_text(encoding="utf-8")[:4000]
        except (OSError, UnicodeDecodeError):
            continue
        for m in _TAGS.finditer(head):
            for tag in m.group(1).split(","):
                tag = tag.strip().strip("\"'")
                words = tag.split()
                if 1 <= len(words) <= 3 and tag[:1].isupper() and not tag.isupper() and not re.search(r"\d", tag):
                    found.add(tag)
    return sorted(found)


STARTER_KNOWLEDGE = Path(str(resources.files("knowledge") / "starter"))
KB_SOURCE_RECORD = "kb-source.json"  # written by adapters/wiring.import_folder: which folder the school imported


def school_tools(glossary: Path, data_dir: Path, allow: Iterable[str] = ()) -> list[str]:
    """Every product name the school's masker keeps: glossary, settings, starter and imported knowledge."""
    folders = [STARTER_KNOWLEDGE]
    try:
        source = json.loads((data_dir / KB_SOURCE_RECORD).read_text()).get("source", "")
    except (OSError, ValueError, AttributeError):
        source = ""
    if source and source != "starter":
        folders.append(Path(source))
    found = glossary_tools(glossary) + list(allow)
    for folder in folders:
        found += knowledge_tools(folder)
    return found
