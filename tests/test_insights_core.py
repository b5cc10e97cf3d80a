"""Insights building blocks that need no database: clustering, masking, labels, questions, signals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bot.report.clustering import cluster
from bot.report.drafts import escalation_draft, gap_draft, resolution_note, slug, teacher_texts
from bot.report.masking import Scrubber
from bot.report.metrics import gap_signals
from bot.report.results import Gap
from bot.report.rows import TurnRecord
from bot.report.wording import Vocabulary, as_question, grade_bands
from knowledge.parser import parse_text, render_entry


def brute_average_linkage(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Textbook average linkage over the full similarity matrix, to check the fast version against."""
    sims = vectors @ vectors.T
    clusters = [[i] for i in range(len(vectors))]
    while len(clusters) > 1:
        best, pair = -np.inf, None
        for a, b in itertools.combinations(range(len(clusters)), 2):
            s = sims[np.ix_(clusters[a], clusters[b])].mean()
            if s > best:
                best, pair = s, (a, b)
        if best < threshold:
            break
        a, b = pair
        clusters[a] = clusters[a] + clusters[b]
        del clusters[b]
    return clusters


def unit(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.mark.parametrize("seed,threshold", [(1, 0.3), (2, 0.5), (3, 0.1), (4, 0.7)])
def test_cluster_matches_textbook_average_linkage(seed: int, threshold: float) -> None:
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(4, 8)))
    points = unit(np.repeat(centres, 9, axis=0) + rng.normal(scale=0.6, size=(36, 8)))
    fast = {frozenset(c) for c in cluster(points, threshold)}
    slow = {frozenset(c) for c in brute_average_linkage(points, threshold)}
    assert fast == slow
    assert sum(len(c) for c in fast) == 36  # every point is in exactly one cluster


def test_cluster_separates_directions_and_orders_by_size() -> None:
    rng = np.random.default_rng(7)
    axes = np.eye(6)[:3]
    sizes = [5, 2, 8]
    points = unit(np.vstack([np.repeat(axes[i:i + 1], n, axis=0) for i, n in enumerate(sizes)])
                  + rng.normal(scale=0.05, size=(sum(sizes), 6)))
    groups = cluster(points, 0.5)
    assert [len(g) for g in groups] == [8, 5, 2]
    assert groups[0] == list(range(7, 15))
    assert cluster(points, 0.999) == [[i] for i in range(len(points))]  # nothing is that close
    assert cluster(np.zeros((0, 6)), 0.5) == []


def test_as_question_keeps_the_asking_sentence_and_ends_with_a_question_mark() -> None:
    assert as_question("how do I set up a class blog") == "How do I set up a class blog?"
    assert as_question("We tried stop motion. How do we keep it short? thanks!!") == \
        "We tried stop motion. How do we keep it short?"
    assert as_question("Context. " * 40 + "Which app? Or which kit would you pick for year 3?") == \
        "Or which kit would you pick for year 3?"
    assert as_question("any ideas for sensors in science 😬") == "Any ideas for sensors in science?"
    assert as_question("   ") is None
    long = as_question("word " * 100)
    assert long is not None and long.endswith("?") and len(long) <= 200


def test_an_escalation_is_found_by_id_or_ticket_through_the_handoff_desk(tmp_path) -> None:
    """The report reads one escalation as `coach handoffs` finds it: a ticket's letter must match its target."""
    from bot.handoff.escalations import Escalations
    from bot.report.rows import escalation_fields, load_escalation, load_escalations, load_user_ids
    from bot.state.database import StateDB

    db = StateDB(f"sqlite:///{tmp_path}/state.db")
    opened = Escalations(db).open_or_add(
        target="integrator", reason="test", category="complex", urgent=False, memory_key="slack:D1",
        platform="slack", user_id="U0ASKER1", summary="co-plan a unit", detail={"text": "co-plan a unit?"})
    Escalations(db).resolve(opened.id, "U0INTEGRATOR", "Ms Integrator")
    row = load_escalation(db, f"I-{opened.id:04d}")
    assert row is not None and row["id"] == opened.id and row["status"] == "resolved"
    assert row["details"] == [{"text": "co-plan a unit?"}] and row["resolved_by_name"] == "Ms Integrator"
    assert load_escalation(db, str(opened.id)) == row == load_escalation(db, f" i{opened.id} ")
    assert load_escalation(db, f"H-{opened.id:04d}") is None  # not a helpdesk ticket
    assert load_escalation(db, "I-9999") is None and load_escalation(db, "ticket seven") is None
    [listed] = load_escalations(db)
    assert escalation_fields(listed) == row
    assert {"U0ASKER1", "U0INTEGRATOR", "Ms Integrator"} <= load_user_ids(db)  # scrubbed from examples


def test_scrubber_hides_ids_mentions_and_student_data() -> None:
    scrub = Scrubber(["t-ana", "U0TEACHER9"])
    text = ("t-ana and <@U0OTHER1> said my student Jamie Lee (jamie.lee@example.org, 0412 555 019) "
            "could ask @mr.brown; U0TEACHER9 agrees. Text-analysis stays.")
    out = scrub(text)
    for secret in ("t-ana ", "U0OTHER1", "Jamie", "jamie.lee@example.org", "0412 555 019", "mr.brown", "U0TEACHER9"):
        assert secret not in out, secret
    assert "[TEACHER]" in out and "[PERSON]" in out and "[NAME-1]" in out
    assert "Text-analysis stays." in out  # an id inside another word is left alone
    assert len(scrub("x " * 400)) <= 220


def test_grade_bands_from_how_teachers_write_them() -> None:
    assert grade_bands(["my yr 8s", "grade 2 class", "4th graders", "Year 11 chemistry", "kindergarten"]) == \
        ["K-2", "3-5", "6-8", "9-12"]
    assert grade_bands(["no grade here"]) == []


def test_vocabulary_names_what_a_group_shares_and_others_do_not() -> None:
    background = [f"how do I plan a lesson on topic {w}" for w in ("fractions", "rivers", "poems", "volcanoes")]
    group = ["can we use VR headsets for history?", "first lesson with the VR headsets?",
             "are VR headsets worth buying for geography"]
    vocab = Vocabulary(background + group)
    words = vocab.keywords(group)
    assert words[0] == "VR headsets"  # a phrase all three share, the acronym kept as written
    assert not {"lesson", "plan"} & set(words)


def _turn(text: str, sources: tuple[str, ...] = ("entry",), confidence: float = 0.9) -> TurnRecord:
    from datetime import datetime, timezone

    return TurnRecord(id="x", memory_key="k", platform="slack", asker="a", text=text, route="coach",
                      sources=sources, confidence=confidence, created_at=datetime.now(timezone.utc))


def test_gap_signals() -> None:
    assert gap_signals(_turn("q", ()), {}, 0.3, 0.5, 0.3) == ["no_answer"]
    assert gap_signals(_turn("q", (), 0.1), {}, 0.3, 0.5, 0.3) == ["no_answer", "low_confidence"]
    assert gap_signals(_turn("q"), {"not_quite": 1}, 0.3, 0.9, 0.3) == ["not_quite"]
    assert gap_signals(_turn("q"), {}, 0.3, 0.2, 0.3) == ["weak_match"]
    assert gap_signals(_turn("q"), {"helped": 1}, 0.3, 0.2, 0.3) == []  # the teacher said it helped
    assert gap_signals(_turn("q"), {}, 0.3, 0.2, 0.0) == []  # weak match switched off
    assert gap_signals(_turn("q"), {}, 0.3, 0.6, 0.3) == []


def test_gap_draft_is_a_valid_entry_marked_draft() -> None:
    gap = Gap(rank=1, label="virtual reality \u00b7 headsets", questions=4, teachers=4,
              keywords=["virtual reality", "headsets"], signals={"no_answer": 4},
              asked=["Where do we start with VR headsets?", "Is virtual reality worth it for history?"],
              grades=["6-8"], closest_entry="maps", closest_title="Digital maps", closest_similarity=0.31,
              first_week="2026-03-02", last_week="2026-03-16")
    taken = {"draft-virtual-reality-headsets"}
    entry = gap_draft(gap, taken)
    assert entry is not None
    assert entry.id == "draft-virtual-reality-headsets-2"  # the taken id is not reused
    assert entry.extra == {"status": "draft"}
    assert entry.body.startswith("DRAFT:")
    assert entry.questions == gap.asked and entry.grades == ["6-8"]
    parsed, problems = parse_text(render_entry(entry), "draft.md")
    assert parsed is not None and [p.field for p in problems] == ["status"]  # a warning, kept as metadata
    assert gap_draft(Gap(rank=1, label="x", questions=3, teachers=3), set()) is None  # nothing to ask


def test_escalation_answer_and_teacher_words_are_told_apart() -> None:
    row = {"id": 12, "target": "integrator", "category": "complex", "status": "resolved",
           "summary": "co-plan a unit", "details": [
               {"text": "can you help me co-plan a unit on rivers for my year 5s?", "at": "2026-03-02T10:00:00"},
               {"text": "Try a shared map first; my student Amir loved it.", "from": "integrator"}]}
    assert resolution_note(row) == "Try a shared map first; my student Amir loved it."
    assert teacher_texts(row) == ["can you help me co-plan a unit on rivers for my year 5s?"]
    assert resolution_note({"resolution_note": "  Use the loan kit.  "}) == "Use the loan kit."
    entry = escalation_draft(row, Scrubber([]), set())
    assert entry.extra == {"status": "draft", "from_escalation": "I-0012"}
    assert "Try a shared map first" in entry.body and "Amir" not in entry.body
    assert entry.questions == ["Can you help me co-plan a unit on rivers for my year 5s?"]
    assert entry.grades == ["3-5"]


def test_slug_is_a_valid_short_id() -> None:
    s = slug("How do I run an esports club after school, for my year 9s, at lunchtime?")
    assert s.startswith("draft-") and len(s) <= 80 and s.count("-") <= 6
    assert "esports" in s


class CountingEmbedder:
    """A stand-in model that says how many texts it was asked to embed."""

    name = "counting-test-model"
    dimension = 4

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts):
        self.seen.extend(texts)
        return np.array([[len(t), t.count("a"), 1.0, 0.0] for t in texts], dtype=np.float32)


def test_vector_cache_embeds_each_question_once_and_survives_a_restart(tmp_path) -> None:
    from bot.report.vectors import VectorCache

    path = tmp_path / "vectors.npz"
    model = CountingEmbedder()
    first = VectorCache(path).embed(model, ["alpha", "beta", "alpha"])
    assert model.seen == ["alpha", "beta"]  # a repeated question is embedded once
    cache = VectorCache(path)
    cache.embed(model, ["alpha", "beta"])
    cache.save()
    assert path.is_file() and b"alpha" not in path.read_bytes()  # hashes, not question text
    model.seen.clear()
    again = VectorCache(path).embed(model, ["beta", "alpha", "gamma"])
    assert model.seen == ["gamma"]
    assert np.allclose(again[1], first[0]) and np.allclose(again[0], first[1])
    path.write_bytes(b"not a cache")
    assert VectorCache(path).embed(model, ["delta"]).shape == (1, 4)  # a damaged file is only slower
