"""The FastAPI app factory: every dependency comes in as an argument, nothing at import."""
from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles
from psycopg_pool import ConnectionPool

from command import http_errors
from command.routes import (auth_routes, case_routes, evaluation_routes, health, map_routes, open311, user_routes,
                            web)
from command.routes import report_routes
from command.live import LiveBus
from command.routes import device_routes, live_routes, osmand_routes, unit_routes
from command.routes import camera_live_routes, camera_routes, track_routes
from command.routes import after_action_routes, alert_routes, duty_routes, incident_routes, situation_routes
from command.live_frames import LiveFrames
from devices import alarm_cases
from video import event_cases
from gis.config import Settings
from gis.db import open_pool
from workflows.cases import CaseDesk
from workflows.timers import TimerLoop

STATIC_DIR = Path(__file__).parent / "web" / "static"


def create_app(settings: Settings, pool: ConnectionPool | None = None, desk: CaseDesk | None = None) -> FastAPI:
    """Build the app. With no pool given, one is opened at start-up and closed at shutdown."""
    settings.check_secret()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own_pool = app.state.pool is None
        if own_pool:
            app.state.pool = open_pool(settings)
        timers = None
        if settings.timer_interval_seconds > 0:
            timers = TimerLoop(app.state.pool.connection, settings.timer_interval_seconds)
            timers.start()
        live = app.state.live = LiveBus(settings)     # the LISTEN side of the live bus (SSE)
        await live.start()
        try:
            yield
        finally:
            await live.stop()
            app.state.live_frames.close()
            if timers:
                timers.stop()
            if own_pool:
                app.state.pool.close()

    app = FastAPI(title="CityGrid Command", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="数字化城市管理与应急指挥 — digital city management and emergency command")
    app.state.settings = settings
    app.state.pdf_printers = threading.BoundedSemaphore(settings.pdf_at_once)   # command.pdf
    app.state.pool = pool
    desk = desk or CaseDesk.default()
    # A finished case settles the device alarm or the camera event that opened it (devices and
    # video are above workflows).
    app.state.desk = CaseDesk(desk.flow, desk.calendar,
                              [*desk.on_finished, alarm_cases.case_finished, event_cases.case_finished])
    app.state.osmand = osmand_routes.OsmandIntake(settings)      # /osmand: one writer per app
    app.state.live_frames = LiveFrames()                          # the wall's pictures: one decode per camera
    http_errors.install(app)
    # Tracks are big JSON (SSE is left alone). Level 4: on a day's track level 6 takes several
    # times as long for a few percent less (bench/bench_replay.py).
    app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=4)
    for module in (health, auth_routes, map_routes, case_routes, evaluation_routes, open311, user_routes, web,
                   report_routes):
        app.include_router(module.router)
    for module in (unit_routes, osmand_routes, live_routes, track_routes, device_routes):
        app.include_router(module.router)
    app.include_router(camera_routes.router)
    app.include_router(camera_live_routes.router)
    for module in (incident_routes, alert_routes, duty_routes, situation_routes, after_action_routes):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
