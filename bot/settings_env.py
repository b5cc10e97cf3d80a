"""Setting sources beside `COACH_*` variables: the platforms' own variable names, and a `.env` file.

`bot/settings.py` reads these after the constructor and the environment's `COACH_*` names, and
before the YAML settings file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


# The platforms' own variable names, as their SDKs and docs use them.
PLATFORM_ENV = {
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "COACH_SLACK_API_URL": ("slack", "api_url"),
    "OPENAI_API_KEY": ("openai", "api_key"),
    "OPENAI_BASE_URL": ("openai", "base_url"),
    "MicrosoftAppId": ("teams", "app_id"),
    "MicrosoftAppPassword": ("teams", "app_password"),
    "MicrosoftAppTenantId": ("teams", "tenant_id"),
    "MicrosoftAppType": ("teams", "app_type"),
}


def _platform_values(env: dict[str, str | None]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for name, (section, key) in PLATFORM_ENV.items():
        value = env.get(name)
        if value:
            out.setdefault(section, {})[key] = value
    return out


class PlatformEnvSource(PydanticBaseSettingsSource):
    """Reads the platforms' usual variable names into their sections."""

    def __init__(self, settings_cls: type[BaseSettings], env: dict[str, str | None]) -> None:
        super().__init__(settings_cls)
        self.values = _platform_values(env)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.values


class DotEnvCoachSource(PydanticBaseSettingsSource):
    """A `.env` file: `COACH_*` names and the platforms' names alike."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.values: dict[str, Any] = {}
        if path.is_file():
            raw = dotenv_values(path)
            self.values = _platform_values(raw)
            for name, value in raw.items():
                if not name.startswith("COACH_") or value is None:
                    continue
                keys = name[len("COACH_"):].lower().split("__")
                node = self.values
                for key in keys[:-1]:
                    node = node.setdefault(key, {})
                node[keys[-1]] = value

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.values
