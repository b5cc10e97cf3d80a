"""How this process authenticates to the Bot Framework: the mode the settings allow, and the CloudAdapter.

Shared by the server (`/api/messages`) and by processes that only send (`proactive`, the outbox
worker), so neither imports the other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, ActivityTypes

from adapters.errors import StartupError
from bot.settings import TeamsSettings

log = logging.getLogger(__name__)

EMULATOR = "emulator"
AUTHENTICATED = "authenticated"


@dataclass(frozen=True)
class _BotConfig:
    """The attribute names ConfigurationBotFrameworkAuthentication reads."""

    APP_ID: str | None
    APP_PASSWORD: str | None
    APP_TYPE: str
    APP_TENANTID: str | None


def auth_mode(teams: TeamsSettings) -> str:
    """`authenticated` or `emulator`; a half-configured registration is refused with the variable to set."""
    app_id = (teams.app_id or "").strip()
    password = teams.app_password.get_secret_value().strip() if teams.app_password else ""
    app_type = (teams.app_type or "MultiTenant").strip().lower()
    if app_type not in ("multitenant", "singletenant", "userassignedmsi"):
        raise StartupError(f"MicrosoftAppType must be MultiTenant, SingleTenant or UserAssignedMSI, not {teams.app_type!r}")
    if app_type == "userassignedmsi":
        if not app_id or not teams.tenant_id:
            raise StartupError("MicrosoftAppType=UserAssignedMSI needs MicrosoftAppId and MicrosoftAppTenantId")
        return AUTHENTICATED
    if not app_id and not password:
        if app_type == "singletenant":
            raise StartupError("MicrosoftAppType=SingleTenant needs MicrosoftAppId, MicrosoftAppPassword "
                               "and MicrosoftAppTenantId")
        return EMULATOR
    if not app_id:
        raise StartupError("MicrosoftAppPassword is set but MicrosoftAppId is not; set both, or neither "
                           "for local emulator mode")
    if not password:
        raise StartupError("MicrosoftAppId is set but MicrosoftAppPassword is not; set both, or neither "
                           "for local emulator mode")
    if app_type == "singletenant" and not teams.tenant_id:
        raise StartupError("MicrosoftAppType=SingleTenant needs MicrosoftAppTenantId (the Azure AD tenant id)")
    return AUTHENTICATED


def make_adapter(teams: TeamsSettings) -> CloudAdapter:
    """A CloudAdapter authenticating with the configured app registration (or none, in emulator mode)."""
    mode = auth_mode(teams)
    password = teams.app_password.get_secret_value() if teams.app_password else None
    config = _BotConfig(
        APP_ID=(teams.app_id or None) if mode == AUTHENTICATED else None,
        APP_PASSWORD=password if mode == AUTHENTICATED else None,
        APP_TYPE=teams.app_type or "MultiTenant",
        APP_TENANTID=teams.tenant_id,
    )
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(config))
    adapter.on_turn_error = _on_turn_error
    return adapter


async def _on_turn_error(turn_context: TurnContext, error: Exception) -> None:
    # Logged with the traceback; the activity body (teacher's words) stays out of the log.
    activity = turn_context.activity
    log.error("Teams turn failed (%s activity %s): %s", activity.type, activity.id, type(error).__name__,
              exc_info=error)
    if activity.type == ActivityTypes.message:
        try:
            await turn_context.send_activity(
                Activity(type=ActivityTypes.message,
                         text="Sorry, something went wrong on my side. Please try again in a minute."))
        except Exception:
            log.warning("could not tell the teacher about the failure", exc_info=True)
