"""The one place where our typed errors become HTTP answers."""
from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gis import errors

log = logging.getLogger("citygrid.http")

STATUS = {
    errors.Invalid: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Forbidden: 403,
    errors.Unauthenticated: 401,
}
# What PostgreSQL raises when it rolls back one of two colliding transactions.
COLLISIONS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def _answer(status: int, kind: str, message: str, **extra) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": kind, "message": message, **extra}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.CityGridError)
    async def domain_error(request: Request, exc: errors.CityGridError):
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
        return _answer(status, type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
            problems.append(f"{where or 'request'}: {e.get('msg')}")
        return _answer(422, "Invalid", "; ".join(problems), problems=problems)

    @app.exception_handler(psycopg.errors.IntegrityError)
    async def integrity(request: Request, exc: psycopg.errors.IntegrityError):
        # A constraint caught what validation should have: still the client's input, not a 500.
        log.warning("constraint violation: %s", exc)
        return _answer(409 if isinstance(exc, psycopg.errors.UniqueViolation) else 422, "Invalid",
                       f"the data breaks a rule of the database: {exc.diag.message_primary}")

    @app.exception_handler(psycopg.DataError)
    async def bad_data(request: Request, exc: psycopg.DataError):
        # e.g. a NUL byte or a number out of range in a value passed on to the database
        return _answer(422, "Invalid", f"a value in the request cannot be stored or compared: "
                                       f"{exc.diag.message_primary or exc}")

    async def collided(request: Request, exc: psycopg.OperationalError):
        # deadlock_detected / serialization_failure (the rollbacks of SQLSTATE class 40): two
        # changes to the same rows at once, and PostgreSQL undid this one whole. Nothing was
        # written and the database is fine; a retry after a reload works. (Subclasses of
        # OperationalError: these more specific handlers answer before `database_down`.)
        log.warning("transaction rolled back by a concurrent change: %s", exc)
        return _answer(409, "Conflict", "another change to the same thing happened at the same moment;"
                                        " reload and try again")

    for rolled_back in COLLISIONS:
        app.add_exception_handler(rolled_back, collided)

    @app.exception_handler(psycopg.OperationalError)
    async def database_down(request: Request, exc: psycopg.OperationalError):
        log.error("database unavailable: %s", exc)
        return _answer(503, "Unavailable", "the database cannot be reached right now; try again shortly")
