from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])
log = logging.getLogger("citygrid.health")


@router.get("/api/health")
def health(request: Request):
    """200 when the database answers (liveness for proxies and compose healthchecks)."""
    try:
        with request.app.state.pool.connection(timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        log.exception("health check: database unreachable")   # details go to the log, not to strangers
        return JSONResponse({"status": "down", "database": "unreachable"}, status_code=503)
    return {"status": "ok", "database": "ok"}


@router.get("/api/ready")
def ready(request: Request):
    """200 when the schema is migrated and the catalog and grid are loaded."""
    from gis import migrate

    with request.app.state.pool.connection(timeout=3) as conn:
        pending = [m.path.name for m, state in migrate.status(conn) if state != "applied"]
        counts = conn.execute("SELECT (SELECT count(*) FROM part_class) AS classes,"
                              " (SELECT count(*) FROM grid) AS grids").fetchone()
    ok = not pending and counts["classes"] > 0
    body = {"status": "ready" if ok else "not ready", "pending_migrations": pending, **counts}
    return JSONResponse(body, status_code=200 if ok else 503)
