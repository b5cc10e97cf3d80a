"""Settings sources and the architecture rule: the core never knows the platforms."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def imports_of(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("folder,forbidden", [
    ("bot", ("slack_bolt", "slack_sdk", "botbuilder", "adapters")),
    ("knowledge", ("bot", "adapters", "slack_bolt", "slack_sdk", "botbuilder")),
])
def test_layering(folder, forbidden):
    offenders = {
        path: sorted(n for n in names if n.split(".")[0] in forbidden)
        for path, names in imports_of(folder).items()
    }
    assert {p: n for p, n in offenders.items() if n} == {}


def test_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("COACH_REPLY__MAX_WORDS", "three")
    with pytest.raises(SettingsError, match=r"reply\.max_words \(COACH_REPLY__MAX_WORDS\)"):
        load_settings()


def test_platform_names_and_dotenv(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("SLACK_BOT_TOKEN=xoxb-from-dotenv\nCOACH_RETRIEVAL__MAX_SOURCES=1\n")
    monkeypatch.setenv("COACH_ENV_FILE", str(env_file))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    s = Settings()
    assert s.slack.bot_token.get_secret_value() == "xoxb-from-dotenv"
    assert "xoxb" not in repr(s)
    assert s.retrieval.max_sources == 1
    assert s.openai.base_url == "http://127.0.0.1:9/v1"


def test_constructor_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COACH_DATA_DIR", "/somewhere/else")
    assert Settings(data_dir=tmp_path).data_dir == tmp_path


def test_config_file_is_read(tmp_path, monkeypatch):
    config = tmp_path / "coach.yaml"
    config.write_text("safeguarding:\n  contact_name: Ms Rivera\n")
    monkeypatch.setenv("COACH_CONFIG_FILE", str(config))
    assert Settings().safeguarding.contact_name == "Ms Rivera"


PLATFORM_NAMES = frozenset({"slack", "teams", "msteams"})
# Where the core may still spell a platform's name, and why: none of these decides anything by platform.
ALLOWED_PLATFORM_LITERALS = {
    ("bot/settings_env.py", "slack"): "settings section for the platform's standard variables (SLACK_BOT_TOKEN)",
    ("bot/settings_env.py", "teams"): "settings section for the platform's standard variables (MicrosoftAppId)",
    ("bot/config_files.py", "teams"): "the config/teams/ folder (the Teams app package) shipped with the config",
    ("bot/compose/replies.py", "slack"): "user-facing words for a delivery channel: 'on Slack'",
    ("bot/compose/replies.py", "teams"): "user-facing words for a delivery channel: 'in Teams'",
    ("bot/privacy/masker.py", "teams"): "Microsoft Teams as a tool a teacher names, never masked as a person",
    ("bot/compose/asks.py", "teams"): "Microsoft Teams in the list of product names that keep their capital",
}


def platform_literals(folder: str) -> set[tuple[str, str]]:
    """Every (file, literal) in `folder` whose string literal is exactly a platform's name."""
    found: set[tuple[str, str]] = set()
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in PLATFORM_NAMES:
                found.add((path.relative_to(ROOT).as_posix(), node.value.lower()))
    return found


def test_core_names_no_platform():
    """The core asks what a platform can do (`bot.platforms`), never which platform it is."""
    found = platform_literals("bot")
    assert found - set(ALLOWED_PLATFORM_LITERALS) == set()
    # The allow-list shrinks with the code: an entry nobody needs any more is an error too.
    assert set(ALLOWED_PLATFORM_LITERALS) - found == set()


def test_capabilities_come_from_the_adapters():
    from adapters import slack, teams
    from adapters.platforms import declare_platforms
    from bot.platforms import Capability, Platforms, platforms

    declare_platforms()
    assert platforms.can(slack.PLATFORM, Capability.TELL_LATER)
    assert platforms.can(teams.PLATFORM, Capability.TELL_LATER)
    # The terminal and replay declare nothing: no teacher there is told later.
    assert not platforms.can("console", Capability.TELL_LATER)
    assert not platforms.can("replay", Capability.TELL_LATER)
    fresh = Platforms()
    fresh.declare("chat", [Capability.TELL_LATER])
    fresh.declare("kiosk", [])
    assert fresh.can("chat", Capability.TELL_LATER) and not fresh.can("kiosk", Capability.TELL_LATER)
    assert fresh.with_capability(Capability.TELL_LATER) == {"chat"}
    assert fresh.declared() == {"chat", "kiosk"}
