"""Typed settings (prefix CITYGRID_) shared by every process.

Defaults suit the local demo stack under ./.run; outside demo mode the server refuses the
default secret (Settings.check_secret) so a deployment cannot run with a key everybody knows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr
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
    pdf_at_once: int = Field(default=2, ge=1, le=16)   # Chromium printing reports at once (a core each)
    catalog_path: Path | None = None         # defaults to gis/seed/catalog.yaml

    # Patrol GPS ingest (citygrid ingest) and its alarms
    ingest_share_group: str = "citygrid-ingest"   # MQTT shared-subscription group of the workers
    osmand_port: int | None = None           # also serve /osmand on this port (Traccar Client: 5055)
    position_retention_days: int = 90        # daily position partitions older than this are dropped
    telemetry_raw_days: int = 30             # raw readings this old are rolled up into hourly rows (降采样) …
    telemetry_retention_days: int = 400      # … and the hourly rows kept this long
    device_alarm_escalate_minutes: int = 15  # a device alarm nobody acknowledged → shift leads are told
    device_rate_per_s: float = 20.0          # one device's messages beyond this rate …
    device_burst: int = 600                  # … and burst are dead-lettered as rate_limited (限流)
    camera_lease_seconds: int = 30           # a dead video worker's cameras move on within this
    dwell_minutes: float = 2.0               # a thing left still this long in a no-dumping/vending zone → event
    video_decoder: Literal["opencv", "ffmpeg"] = "opencv"   # in-process (less memory), or a process per camera
    ingest_batch_max: int = 5000             # messages per database transaction, at most …
    ingest_batch_wait_ms: int = 50           # … or what arrived within this time
    poor_accuracy_m: float = 100.0           # fixes less accurate than this are flagged
    max_speed_kmh: float = 180.0             # a jump faster than this from the last fix is flagged
    out_of_area_seconds: int = 120           # outside the shift's area this long → alarm
    out_of_area_escalate_minutes: int = 10   # … still outside → the unit's leader is told
    stationary_radius_m: float = 30.0        # moved less than this …
    stationary_minutes: int = 20             # … for this long during a shift → alarm
    stationary_escalate_minutes: int = 40
    offline_minutes: int = 10                # no fix this long during a shift → alarm
    sos_radius_m: float = 1000.0             # on-duty units within this distance are called to help
    stop_minutes: int = 5                    # track replay: within stationary_radius_m this long → a stop (停留点)
    track_gap_seconds: int = 300             # … no fix for longer than this → a gap in the track (信号中断)
    late_grace_minutes: int = 10             # attendance: first fix inside the area after start + this → late (迟到)
    early_leave_minutes: int = 10            # … last fix inside before end − this → early leave (早退)
    presence_gap_minutes: float = 5.0        # … an interval between two fixes counts at most this long

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

    @property
    def mqtt_login(self) -> tuple[str, str | None] | None:
        """(username, password) from mqtt://USER:PASSWORD@host:port; None: anonymous."""
        parts = urlsplit(self.mqtt_url)
        return (unquote(parts.username), unquote(parts.password) if parts.password else None) if parts.username else None
