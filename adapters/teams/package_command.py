"""`coach teams ...`: build the Teams app package, list the conversations the bot can reach.

`coach teams package [--out FILE]` fills config/teams/manifest.json with MicrosoftAppId,
checks it against the manifest schema's required fields and limits, checks the icons
(192x192 colour, 32x32 white-on-transparent outline) and writes the zip Teams uploads.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from adapters.teams.icons import IconError, decode_rgba, png_info

PLACEHOLDER = "{{MICROSOFT_APP_ID}}"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
SCOPES = {"personal", "team", "groupChat"}
ICON_SIZES = {"color": (192, 192), "outline": (32, 32)}
DEFAULT_OUT = "integration-coach-teams.zip"


class PackageError(click.ClickException):
    """The package cannot be built; the message names the setting, field or file."""


@dataclass
class ManifestCheck:
    """Problems (which stop the build) and warnings (which don't)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _text(check: ManifestCheck, node: dict[str, Any], path: str, name: str, limit: int) -> str | None:
    value = node.get(name)
    if not isinstance(value, str) or not value.strip():
        check.problems.append(f"{path}{name} is required")
        return None
    if len(value) > limit:
        check.problems.append(f"{path}{name} is {len(value)} characters; the limit is {limit}")
    return value


def _url(check: ManifestCheck, node: dict[str, Any], path: str, name: str) -> None:
    value = _text(check, node, path, name, 2048)
    if value is None:
        return
    if not value.startswith("https://"):
        check.problems.append(f"{path}{name} must be an https:// URL")
    elif "example.org" in value or "example.com" in value:
        check.warnings.append(f"{path}{name} is still the template's {value}; put your school's page there")


def validate_manifest(manifest: Any) -> ManifestCheck:
    """The manifest schema's required fields and limits (v1.17) that Teams rejects an upload for."""
    check = ManifestCheck()
    if not isinstance(manifest, dict):
        check.problems.append("the manifest must be a JSON object")
        return check
    for name in ("manifestVersion", "version", "id", "developer", "name", "description", "icons", "accentColor"):
        if name not in manifest:
            check.problems.append(f"{name} is required")
    if "version" in manifest and not SEMVER.match(str(manifest["version"])):
        check.problems.append(f"version must look like 1.0.0, not {manifest['version']!r}")
    if "id" in manifest and not GUID.match(str(manifest["id"])):
        check.problems.append(f"id must be a GUID, not {manifest['id']!r}")
    if "accentColor" in manifest and not COLOR.match(str(manifest["accentColor"])):
        check.problems.append(f"accentColor must look like #2E7D6B, not {manifest['accentColor']!r}")
    sections = {"developer": dict, "name": dict, "description": dict, "icons": dict}
    for name, kind in sections.items():
        if name in manifest and not isinstance(manifest[name], kind):
            check.problems.append(f"{name} must be an object")
    developer = manifest.get("developer") if isinstance(manifest.get("developer"), dict) else None
    if developer is not None:
        _text(check, developer, "developer.", "name", 32)
        for name in ("websiteUrl", "privacyUrl", "termsOfUseUrl"):
            _url(check, developer, "developer.", name)
    names = manifest.get("name") if isinstance(manifest.get("name"), dict) else None
    if names is not None:
        _text(check, names, "name.", "short", 30)
        if "full" in names:
            _text(check, names, "name.", "full", 100)
    description = manifest.get("description") if isinstance(manifest.get("description"), dict) else None
    if description is not None:
        _text(check, description, "description.", "short", 80)
        _text(check, description, "description.", "full", 4000)
    icons = manifest.get("icons") if isinstance(manifest.get("icons"), dict) else None
    if icons is not None:
        for name in ("color", "outline"):
            _text(check, icons, "icons.", name, 2048)
    bots = manifest.get("bots")
    if bots is None:
        check.problems.append("bots is required for the Integration Coach (a bot app)")
    elif not isinstance(bots, list) or not bots:
        check.problems.append("bots must be a non-empty list")
    else:
        for i, bot in enumerate(bots):
            where = f"bots[{i}]."
            if not isinstance(bot, dict):
                check.problems.append(f"bots[{i}] must be an object")
                continue
            if not GUID.match(str(bot.get("botId", ""))):
                check.problems.append(f"{where}botId must be the bot's MicrosoftAppId (a GUID), not {bot.get('botId')!r}")
            scopes = bot.get("scopes")
            if not isinstance(scopes, list) or not scopes:
                check.problems.append(f"{where}scopes is required (personal, team, groupChat)")
            elif set(scopes) - SCOPES:
                check.problems.append(f"{where}scopes has unknown {sorted(set(scopes) - SCOPES)}")
            for j, commands in enumerate(bot.get("commandLists") or []):
                items = commands.get("commands") or [] if isinstance(commands, dict) else []
                if len(items) > 10:
                    check.problems.append(f"{where}commandLists[{j}] has {len(items)} commands; the limit is 10")
                for k, command in enumerate(items):
                    _text(check, command, f"{where}commandLists[{j}].commands[{k}].", "title", 32)
                    _text(check, command, f"{where}commandLists[{j}].commands[{k}].", "description", 128)
    return check


def check_icon(data: bytes, role: str, name: str) -> list[str]:
    """Problems with one icon: not a PNG, wrong size, or (outline) not white on transparent."""
    try:
        info = png_info(data, name)
    except IconError as exc:
        return [str(exc)]
    want = ICON_SIZES[role]
    if (info.width, info.height) != want:
        return [f"{name} ({role} icon) is {info.width}x{info.height}; Teams requires {want[0]}x{want[1]}"]
    if role == "outline":
        if not info.has_alpha:
            return [f"{name} (outline icon) must have a transparent background (an alpha channel)"]
        try:
            pixels = decode_rgba(data, name)
        except IconError:
            return []  # a format we cannot inspect; Teams will check the colours itself
        if any(a > 0 and (r, g, b) != (255, 255, 255) for row in pixels for r, g, b, a in row):
            return [f"{name} (outline icon) must be white on a transparent background"]
    return []


@dataclass(frozen=True)
class BuiltPackage:
    """What `build_package` wrote."""

    path: Path
    manifest: dict[str, Any]
    warnings: list[str]


def build_package(app_id: str | None, out: Path, template: Path | Callable[[str], Path]) -> BuiltPackage:
    """Fill the manifest template with the bot id, validate it and the icons, write the zip.

    `template` is the folder of the manifest and icons, or a function naming where each file is
    (the school's copy or the packaged default, file by file).
    """
    locate = template if callable(template) else (lambda name: template / name)
    app_id = (app_id or "").strip()
    if not app_id:
        raise PackageError("MicrosoftAppId is not set: the Teams package needs the bot's app id "
                           "(the Azure Bot registration's Microsoft App ID). Set MicrosoftAppId in the "
                           "environment or .env and run `coach teams package` again.")
    if not GUID.match(app_id):
        raise PackageError(f"MicrosoftAppId must be a GUID like 00000000-0000-0000-0000-000000000000, not {app_id!r}")
    manifest_file = locate("manifest.json")
    try:
        text = manifest_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PackageError(f"cannot read the manifest template {manifest_file}: {exc.strerror}") from None
    text = text.replace(PLACEHOLDER, app_id)
    left = sorted(set(re.findall(r"\{\{[A-Z_]+\}\}", text)))
    if left:
        raise PackageError(f"{manifest_file} has placeholders this command does not fill: {', '.join(left)}")
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PackageError(f"{manifest_file} is not valid JSON: {exc}") from None
    check = validate_manifest(manifest)
    icons: dict[str, bytes] = {}
    for role in ("color", "outline"):
        name = (manifest.get("icons") or {}).get(role) if isinstance(manifest.get("icons"), dict) else None
        if not isinstance(name, str) or not name:
            continue
        if Path(name).name != name:
            check.problems.append(f"icons.{role} must be a file name beside the manifest, not {name!r}")
            continue
        path = locate(name)
        try:
            icons[name] = path.read_bytes()
        except OSError:
            check.problems.append(f"icons.{role}: {path} does not exist")
            continue
        check.problems.extend(check_icon(icons[name], role, name))
    if check.problems:
        raise PackageError("the Teams manifest is not valid:\n  " + "\n  ".join(check.problems))
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        for name, data in icons.items():
            zf.writestr(name, data)
    return BuiltPackage(out, manifest, check.warnings)


# -- commands -----------------------------------------------------------------------------------


@click.group(name="teams")
def teams_group() -> None:
    """Microsoft Teams: the app package, and the conversations the bot can reach."""


def _settings():
    from adapters.cli_context import Context

    return click.get_current_context().ensure_object(Context).settings


@teams_group.command()
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=Path(DEFAULT_OUT),
              show_default=True, help="where to write the app package (.zip)")
def package(out: Path) -> None:
    """Write the Teams app package (manifest + icons) with the configured MicrosoftAppId."""
    settings = _settings()
    built = build_package(settings.teams.app_id, out, lambda name: settings.config.path(f"teams/{name}"))
    for warning in built.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"Wrote {built.path} (app {built.manifest['name']['short']} {built.manifest['version']}, "
               f"bot {built.manifest['bots'][0]['botId']}). Upload it in Teams: Apps > Manage your apps > "
               "Upload an app.")


@teams_group.command()
@click.option("--kind", type=click.Choice(["conversation", "channel", "user"]), default=None,
              help="only this kind of key")
def conversations(kind: str | None) -> None:
    """List the keys proactive messages can be sent to (e.g. the integrators' channel)."""
    from adapters.teams.references import ReferenceStore
    from bot.state.database import StateDB

    store = ReferenceStore(StateDB(_settings().state_url))
    rows = store.known(kind)
    if not rows:
        click.echo("No Teams conversations yet: add the bot to a team or chat, or send it a message.")
    for row in rows:
        click.echo(f"{row.kind:<12} {row.key}  {row.label}".rstrip())
