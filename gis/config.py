"""Typed settings (prefix CITYGRID_) shared by every process.

Defaults suit the local demo stack under ./.run; outside demo mode the server refuses the
default secret (Settings.check_secret) so a deployment cannot run with a key everybody knows.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_SECRET = "citygrid-demo-secret-do-not-deploy"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYGRID_", extra="ignore")

    demo: bool = False                       # demo mode: seeded city, demo accounts allowed
    database_url: str = "postgresql://citygrid:citygrid@127.0.0.1:54320/citygrid"
    db_app_role: str = "citygrid_app"        # the role the app switches to after connecting
    db_pool_size: int = 10
    mqtt_url: str = "mqtt://127.0.0.1:18830"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    data_dir: Path = Path(".run/data")       # photos, snapshots, import reports
    run_dir: Path = Path(".run")             # local services (PostGIS cluster, broker)
    secret_key: SecretStr = SecretStr(DEMO_SECRET)
    token_ttl_minutes: int = 12 * 60
    timer_interval_seconds: float = 2.0      # case timer loop in `serve`; 0 turns it off
    catalog_path: Path | None = None         # defaults to gis/seed/catalog.yaml

    def check_secret(self) -> None:
        """The server refuses to start on a secret everybody knows (outside demo mode)."""
        if not self.demo and self.secret_key.get_secret_value() == DEMO_SECRET:
            raise ValueError(
                "CITYGRID_SECRET_KEY is still the demo default; set a long random value "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
                "or run with CITYGRID_DEMO=1 for the demo city"
            )
        if len(self.secret_key.get_secret_value()) < 16:
            raise ValueError("CITYGRID_SECRET_KEY must be at least 16 characters long")

    @property
    def db_port(self) -> int:
        return urlsplit(self.database_url).port or 5432

    @property
    def mqtt_port(self) -> int:
        return urlsplit(self.mqtt_url).port or 1883

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"
