"""Typed settings, built once at start-up and passed down.

Sources, first wins: constructor arguments, `COACH_*` environment variables (nested with
`__`, e.g. `COACH_RETRIEVAL__LEXICAL_WEIGHT`), the platforms' usual variable names
(`SLACK_BOT_TOKEN`, `OPENAI_API_KEY`, `MicrosoftAppId`, ...), a `.env` file, the YAML
settings file (`COACH_CONFIG_FILE`, else `coach.yaml` in the school's `COACH_CONFIG_DIR`, else
the packaged default; `bot/config_files.py`), then the defaults below.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bot.access import AccessSettings
from bot.config_files import CONFIG_DIR_ENV, CONFIG_FILE_ENV, SETTINGS_FILE, ConfigFile, ConfigFiles, ConfigFilesError
from bot.settings_env import PLATFORM_ENV, DotEnvCoachSource, PlatformEnvSource


class SettingsError(RuntimeError):
    """A setting is missing or wrong; the message names it."""


class RetrievalSettings(BaseModel):
    mode: Literal["dense", "lexical", "hybrid"] = "hybrid"
    lexical_weight: float = Field(0.05, ge=0.0, le=1.0, description="weight of BM25 added to dense similarity (benchmarks/retrieval.py)")
    late_interaction: bool = Field(True, description="re-rank the best candidates word piece by word piece (local model only)")
    context_weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of earlier turns in a follow-up")
    ask_weight: float = Field(0.5, ge=0.0, le=4.0, description="in a long message, how much again the sentences "
                              "that carry the ask count (0: the whole message only; benchmarks/retrieval.py)")
    min_confidence: float = Field(0.2, ge=0.0, le=1.0, description="below this the coach says it has nothing (0.2 = cosine 0.28)")
    max_sources: int = Field(2, ge=0, le=5)


class ComposerSettings(BaseModel):
    max_words: int = Field(120, ge=30, le=400)
    max_message_chars: int = Field(4000, ge=200, description="longer messages are cut, with a notice")
    max_note_chars: int = Field(1500, ge=200, le=2800,
                                description="'Read it' shows an entry's note up to this length (Slack sections hold 3,000)")


class SafeguardingTarget(BaseModel):
    """Where one person (the safeguarding lead, or a deputy) is reached privately; any or all of them."""

    email: str | None = Field(None, description="their address(es), comma-separated; needs COACH_EMAIL__HOST")
    slack: str | None = Field(None, description="their Slack member id (a direct message) or a private channel id; "
                              "needs SLACK_BOT_TOKEN")
    teams: str | None = Field(None, description="a private Teams conversation with them (chat or private channel "
                              "id); needs the Teams credentials and COACH_TEAMS_CHANNEL__SERVICE_URL")

    def configured(self) -> bool:
        return bool(self.email or self.slack or self.teams)


class SafeguardingSettings(BaseModel):
    contact_name: str = "the designated safeguarding lead"
    contact_detail: str = "through the school office"
    procedure: str = "your school's safeguarding procedure"
    target: SafeguardingTarget = Field(default_factory=SafeguardingTarget, description="the safeguarding lead: "
                                       "receives the full, unmasked account of a concern; nobody else does")
    deputy: SafeguardingTarget = Field(default_factory=SafeguardingTarget, description="receives the concern "
                                       "too when nobody has claimed it after `deputy_after_minutes`")
    deputy_after_minutes: float = Field(30.0, ge=0, description="0 never re-sends to the deputy")


class RetentionSettings(BaseModel):
    """How long each kind of stored data is kept, in days (0 keeps it); applied daily and by `coach privacy purge`."""

    turns_days: int = Field(365, ge=0, description="conversation turns (teacher text, replies), their Teams "
                            "reply cards and model-usage rows")
    inbound_days: int = Field(7, ge=0, description="inbound platform payloads and their dedupe keys")
    feedback_days: int = Field(365, ge=0, description="button clicks on replies")
    resolved_escalations_days: int = Field(365, ge=0, description="resolved handoffs, with their delivery rows")
    outbox_days: int = Field(30, ge=0, description="bodies of delivered handoff messages (the delivery record stays)")


class HandoffSettings(BaseModel):
    integrator_name: str = "an integrator"
    integrator_response: str = "within one school day"
    helpdesk_response: str = "within the hour during school hours"
    mask_transcripts: bool = True


class SlackSettings(BaseModel):
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    ephemeral_slash_replies: bool = False
    integrator_user_ids: list[str] = Field(default_factory=list)
    integrator_channel: str | None = None
    thinking_after_seconds: float = 1.5


class TeamsSettings(BaseModel):
    app_id: str | None = None
    app_password: SecretStr | None = None
    tenant_id: str | None = None
    app_type: str = "MultiTenant"
    port: int = 3978


class OpenAISettings(BaseModel):
    api_key: SecretStr | None = None
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    embedding_model: str = "text-embedding-3-small"
    timeout_seconds: float = Field(20.0, gt=0)
    max_retries: int = Field(2, ge=0)
    mask_private_data: bool = True
    deadline_seconds: float = Field(30.0, gt=0, description="longest a teacher waits for a model reply, "
                                    "retries and repair included; then the template composer answers")
    llm_triage: bool = Field(False, description="ask the model about ambiguous messages (never safeguarding)")
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="USD per million tokens (input, output) by model; adds to bot/usage.py's table")


class EmailSettings(BaseModel):
    """SMTP delivery of handoffs (helpdesk tickets, integrator alerts); off until `host` is set."""

    host: str | None = None
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = Field(True, description="upgrade a plain connection with STARTTLS (port 587)")
    ssl: bool = Field(False, description="implicit TLS from the start (port 465); overrides starttls")
    username: str | None = None
    password: SecretStr | None = None
    ca_file: str | None = Field(None, description="a CA bundle for a server with a private certificate")
    from_addr: str = "integration-coach@localhost"
    helpdesk_to: str | None = Field(None, description="comma-separated addresses that receive helpdesk tickets")
    integrator_to: str | None = Field(None, description="comma-separated addresses that receive integrator handoffs")
    timeout_seconds: float = Field(20.0, gt=0)


class WebhookSettings(BaseModel):
    """A JSON webhook (ticket system, automation), signed with HMAC-SHA256; off until `url` is set."""

    url: str | None = None
    secret: SecretStr | None = None
    targets: list[str] = Field(default_factory=lambda: ["helpdesk", "integrator"])
    timeout_seconds: float = Field(10.0, gt=0)


class TeamsChannelSettings(BaseModel):
    """The integrators' Teams channel, reached proactively through the Bot Connector; off until conversation_id is set.

    The bot stores the channel's conversation reference when it is added there; `service_url`
    lets it post before that (copy it from any activity the bot received in the tenant).
    """

    service_url: str | None = Field(None, description="the tenant's Bot Connector URL, e.g. https://smba.trafficmanager.net/emea/")
    conversation_id: str | None = Field(None, description="the channel id, 19:...@thread.tacv2")


class OutboxSettings(BaseModel):
    """Retries for handoff delivery: exponential backoff until delivered, or until an operator looks."""

    backoff_base_seconds: float = Field(5.0, gt=0)
    backoff_max_seconds: float = Field(900.0, gt=0)
    max_attempts: int = Field(50, ge=0, description="then the row is marked failed for `coach handoffs retry`; 0 = never stop")
    lease_seconds: float = Field(120.0, gt=0, description="a row being sent by a process that died is retried after this")
    poll_seconds: float = Field(5.0, gt=0)
    batch_size: int = Field(20, ge=1)
    recover_seconds: float = Field(60.0, gt=0, description="how often the worker looks for escalations missing "
                                                          "delivery rows (newest first, teacher notices included)")
    recover_days: int = Field(7, ge=1, description="how far back recovery looks")


class InsightsSettings(BaseModel):
    """`coach report` and `coach kb draft-gaps`: aggregate, never single out a teacher."""

    min_group_size: int = Field(3, ge=1, description="a topic or gap is shown only when this many teachers asked")
    topic_similarity: float = Field(0.45, ge=0.0, le=1.0, description="average cosine that joins questions into a topic")
    gap_similarity: float = Field(0.35, ge=0.0, le=1.0, description="the same for knowledge gaps (no entry anchors them)")
    weak_match: float = Field(0.30, ge=0.0, le=1.0, description="a coached question this far from every entry is a gap; 0 turns it off")
    max_examples: int = Field(3, ge=0, le=10, description="masked example questions per topic or gap")
    top_topics: int = Field(10, ge=1, le=50)
    top_gaps: int = Field(10, ge=1, le=50)


class MaskingSettings(BaseModel):
    """The privacy masker (bot/privacy/): what it must never mask besides the tool glossary."""

    allow: list[str] = Field(default_factory=list, description="tool or app names never masked, beyond "
                             "config/tool-glossary.yaml and the built-in list")
class CheckinSettings(BaseModel):
    """Coaching cycles: offers to check in after a teacher tries something, sent inside school hours."""

    enabled: bool = Field(True, description="offer check-ins when a teacher says what they will try")
    timezone: str = Field("Europe/London", description="the school's time zone; a Slack user's own zone wins when known")
    school_day_start: str = Field("08:30", pattern=r"^\d{2}:\d{2}$", description="no check-in before this local time")
    school_day_end: str = Field("16:30", pattern=r"^\d{2}:\d{2}$", description="no check-in after this local time")
    send_time: str = Field("15:30", pattern=r"^\d{2}:\d{2}$", description="when on the chosen day (after lessons)")
    closures: list[str] = Field(default_factory=list, description="closure dates, YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD")
    half_terms: list[str] = Field(default_factory=list, description="half-term holidays (ranges as above), "
                                  "for \"after half term\"; they are closures too")
    few_days: int = Field(3, ge=1, le=14, description="\"in a few days\", in days")
    poll_seconds: float = Field(30.0, gt=0)
    lease_seconds: float = Field(120.0, gt=0, description="a check-in being sent by a process that died is sent after this")


class Settings(BaseSettings):
    """Every setting the coach reads, with where it comes from."""

    model_config = SettingsConfigDict(env_prefix="COACH_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path(".coach")
    config_dir: Path | None = Field(None, description="the school's configuration folder: a file there "
                                    "replaces the packaged default of the same name (bot/config_files.py)")
    config_file: Path | None = Field(None, description="the settings file, instead of coach.yaml in config_dir "
                                     "or the packaged one")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the data directory")
    chroma_url: str | None = Field(None, description="a Chroma server; default on disk in the data directory")
    embeddings: Literal["local", "openai"] = "local"
    composer: Literal["template", "llm", "auto"] = "auto"
    log_level: str = "INFO"
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    insights: InsightsSettings = Field(default_factory=InsightsSettings)
    reply: ComposerSettings = Field(default_factory=ComposerSettings)
    safeguarding: SafeguardingSettings = Field(default_factory=SafeguardingSettings)
    handoff: HandoffSettings = Field(default_factory=HandoffSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    teams: TeamsSettings = Field(default_factory=TeamsSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    teams_channel: TeamsChannelSettings = Field(default_factory=TeamsChannelSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    masking: MaskingSettings = Field(default_factory=MaskingSettings)
    checkins: CheckinSettings = Field(default_factory=CheckinSettings)
    access: AccessSettings = Field(default_factory=AccessSettings, description="who may claim and resolve handoffs "
                                   "and use the integrators' tools, per role and platform identity (bot/access.py)")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("config_dir")
    @classmethod
    def _config_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @property
    def config(self) -> ConfigFiles:
        """The configuration files: the school's folder first, file by file, then the packaged defaults."""
        return ConfigFiles(self.config_dir, settings_file=self.config_file)

    @property
    def state_url(self) -> str:
        """Where conversation memory, escalations and the outbox live."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'state.db').resolve()}"

    @property
    def llm_enabled(self) -> bool:
        if self.composer == "template":
            return False
        return self.composer == "llm" or self.openai.api_key is not None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        given = getattr(init_settings, "init_kwargs", {})
        return (init_settings, env_settings, *_outside_sources(settings_cls, given))


def _settings_file(given: dict[str, Any]) -> ConfigFile:
    """The YAML settings file: named on its own, else in the school's folder, else the packaged one."""
    env_file = Path(os.environ.get("COACH_ENV_FILE", ".env"))
    # In the same order as the sources: constructor, environment, then `.env`.
    dotenv = dotenv_values(env_file) if env_file.is_file() else {}
    school_dir = given.get("config_dir") or os.environ.get(CONFIG_DIR_ENV) or dotenv.get(CONFIG_DIR_ENV) or None
    named = given.get("config_file") or os.environ.get(CONFIG_FILE_ENV) or dotenv.get(CONFIG_FILE_ENV) or None
    return ConfigFiles(Path(school_dir) if school_dir else None,
                       settings_file=Path(named) if named else None).file(SETTINGS_FILE)


def _outside_sources(settings_cls: type[BaseSettings], given: dict[str, Any]) -> tuple[PydanticBaseSettingsSource, ...]:
    """The sources after the constructor and `COACH_*` variables: platform names, `.env`, the YAML file."""
    env_file = Path(os.environ.get("COACH_ENV_FILE", ".env"))
    return (PlatformEnvSource(settings_cls, dict(os.environ)), DotEnvCoachSource(settings_cls, env_file),
            YamlFileSource(settings_cls, _settings_file(given).path))


def _leaves(values: dict[str, Any], model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted names of the settings `values` gives, down to the fields that are not sections."""
    for key, value in values.items():
        field = model.model_fields.get(key)
        if field is None:
            continue
        kind = field.annotation
        if isinstance(value, dict) and isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _leaves(value, kind, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def setting_sources(settings: Settings) -> dict[str, str]:
    """Each setting given anywhere (not left at its default) and where it came from, first source wins.

    Names and sources only, never values: secrets are among them. For `coach doctor`.
    """
    platform = {f"{section}.{key}": name for name, (section, key) in PLATFORM_ENV.items()}
    env_file = Path(os.environ.get("COACH_ENV_FILE", ".env"))
    given = {"config_dir": settings.config_dir, "config_file": settings.config_file}
    yaml_file = _settings_file(given)
    platform_source, dotenv_source, yaml_source = _outside_sources(Settings, given)
    labelled: list[tuple[PydanticBaseSettingsSource, Callable[[str], str]]] = [
        (EnvSettingsSource(Settings), lambda name: f"environment (COACH_{name.upper().replace('.', '__')})"),
        (platform_source, lambda name: f"environment ({platform[name]})"),
        (dotenv_source, lambda name: f".env file {env_file.resolve()}"),
        (yaml_source, lambda name: f"{SETTINGS_FILE}: {yaml_file.describe()}"),
    ]
    found: dict[str, str] = {}
    for source, label in labelled:
        for name in _leaves(source(), Settings):
            found.setdefault(name, label(name))
    return dict(sorted(found.items()))


class YamlFileSource(PydanticBaseSettingsSource):
    """The YAML settings file; a missing or malformed file stops start-up, naming the file and line."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"settings file {path}: cannot read ({exc.strerror})") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise SettingsError(f"settings file {path}:{where}: not valid YAML ({problem})") from None
        if data is not None and not isinstance(data, dict):
            raise SettingsError(f"settings file {path}: must be a mapping of settings, not {type(data).__name__}")
        self.values: dict[str, Any] = data or {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.values


def load_settings(**overrides: Any) -> Settings:
    """Build settings once; a bad value fails here with the setting's name."""
    try:
        return Settings(**overrides)
    except ConfigFilesError as exc:
        raise SettingsError(str(exc)) from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            env = "COACH_" + "__".join(str(p) for p in err["loc"]).upper()
            lines.append(f"setting {name} ({env}): {err['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
