"""One scenario table that every platform adapter runs, so Slack and Teams cannot drift apart.

Each scenario is a message a teacher sends and what must come back, against the test
knowledge base in tests/fixtures/kb.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    text: str
    route: str
    first_source: str | None = None
    handoff_target: str | None = None


SCENARIOS = [
    Scenario("coaching question", "how can my year 5s brainstorm together on padlet?", "coach", "shared-wall-brainstorm"),
    Scenario("tool how-to", "how do I make a quick exit ticket in google forms?", "coach", "exit-ticket-checks"),
    Scenario("technical fault", "the projector in room 12 shows no signal", "helpdesk", None, "helpdesk"),
    Scenario("account problem", "I'm locked out of my email after the password change", "helpdesk", None, "helpdesk"),
    Scenario("safeguarding", "a student told me an adult online keeps asking her for photos", "integrator", None, "integrator"),
    Scenario("asks for a person", "can I speak to a human integrator please", "integrator", None, "integrator"),
    Scenario("small talk", "thanks so much!", "other"),
]

# A follow-up in the same conversation keeps its topic.
FOLLOW_UP = ("I want my students to record a podcast about their town", "and how would that work for year 3?",
             "podcast-voices")
