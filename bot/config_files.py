"""The configuration files the coach reads: packaged defaults, overridden file by file.

The defaults ship inside the package `coach_config` (the source tree's `config/` folder) and
are found with importlib.resources, so an installed wheel works from any directory. A
school's folder (`COACH_CONFIG_DIR`) overrides per file: a file present there wins, a file
absent falls back to the default. Folders of files (the triage corpus, the Teams app) merge by
file name, so a school adds a corpus file of its own or replaces one of ours by its name.
The settings file itself may also be named on its own by `COACH_CONFIG_FILE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path

PACKAGE = "coach_config"
SETTINGS_FILE = "coach.yaml"
CONFIG_DIR_ENV = "COACH_CONFIG_DIR"
CONFIG_FILE_ENV = "COACH_CONFIG_FILE"

# What the coach reads (listed by `coach doctor`): single files, then folders merged by file name.
FILES = ("coach.yaml", "triage.yaml", "tool-glossary.yaml", "slack-manifest.yaml")
FOLDERS = {"triage-corpus": "*.jsonl", "teams": "*"}


class ConfigSource(StrEnum):
    """Where one configuration file was found."""

    DEFAULT = "default"  # packaged with the coach
    FILE = "file"  # the school's folder, COACH_CONFIG_DIR
    ENVIRONMENT = "environment"  # named on its own by a variable (COACH_CONFIG_FILE)


class ConfigFilesError(RuntimeError):
    """The packaged defaults cannot be found (a broken install); the message says so."""


@dataclass(frozen=True)
class ConfigFile:
    """One file the coach reads, and where it came from."""

    name: str  # relative to the configuration folder, e.g. "triage-corpus/team.jsonl"
    path: Path
    source: ConfigSource

    def describe(self) -> str:
        """`default`, or the path with the variable that chose it."""
        if self.source is ConfigSource.DEFAULT:
            return "default (packaged)"
        variable = CONFIG_FILE_ENV if self.source is ConfigSource.ENVIRONMENT else CONFIG_DIR_ENV
        return f"{self.path} ({variable})"


def packaged_dir() -> Path:
    """The folder of the packaged defaults, found through the package, never relative to a source file."""
    try:
        root = resources.files(PACKAGE)
    except ModuleNotFoundError:
        # An editable install made before the package existed maps no `coach_config`.
        raise ConfigFilesError(f"the default configuration ({PACKAGE}) is not installed; "
                               "reinstall the coach (scripts/install)") from None
    if not isinstance(root, Path):
        # A zipped install: the readers below need real files (YAML, JSON Lines, PNG icons).
        raise ConfigFilesError(f"the default configuration ({PACKAGE}) is not installed as plain files: {root}")
    return root


class ConfigFiles:
    """Resolves each configuration file: the school's copy when present, else the packaged default."""

    def __init__(self, school_dir: Path | None = None, *, settings_file: Path | None = None,
                 defaults: Path | None = None) -> None:
        self.school_dir = school_dir
        self.settings_file = settings_file
        self.defaults = defaults if defaults is not None else packaged_dir()

    def file(self, name: str) -> ConfigFile:
        """The file `name` (relative, e.g. "triage.yaml" or "teams/color.png") and its source."""
        if name == SETTINGS_FILE and self.settings_file is not None:
            return ConfigFile(name, self.settings_file, ConfigSource.ENVIRONMENT)
        if self.school_dir is not None and (self.school_dir / name).is_file():
            return ConfigFile(name, self.school_dir / name, ConfigSource.FILE)
        return ConfigFile(name, self.defaults / name, ConfigSource.DEFAULT)

    def path(self, name: str) -> Path:
        """Where to read `name` from."""
        return self.file(name).path

    def folder(self, name: str, pattern: str = "*") -> list[ConfigFile]:
        """The files of folder `name` matching `pattern`, merged by file name (the school's win), sorted by name."""
        found: dict[str, ConfigFile] = {}
        for source, root in ((ConfigSource.DEFAULT, self.defaults), (ConfigSource.FILE, self.school_dir)):
            if root is None or not (root / name).is_dir():
                continue
            for path in sorted((root / name).glob(pattern)):
                if path.is_file() and not path.name.startswith("."):
                    found[path.name] = ConfigFile(f"{name}/{path.name}", path, source)
        return [found[key] for key in sorted(found)]

    def describe(self) -> list[ConfigFile]:
        """Every file the coach reads, with its source (for `coach doctor`)."""
        listed = [self.file(name) for name in FILES]
        for folder, pattern in FOLDERS.items():
            listed.extend(self.folder(folder, pattern))
        return listed


__all__ = ["ConfigFile", "ConfigFiles", "ConfigFilesError", "ConfigSource", "packaged_dir"]
