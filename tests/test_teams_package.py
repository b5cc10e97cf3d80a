"""`coach teams package`: the Teams app zip, its manifest and its icons."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.cli import main
from adapters.teams.icons import decode_rgba, encode_png, png_info
from adapters.teams.package_command import PackageError, build_package, validate_manifest

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "config" / "teams"
APP_ID = "3f2b6a1e-1234-4cde-9abc-0123456789ab"


def test_shipped_icons_are_the_sizes_teams_requires():
    color = png_info((TEMPLATE_DIR / "color.png").read_bytes())
    outline_bytes = (TEMPLATE_DIR / "outline.png").read_bytes()
    outline = png_info(outline_bytes)
    assert (color.width, color.height) == (192, 192)
    assert (outline.width, outline.height, outline.has_alpha) == (32, 32, True)
    pixels = [p for row in decode_rgba(outline_bytes) for p in row]
    assert all(p[:3] == (255, 255, 255) for p in pixels if p[3] > 0)  # white on transparent
    assert any(p[3] == 0 for p in pixels) and any(p[3] == 255 for p in pixels)


def test_png_writer_round_trips():
    pixels = [[(x * 40, y * 40, 7, 255 - x) for x in range(5)] for y in range(3)]
    assert decode_rgba(encode_png(pixels)) == pixels


def test_package_has_manifest_and_icons_with_the_bot_id(tmp_path):
    built = build_package(APP_ID, tmp_path / "app.zip", TEMPLATE_DIR)
    with zipfile.ZipFile(built.path) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
        assert zf.read("color.png") == (TEMPLATE_DIR / "color.png").read_bytes()
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert set(manifest["bots"][0]["scopes"]) == {"personal", "team", "groupChat"}
    assert "{{" not in json.dumps(manifest)
    assert validate_manifest(manifest).problems == []
    assert any("websiteUrl" in w for w in built.warnings)  # the template's example.org pages are flagged


def test_missing_app_id_names_the_variable(tmp_path):
    with pytest.raises(PackageError, match="MicrosoftAppId"):
        build_package(None, tmp_path / "app.zip", TEMPLATE_DIR)
    with pytest.raises(PackageError, match="GUID"):
        build_package("not-a-guid", tmp_path / "app.zip", TEMPLATE_DIR)
    assert not (tmp_path / "app.zip").exists()


@pytest.mark.parametrize("mutate, expected", [
    (lambda m: m.pop("developer"), "developer is required"),
    (lambda m: m["developer"].pop("privacyUrl"), "developer.privacyUrl is required"),
    (lambda m: m["name"].update(short="x" * 31), "name.short is 31 characters"),
    (lambda m: m["description"].pop("full"), "description.full is required"),
    (lambda m: m.update(accentColor="teal"), "accentColor"),
    (lambda m: m.update(version="1.0"), "version"),
    (lambda m: m["bots"][0].update(scopes=[]), "bots[0].scopes is required"),
    (lambda m: m["bots"][0].update(scopes=["everyone"]), "unknown"),
    (lambda m: m["icons"].pop("outline"), "icons.outline is required"),
    (lambda m: m["developer"].update(websiteUrl="http://plain.example.net"), "https://"),
])
def test_manifest_problems_are_named(mutate, expected):
    manifest = json.loads((TEMPLATE_DIR / "manifest.json").read_text().replace("{{MICROSOFT_APP_ID}}", APP_ID))
    mutate(manifest)
    problems = validate_manifest(manifest).problems
    assert any(expected in p for p in problems), problems


def copy_template(tmp_path: Path) -> Path:
    folder = tmp_path / "teams"
    shutil.copytree(TEMPLATE_DIR, folder)
    return folder


def test_wrong_icon_size_is_refused(tmp_path):
    folder = copy_template(tmp_path)
    (folder / "color.png").write_bytes(encode_png([[(0, 0, 0, 255)] * 100 for _ in range(100)]))
    with pytest.raises(PackageError, match=r"color.png \(color icon\) is 100x100; Teams requires 192x192"):
        build_package(APP_ID, tmp_path / "app.zip", folder)


def test_coloured_outline_icon_is_refused(tmp_path):
    folder = copy_template(tmp_path)
    (folder / "outline.png").write_bytes(encode_png([[(255, 0, 0, 255)] * 32 for _ in range(32)]))
    with pytest.raises(PackageError, match="white on a transparent background"):
        build_package(APP_ID, tmp_path / "app.zip", folder)


def test_missing_or_broken_icon_is_refused(tmp_path):
    folder = copy_template(tmp_path)
    (folder / "outline.png").unlink()
    (folder / "color.png").write_bytes(b"GIF89a not a png")
    with pytest.raises(PackageError) as info:
        build_package(APP_ID, tmp_path / "app.zip", folder)
    assert "outline.png does not exist" in str(info.value) and "color.png is not a PNG" in str(info.value)


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # Only this invocation's environment; no .env or config file from the developer's machine.
    (tmp_path / "empty.yaml").write_text("")
    return {"COACH_ENV_FILE": str(tmp_path / "none.env"), "COACH_CONFIG_FILE": str(tmp_path / "empty.yaml"),
            "COACH_DATA_DIR": str(tmp_path / "data"), "MicrosoftAppId": "", "MicrosoftAppPassword": "", **extra}


def test_cli_writes_the_package(tmp_path):
    out = tmp_path / "pkg" / "coach.zip"
    result = CliRunner().invoke(main, ["teams", "package", "--out", str(out)],
                                env=cli_env(tmp_path, MicrosoftAppId=APP_ID))
    assert result.exit_code == 0, result.output
    assert f"bot {APP_ID}" in result.output
    with zipfile.ZipFile(out) as zf:
        assert json.loads(zf.read("manifest.json"))["bots"][0]["botId"] == APP_ID


def test_cli_without_app_id_fails_clearly(tmp_path):
    result = CliRunner().invoke(main, ["teams", "package", "--out", str(tmp_path / "x.zip")], env=cli_env(tmp_path))
    assert result.exit_code != 0
    assert "MicrosoftAppId is not set" in result.output
    assert not (tmp_path / "x.zip").exists()


def test_cli_lists_no_conversations_on_a_fresh_database(tmp_path):
    result = CliRunner().invoke(main, ["teams", "conversations"], env=cli_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "No Teams conversations yet" in result.output


def test_serve_teams_is_registered():
    result = CliRunner().invoke(main, ["serve", "teams", "--help"])
    assert result.exit_code == 0 and "--port" in result.output
