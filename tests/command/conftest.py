"""An app wired to this test's own database (with the tiny city of tests/conftest.py)."""
from __future__ import annotations

import pytest
import threading
import time

import uvicorn
from fastapi.testclient import TestClient

from command.app import create_app
from command.auth import create_user
from command.services import free_port
from gis.db import open_pool
from tests.conftest import PASSWORD

@pytest.fixture
def client(settings, tiny_city):
    pool = open_pool(settings)
    with TestClient(create_app(settings, pool)) as c:
        yield c
    pool.close()


@pytest.fixture
def login(client, db):
    """login(role, **user fields) → auth headers for a fresh user of that role."""
    made = {}

    def make(role: str, username: str | None = None, **fields) -> dict:
        username = username or f"{role}{len(made)}"
        create_user(db, username=username, password=PASSWORD, role=role, actor="test", **fields)
        r = client.post("/api/auth/token", data={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        made[username] = r.json()["access_token"]
        return {"Authorization": f"Bearer {made[username]}"}

    return make


@pytest.fixture
def server(settings, tiny_city):
    """A real uvicorn server on a free port (SSE, OsmAnd clients): its base URL."""
    pool = open_pool(settings)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(settings, pool), host="127.0.0.1", port=port,
                                        log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(15)
    pool.close()
