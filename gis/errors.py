"""One typed error hierarchy for the whole system; command/ maps it to HTTP codes in one
place. Every message is written for the person who has to act on it."""
from __future__ import annotations


class CityGridError(Exception):
    """Base of every error we raise on purpose."""


class Invalid(CityGridError, ValueError):
    """The input is wrong (bad code, bad geometry, unknown class...)."""


class NotFound(CityGridError, LookupError):
    """The thing asked for does not exist (or is not visible to this user)."""


class Conflict(CityGridError):
    """The request clashes with the current state (duplicate, concurrent change)."""


class Forbidden(CityGridError, PermissionError):
    """The user's role, area or department does not allow this."""


class Unauthenticated(CityGridError):
    """No valid credentials."""
