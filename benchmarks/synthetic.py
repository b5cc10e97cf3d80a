"""Synthetic knowledge entries for scale benchmarks (deterministic, written to a folder)."""

from __future__ import annotations

import random
from pathlib import Path

from knowledge.entry import KnowledgeEntry
from knowledge.parser import render_entry

TOPICS = ["brainstorming", "podcasts", "exit tickets", "rubrics", "coding", "3D design", "green screen", "blogging",
          "e-portfolios", "translation", "captions", "AI chatbots", "spreadsheets", "maps", "video feedback",
          "digital citizenship", "privacy", "copyright", "stop motion", "live polls", "flipped lessons", "quizzes"]
SUBJECTS = ["science", "maths", "history", "english", "art", "music", "geography", "languages", "PE", "any"]
VERBS = ["plan", "run", "assess", "reflect on", "scale up", "start", "differentiate", "share"]
GRADES = ["K-2", "3-5", "6-8", "9-12"]
KINDS = ["strategy", "tool", "howto", "framework", "policy", "support"]


def make_entries(n: int, seed: int = 7) -> list[KnowledgeEntry]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic, subject, verb = rng.choice(TOPICS), rng.choice(SUBJECTS), rng.choice(VERBS)
        body = " ".join(
            f"When you {verb} {topic} in {subject}, watch what students do with it, not the tool itself. "
            f"Variation {i} note {rng.randint(0, 10**6)}: keep the learning goal visible and the setup light."
            for _ in range(3)
        )
        out.append(KnowledgeEntry(
            id=f"syn-{i:05d}", title=f"How to {verb} {topic} in {subject} ({i})", kind=rng.choice(KINDS),
            tags=[topic, subject, verb], subjects=[subject], grades=rng.sample(GRADES, 2),
            questions=[f"What should students learn from {topic} in {subject}?",
                       f"How will you know {topic} moved their thinking?"],
            body=body,
        ))
    return out


def write_folder(folder: Path, n: int) -> list[KnowledgeEntry]:
    folder.mkdir(parents=True, exist_ok=True)
    entries = make_entries(n)
    for entry in entries:
        (folder / f"{entry.id}.md").write_text(render_entry(entry), encoding="utf-8")
    return entries
