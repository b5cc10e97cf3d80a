"""The tool glossary: a tool name counts as the tool, not a same-spelled teaching idea; retrieval follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.glossary import Glossary
from knowledge.parser import load_folder
from knowledge.search import Retriever
from knowledge.store import KnowledgeStore, open_client

from conftest import CONFIG_DIR

GLOSSARY = Glossary.from_file(CONFIG_DIR / "tool-glossary.yaml")


@pytest.mark.parametrize("text, tools", [
    ("My year 7s post book reviews on Flip.", ["flip"]),
    ("a Flip video for each group", ["flip"]),
    ("they record on flip", ["flip"]),
    ("I want to flip my classroom", []),
    ("Flip the classroom, or not?", []),
    ("we work in teams of four", []),
    ("it's set in Teams", ["teams"]),
    ("a blank canvas for ideas", []),
    ("our Canvas course", ["canvas"]),
    ("scratch paper for working", []),
    ("coding in Scratch", ["scratch"]),
    ("graphs on Desmos and a padlet wall", ["desmos", "padlet"]),
])
def test_an_ambiguous_name_counts_as_the_tool_only_when_used_as_one(text, tools):
    assert GLOSSARY.tools(text) == tools


def test_flipping_a_classroom_adds_no_video_tool_words_to_a_search():
    assert GLOSSARY.expand("I want to flip my classroom", as_used=True) == ""
    assert GLOSSARY.expand("book reviews on Flip", as_used=True) == "student video responses"
    assert GLOSSARY.disambiguated("book reviews on Flip") == "book reviews on student video responses"
    assert GLOSSARY.disambiguated("I want to flip my classroom") == "I want to flip my classroom"


ENTRIES = {
    "flipped-learning": """---
id: flipped-learning
title: Flipped learning
kind: strategy
tags: [flipped classroom, blended learning, instructional videos, in-class flip]
questions:
  - What would you do with class time if students arrived knowing the basics?
---
In flipped learning, students meet new content before class through a short video, and class time
goes to practice. Keep videos short, and don't flip everything.
""",
    "video-responses": """---
id: video-responses
title: Short student video responses
kind: tool
tags: [Flip, Seesaw, video responses, oral explanation]
questions:
  - What would you learn from hearing a student explain this?
---
Students record a short clip answering a prompt, and classmates reply with their own clips.
A clear prompt and a time limit keep responses focused.
""",
    "data-logging": """---
id: data-logging
title: Data logging with sensors in science
kind: strategy
tags: [sensors, data logging, graphs, experiments, temperature]
questions:
  - What do you want students to predict before they see the graph?
---
Sensors record temperature, light or motion during an experiment and plot the data as a live graph,
so students can see a relationship form while the experiment runs.
""",
    "desmos": """---
id: desmos
title: Exploring maths with Desmos
kind: tool
tags: [Desmos, graphing calculator, functions, sliders]
questions:
  - What should students notice before you explain anything?
---
The graphing calculator shows the effect of changing a parameter instantly; a slider on the gradient
lets students explore before you tell them.
""",
}


@pytest.fixture
def retriever(tmp_path: Path, embedder) -> Retriever:
    kb = tmp_path / "kb"
    kb.mkdir()
    for eid, text in ENTRIES.items():
        (kb / f"{eid}.md").write_text(text, encoding="utf-8")
    store = KnowledgeStore(open_client(data_dir=tmp_path / "data", chroma_url=None), embedder)
    store.sync(load_folder(kb).entries)
    return Retriever(store, glossary=GLOSSARY)


@pytest.mark.parametrize("text, first", [
    ("My year 7s post book reviews on Flip. How can I get better responses?", "video-responses"),
    ("Any ideas for a Flip video project with year 4?", "video-responses"),
    ("I want to flip my classroom for year 10 physics", "flipped-learning"),
    ("my year 10s are graphing their experiment data in Desmos", "desmos"),
    ("how do I get students logging temperature data with sensors?", "data-logging"),
])
def test_a_tool_name_finds_the_entry_about_the_tool(retriever, text, first):
    assert retriever.search(text).ids[0] == first
