"""The categories triage can give a message, and the route each one takes."""

from __future__ import annotations

from enum import StrEnum

from bot.models import Route


class Category(StrEnum):
    """What a message is; each maps to exactly one route (`ROUTE_OF`)."""

    SAFEGUARDING = "safeguarding"
    DATA_INCIDENT = "data_incident"
    HUMAN_REQUEST = "human_request"
    FRUSTRATION = "frustration"
    COMPLEX = "complex"
    FAULT = "fault"
    ACCOUNT = "account"
    SMALLTALK = "smalltalk"
    OUT_OF_SCOPE = "out_of_scope"
    COACHING = "coaching"


ROUTE_OF: dict[Category, Route] = {
    Category.SAFEGUARDING: Route.INTEGRATOR,
    Category.DATA_INCIDENT: Route.INTEGRATOR,
    Category.HUMAN_REQUEST: Route.INTEGRATOR,
    Category.FRUSTRATION: Route.INTEGRATOR,
    Category.COMPLEX: Route.INTEGRATOR,
    Category.FAULT: Route.HELPDESK,
    Category.ACCOUNT: Route.HELPDESK,
    Category.SMALLTALK: Route.OTHER,
    Category.OUT_OF_SCOPE: Route.OTHER,
    Category.COACHING: Route.COACH,
}

# The nine a corpus labels; frustration depends on the conversation, so rules decide it.
LEARNED: tuple[Category, ...] = tuple(c for c in Category if c is not Category.FRUSTRATION)
# Concerns a person must see now: each has its own detector, and either it or a rule escalates.
CONCERNS: tuple[Category, ...] = (Category.SAFEGUARDING, Category.DATA_INCIDENT)

REASONS: dict[Category, str] = {
    Category.SAFEGUARDING: "possible safeguarding concern",
    Category.DATA_INCIDENT: "possible student-data incident",
    Category.HUMAN_REQUEST: "the teacher asked for a person",
    Category.FRUSTRATION: "coaching was not helping",
    Category.COMPLEX: "a larger piece of planning that needs a person",
    Category.FAULT: "technical fault",
    Category.ACCOUNT: "account or access problem",
    Category.SMALLTALK: "greeting or thanks",
    Category.OUT_OF_SCOPE: "outside what the coach does",
    Category.COACHING: "a coaching question",
}
