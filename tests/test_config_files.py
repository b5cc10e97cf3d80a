"""The default configuration is read through the package `coach_config`; a school's folder overrides it file by file.

A malformed file, the school's or one named by a variable, stops start-up naming the file and line.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from setuptools import find_packages

from adapters.cli import main
from adapters.handoff_commands import config_checks
from adapters.wiring import StartupError, check_triage_files, make_triage
from bot import config_files
from bot.config_files import ConfigFiles, ConfigSource, packaged_dir
from bot.settings import Settings, SettingsError, load_settings
from bot.triage.build import corpus_files, shipped_model
from bot.triage.categories import Category

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "config"


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch, tmp_path):
    """Only what each test sets: no configuration from the developer's environment or a `.env`."""
    for name in ("COACH_CONFIG_DIR", "COACH_CONFIG_FILE", "COACH_DATA_DIR", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COACH_ENV_FILE", str(tmp_path / "none.env"))


def test_defaults_are_found_through_the_package_not_a_relative_path(monkeypatch, tmp_path):
    assert packaged_dir() == Path(str(resources.files("coach_config")))
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.config_dir is None
    assert all(f.source is ConfigSource.DEFAULT and f.path.is_file() for f in settings.config.describe())
    # Move the package: everything follows the package lookup, nothing stays behind on a source-tree path.
    moved = tmp_path / "installed" / "coach_config"
    shutil.copytree(CONFIG_DIR, moved)
    (moved / "coach.yaml").write_text("handoff:\n  integrator_name: the moved package\n")
    monkeypatch.setattr(config_files.resources, "files", lambda package: moved if package == "coach_config" else None)
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.handoff.integrator_name == "the moved package"
    described = settings.config.describe()
    assert {f.name for f in described} >= {"coach.yaml", "triage.yaml", "tool-glossary.yaml",
                                           "triage-corpus/team.jsonl", "teams/manifest.json"}
    assert all(moved in f.path.parents for f in described)


def test_no_runtime_module_finds_config_beside_its_own_file():
    # The two source-tree tools that rewrite config/ (the shipped triage data, the Teams icons) may.
    tools = {ROOT / "bot" / "triage" / "ship.py", ROOT / "adapters" / "teams" / "icons.py"}
    relative = re.compile(r"""parents\[\d\]\s*/\s*["']config["']|PROJECT_ROOT""")
    offenders = [str(p.relative_to(ROOT)) for folder in ("bot", "adapters", "knowledge")
                 for p in (ROOT / folder).rglob("*.py") if p not in tools and relative.search(p.read_text())]
    assert offenders == []


def test_the_wheel_lists_every_package_and_ships_the_configuration():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(str(ROOT), include=["bot*", "knowledge*", "adapters*"]))
    assert set(project["packages"]) == found | {"coach_config", "coach_migrations"}
    assert project["package-dir"]["coach_config"] == "config"
    assert project["package-dir"]["coach_migrations"] == "migrations"
    migrations = ROOT / "migrations"
    shipped_migrations = {p.relative_to(migrations).as_posix() for pattern in project["package-data"]["coach_migrations"]
                 for p in migrations.glob(pattern)}
    assert {"alembic.ini", "script.py.mako"} <= shipped_migrations
    assert {p.relative_to(migrations).as_posix() for p in (migrations / "versions").glob("*.py")} <= shipped_migrations
    shipped = {p.relative_to(CONFIG_DIR).as_posix() for pattern in project["package-data"]["coach_config"]
               for p in CONFIG_DIR.glob(pattern)}
    wanted = {f.path.relative_to(CONFIG_DIR).as_posix() for f in ConfigFiles(defaults=CONFIG_DIR).describe()}
    assert wanted <= shipped


def test_a_schools_file_wins_and_an_absent_one_falls_back(tmp_path, embedder):
    school = tmp_path / "school"
    (school / "triage-corpus").mkdir(parents=True)
    (school / "coach.yaml").write_text("handoff:\n  integrator_name: Mr Adeyemi\n")
    (school / "tool-glossary.yaml").write_text("wobblewall: shared sticky-note wall for class ideas\n")
    added = [{"text": f"the laminator in the staff room is jammed again ({i})", "category": "fault",
              "family": "school-1"} for i in range(5)]
    (school / "triage-corpus" / "our-school.jsonl").write_text("\n".join(json.dumps(a) for a in added) + "\n")
    # A school's team.jsonl replaces the packaged one of that name.
    team = (CONFIG_DIR / "triage-corpus" / "team.jsonl").read_text().splitlines()
    (school / "triage-corpus" / "team.jsonl").write_text("\n".join(team[:-1]) + "\n")

    settings = Settings(data_dir=tmp_path / "data", config_dir=school)
    config = settings.config
    assert settings.handoff.integrator_name == "Mr Adeyemi"
    assert settings.handoff.integrator_response == "within one school day"  # not in the school's file: default
    assert config.file("coach.yaml").path == school / "coach.yaml"
    assert config.file("tool-glossary.yaml").source is ConfigSource.FILE
    assert config.file("triage.yaml") == config_files.ConfigFile("triage.yaml", packaged_dir() / "triage.yaml",
                                                                 ConfigSource.DEFAULT)
    corpus = {f.name: f for f in config.folder("triage-corpus", "*.jsonl")}
    assert corpus["triage-corpus/our-school.jsonl"].source is ConfigSource.FILE
    assert corpus["triage-corpus/team.jsonl"].path == school / "triage-corpus" / "team.jsonl"
    assert corpus["triage-corpus/writer-a.jsonl"].source is ConfigSource.DEFAULT
    assert corpus_files(config) == sorted(corpus_files(config), key=lambda p: p.name)

    # The coach reads them so: the school's examples join the packaged ones and the router is refitted on them.
    triage = make_triage(settings)
    assert triage.model.digest != shipped_model().digest
    assert triage.decide("the laminator in the staff room is jammed again").category is Category.FAULT

    rows = {c.name: c.detail for c in config_checks(settings)}
    assert rows["config coach.yaml"] == f"{school / 'coach.yaml'} (COACH_CONFIG_DIR)"
    assert rows["config triage.yaml"] == "default (packaged)"
    assert rows["config triage-corpus/our-school.jsonl"].startswith(str(school))
    assert rows["setting handoff.integrator_name"] == f"coach.yaml: {school / 'coach.yaml'} (COACH_CONFIG_DIR)"


def test_a_config_dir_named_in_dotenv_holds_coach_yaml_too(tmp_path, monkeypatch):
    school = tmp_path / "school"
    school.mkdir()
    (school / "coach.yaml").write_text("handoff:\n  integrator_name: Ms Lindqvist\n")
    (tmp_path / "coach.env").write_text(f"COACH_CONFIG_DIR={school}\n")
    monkeypatch.setenv("COACH_ENV_FILE", str(tmp_path / "coach.env"))
    settings = load_settings(data_dir=tmp_path)
    assert settings.config_dir == school and settings.handoff.integrator_name == "Ms Lindqvist"
    assert {c.name: c.detail for c in config_checks(settings)}["setting config_dir"].startswith(".env file")


def test_doctor_names_environment_sources(tmp_path, monkeypatch):
    named = tmp_path / "elsewhere.yaml"
    named.write_text("retrieval:\n  max_sources: 1\n")
    monkeypatch.setenv("COACH_CONFIG_FILE", str(named))
    monkeypatch.setenv("COACH_RETRIEVAL__MODE", "dense")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-shown")
    rows = {c.name: c.detail for c in config_checks(load_settings(data_dir=tmp_path))}
    assert rows["config coach.yaml"] == f"{named} (COACH_CONFIG_FILE)"
    assert rows["setting retrieval.max_sources"] == f"coach.yaml: {named} (COACH_CONFIG_FILE)"
    assert rows["setting retrieval.mode"] == "environment (COACH_RETRIEVAL__MODE)"
    assert rows["setting slack.bot_token"] == "environment (SLACK_BOT_TOKEN)"
    assert "xoxb-not-shown" not in repr(rows)


def test_a_malformed_settings_file_stops_start_up_naming_file_and_line(tmp_path, monkeypatch):
    school = tmp_path / "school"
    school.mkdir()
    (school / "coach.yaml").write_text("handoff:\n  integrator_name: Ms Rivera\n  integrator_response: [unclosed\n")
    with pytest.raises(SettingsError, match=re.escape(f"{school / 'coach.yaml'}: line 4, column 1: not valid YAML")):
        load_settings(config_dir=school)
    # The same through the command line: one clear line, exit code 2, no fallback to the defaults.
    result = CliRunner().invoke(main, ["ask", "hello"], env={"COACH_CONFIG_DIR": str(school),
                                                             "COACH_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 2
    assert "coach.yaml: line 4, column 1: not valid YAML" in " ".join(result.output.split())
    (school / "coach.yaml").write_text("- a list\n- not settings\n")
    with pytest.raises(SettingsError, match="must be a mapping of settings"):
        load_settings(config_dir=school)
    monkeypatch.setenv("COACH_CONFIG_FILE", str(tmp_path / "typo.yaml"))
    with pytest.raises(SettingsError, match=re.escape(f"{tmp_path / 'typo.yaml'}: cannot read")):
        load_settings()
    monkeypatch.delenv("COACH_CONFIG_FILE")
    with pytest.raises(SettingsError, match=r"config_dir \(COACH_CONFIG_DIR\): .*is not a folder"):
        load_settings(config_dir=tmp_path / "no-such-folder")


@pytest.mark.parametrize("name, text, expected", [
    ("triage.yaml", "safeguarding:\n  - 'hurt'\nsmalltalk: [\n", r"triage\.yaml: YAML syntax error: .*line 4"),
    ("tool-glossary.yaml", "padlet: wall\n  bad: indent\n", r"tool-glossary\.yaml: YAML syntax error: .*line 2"),
    ("triage-corpus/team.jsonl", '{"text": "the projector is off", "category": "fault"}\n{"text": \n',
     r"triage-corpus/team\.jsonl:2: not valid JSON"),
])
def test_a_malformed_school_file_stops_start_up(tmp_path, name, text, expected):
    school = tmp_path / "school"
    (school / name).parent.mkdir(parents=True, exist_ok=True)
    (school / name).write_text(text)
    with pytest.raises(StartupError, match="(?s)" + re.escape(str(school)) + ".*" + expected):
        check_triage_files(Settings(data_dir=tmp_path / "data", config_dir=school))
