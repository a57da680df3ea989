"""Request-scoped dependencies shared by the routers."""
from __future__ import annotations

from collections.abc import Iterator

import psycopg
from fastapi import Request


def db(request: Request) -> Iterator[psycopg.Connection]:
    """A pooled connection (acting as the app role) for the length of one request."""
    with request.app.state.pool.connection() as conn:
        yield conn
