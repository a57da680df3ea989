"""docker-compose.yml must stay in step with the code: commands, settings, health checks."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from command.cli import app
from gis.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_uses_the_postgis_and_mosquitto_images():
    assert SERVICES["db"]["image"].startswith("postgis/postgis:")
    assert SERVICES["mqtt"]["image"].startswith("eclipse-mosquitto:")


@pytest.mark.parametrize("name", ["db", "mqtt", "api"])
def test_long_running_services_have_health_checks(name):
    assert SERVICES[name]["healthcheck"]["test"]


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items()
                                  if s.get("command") and not s.get("profiles")])
def test_every_active_service_runs_a_real_cli_command(name):
    command = SERVICES[name]["command"]
    assert command[0] == "citygrid"
    result = CliRunner().invoke(app, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_environment_names_are_settings_fields():
    fields = {f"CITYGRID_{name.upper()}" for name in Settings.model_fields}
    env = COMPOSE["x-citygrid"]["environment"]
    assert set(env) <= fields, set(env) - fields


def test_api_waits_for_migrations():
    assert SERVICES["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_image_contains_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("command", "gis", "video", "devices", "workflows"):
        assert re.search(rf"^COPY {package} {package}$", dockerfile, re.M), package
