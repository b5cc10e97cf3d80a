"""Who may act on a handoff: one policy, read from settings, checked in the core for every platform.

Adapters say who clicked (`Actor`: the platform and that platform's own id for the person); the
core decides. People are listed per role and platform under `access:` in `config/coach.yaml`:
Slack member ids, Teams AAD object ids, and for the command line the login name on the server.
Nobody is let in by default: an empty list refuses, and the refusal says which setting to fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    """What a person is to the coach; each role may act on some handoffs."""

    INTEGRATOR = "integrator"
    HELPDESK = "helpdesk"
    SAFEGUARDING_LEAD = "safeguarding_lead"


class Outcome(StrEnum):
    """The outcome of a claim or resolve click."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"  # a second click, or it was resolved already
    REFUSED = "refused"  # the clicker may not act on this handoff


# Categories a safeguarding lead must be able to act on whatever else is configured.
SAFEGUARDING_CATEGORIES = frozenset({"safeguarding", "data_incident"})


class Actor(BaseModel):
    """Who clicked: a platform and that platform's id for the person (`cli` uses the login name)."""

    model_config = ConfigDict(frozen=True)

    platform: str = Field(description="slack, teams or cli")
    user_id: str = Field(description="Slack member id, Teams AAD object id (or Bot Framework id), login name")
    name: str | None = Field(None, description="as the teacher reads it: 'claimed by Sam'")

    @property
    def key(self) -> str:
        """`platform:user_id`, as recorded on the escalation."""
        return f"{self.platform}:{self.user_id}"


class RoleMembers(BaseModel):
    """The people in one role, by platform identity."""

    slack: list[str] = Field(default_factory=list, description="Slack member ids, e.g. U0123ABCD")
    teams: list[str] = Field(default_factory=list, description="Teams (Azure AD) object ids")
    cli: list[str] = Field(default_factory=list, description="login names allowed to use `coach handoffs claim`")

    def ids(self, platform: str) -> frozenset[str]:
        """The listed ids for one platform (none for a platform this role does not list)."""
        values = getattr(self, platform, None) if platform in listed_platforms() else None
        return frozenset(v.strip() for v in values or () if v and v.strip())

    def empty(self) -> bool:
        return not (self.slack or self.teams or self.cli)


def listed_platforms() -> tuple[str, ...]:
    """The platforms people are listed for under each role: `RoleMembers`' own fields, in order."""
    return tuple(RoleMembers.model_fields)


class AccessSettings(BaseModel):
    """`access:` in config/coach.yaml: who is an integrator, a helpdesk agent, the safeguarding lead."""

    integrator: RoleMembers = Field(default_factory=RoleMembers)
    helpdesk: RoleMembers = Field(default_factory=RoleMembers)
    safeguarding_lead: RoleMembers = Field(default_factory=RoleMembers)

    def members(self, role: Role) -> RoleMembers:
        return getattr(self, role.value)


# Which roles may act on a handoff, by its target. Helpdesk tickets go to the integrators when
# there is no helpdesk target, so integrators may act on them too.
ROLES_FOR_TARGET: dict[str, frozenset[Role]] = {
    "integrator": frozenset({Role.INTEGRATOR, Role.SAFEGUARDING_LEAD}),
    "helpdesk": frozenset({Role.HELPDESK, Role.INTEGRATOR}),
}


@dataclass(frozen=True)
class AccessPolicy:
    """The one authorization policy: roles by platform identity, and which roles act on which handoff."""

    settings: AccessSettings
    # `<platform>.integrator_user_ids` (Slack's older place to list integrators) still counts, by platform.
    legacy_integrators: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def roles(self, actor: Actor) -> frozenset[Role]:
        """Every role this person holds on the platform they acted from."""
        if actor is None or not actor.user_id:
            return frozenset()
        held = {role for role in Role if actor.user_id in self.settings.members(role).ids(actor.platform)}
        if actor.user_id in self.legacy_integrators.get(actor.platform, frozenset()):
            held.add(Role.INTEGRATOR)
        return frozenset(held)

    def has_role(self, actor: Actor, role: Role) -> bool:
        """True when the person holds `role` (knowledge tools need an integrator)."""
        return role in self.roles(actor)

    def allowed_roles(self, target: str, category: str) -> frozenset[Role]:
        """The roles that may claim or resolve a handoff with this target and category."""
        roles = set(ROLES_FOR_TARGET.get(target, {Role.INTEGRATOR}))
        if category in SAFEGUARDING_CATEGORIES:
            roles.add(Role.SAFEGUARDING_LEAD)
        return frozenset(roles)

    def may_act(self, actor: Actor, target: str, category: str) -> bool:
        """True when the person may claim or resolve this handoff."""
        return bool(self.roles(actor) & self.allowed_roles(target, category))

    def refusal(self, actor: Actor, target: str, category: str) -> str:
        """Why a click changed nothing, and which setting an admin fills to let the person in."""
        allowed = sorted(self.allowed_roles(target, category), key=lambda r: r.value)
        names = " or ".join(r.value.replace("_", " ") for r in allowed)
        listed = listed_platforms()
        # A platform nobody can be listed for is pointed at the first list, so the hint names a real setting.
        platform = actor.platform if actor.platform in listed else listed[0]
        configured = [r for r in allowed if actor.platform in listed and self.settings.members(r).ids(platform)]
        text = f"Only a {names} can do that, so nothing changed."
        if not configured:
            settings = ", ".join(f"access.{r.value}.{platform}" for r in allowed)
            text += f" (Nobody is set up for that on {platform} yet: an admin lists people in {settings}.)"
        return text


@dataclass(frozen=True)
class ActionResult:
    """What a claim or resolve did: the outcome, the handoff card's new text, and what to tell the clicker."""

    outcome: Outcome
    channel_text: str | None = None
    message: str = ""

    @property
    def changed(self) -> bool:
        return self.outcome is Outcome.CHANGED


def policy_from(settings: object) -> AccessPolicy:
    """The policy for a `Settings` object (its `access` section, plus `slack.integrator_user_ids`)."""
    access = getattr(settings, "access", None) or AccessSettings()
    legacy = {platform: frozenset(getattr(getattr(settings, platform, None), "integrator_user_ids", None) or ())
              for platform in listed_platforms()}
    return AccessPolicy(access, legacy)
