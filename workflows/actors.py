"""Who did it and when, for the records the emergency modules write: an actor is a logged-in
user (anything with .username and .id), a plain name ('system', 'demo'), or None."""
from __future__ import annotations

import datetime as dt
from typing import Any


def who(actor: Any) -> tuple[str, int | None]:
    """(name, user id or None) of an actor."""
    if actor is None or isinstance(actor, str):
        return actor or "system", None
    return actor.username, actor.id


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
