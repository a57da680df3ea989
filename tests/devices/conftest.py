"""Fixtures the device tests share."""
from __future__ import annotations

import pytest

from gis.db import connect, prepare_app_session


@pytest.fixture
def app_conn(settings, tiny_city):
    """The connection the ingest worker has: the application role, not the owner."""
    with connect(settings.database_url) as conn:
        prepare_app_session(conn, settings.db_app_role)
        yield conn
