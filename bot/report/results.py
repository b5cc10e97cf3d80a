"""What the insights report holds: aggregates only, the examples in them already masked.

`bot.report.insights.build_insights` fills these; `adapters/report_commands.py` and
`adapters/report_html.py` show them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bot.checkins.report import CycleStats
from bot.handoff.escalations import ACTIVE, STATUSES
from bot.models import Route
from bot.triage.categories import Category
from knowledge.entry import Samr

ROUTES = tuple(r.value for r in Route)
SAMR_LEVELS = tuple(level.value for level in Samr)
NOT_SET = "not set"
GAP_SIGNALS = {
    "no_answer": "no entry good enough",
    "low_confidence": "low retrieval confidence",
    "not_quite": "teacher said \u201cNot quite\u201d",
    "weak_match": "far from every entry",
}
# Keyed by the triage category an escalation records (a StrEnum, so its plain value finds it too).
CATEGORY_LABELS: dict[str, str] = {
    Category.FAULT: "Technical fault",
    Category.ACCOUNT: "Account or access",
    Category.SAFEGUARDING: "Safeguarding concern",
    Category.DATA_INCIDENT: "Student-data incident",
    Category.HUMAN_REQUEST: "Asked for a person",
    Category.FRUSTRATION: "Coaching was not helping",
    Category.COMPLEX: "Larger planning (co-planning)",
}
# The statuses the handoff desk writes once nobody needs to act: "resolved".
RESOLVED = tuple(s for s in STATUSES if s not in ACTIVE)
MAX_DRAFT_QUESTIONS = 8  # a gap keeps this many of its teachers' questions for its draft entry


def category_label(category: str) -> str:
    """How the report names an escalation's category."""
    return CATEGORY_LABELS.get(category, category.replace("_", " ").capitalize())


@dataclass
class WeekCount:
    """Teacher messages in one week (starting Monday), by route."""

    week: str
    by_route: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_route.values())


@dataclass
class Topic:
    """A group of similar coaching questions, named by the entries they drew on."""

    label: str
    questions: int
    teachers: int
    entries: list[str] = field(default_factory=list)  # entry ids drawn on, most used first
    tags: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # masked


@dataclass
class Gap:
    """Questions the knowledge base answered badly or not at all, grouped, with why."""

    rank: int
    label: str
    questions: int
    teachers: int
    keywords: list[str] = field(default_factory=list)
    signals: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)  # masked
    asked: list[str] = field(default_factory=list)  # masked, as '?' questions, for a draft entry
    grades: list[str] = field(default_factory=list)
    closest_entry: str | None = None
    closest_title: str | None = None
    closest_similarity: float | None = None
    first_week: str | None = None
    last_week: str | None = None


@dataclass
class EntryStat:
    """How one knowledge entry did: how often replies drew on it, and what teachers clicked."""

    entry_id: str
    title: str
    samr: str
    cited: int
    helped: int
    not_quite: int


@dataclass
class EscalationStat:
    """Escalations of one kind, and how long they waited for a person."""

    target: str
    category: str
    label: str
    count: int
    urgent: int
    open: int
    claimed: int
    resolved: int
    median_hours_to_claim: float | None
    p90_hours_to_claim: float | None


@dataclass
class Hidden:
    """What the minimum group size kept out of a list (counts only)."""

    groups: int = 0
    questions: int = 0


@dataclass
class Insights:
    """Everything `coach report` shows, already aggregated and masked."""

    generated_at: str
    since: str | None
    until: str | None
    include_replay: bool
    min_group_size: int
    totals: dict[str, int]
    routes: dict[str, int]
    weeks: list[WeekCount]
    topics: list[Topic]
    hidden_topics: Hidden
    samr: dict[str, int]
    entries: list[EntryStat]
    gaps: list[Gap]
    hidden_gaps: Hidden
    escalations: list[EscalationStat]
    notes: list[str] = field(default_factory=list)
    cycles: CycleStats | None = None  # coaching cycles (bot/checkins/report.py)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `--json`; weekly totals included."""
        out = asdict(self)
        for week, raw in zip(self.weeks, out["weeks"]):
            raw["total"] = week.total
        return out
