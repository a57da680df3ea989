"""The ordered chain of small handlers run on every batch of new fixes, inside the batch's
transaction (Traccar-style: one concern each).

Each handler runs in its own savepoint: one that fails is rolled back alone, logged and
counted, and the handlers after it still run, so a bug in (say) the stationary check never
costs a fix, an SOS or the live map."""
from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

import psycopg

from devices.fix import DeviceEvent, Fix

log = logging.getLogger("citygrid.handlers")


@dataclass
class BatchView:
    """What the handlers see of one committed-to-be batch."""
    now: dt.datetime
    fresh: dict[int, list[Fix]]              # per unit: good fixes newer than its last, in time order
    alive: set[int]                          # units that sent any stored fix (even a flagged one)
    sos: list[tuple[int, Fix, int]]          # (unit, fix, flags): SOS presses, whatever their flags
    events: list[tuple[int, DeviceEvent]]
    before: dict[int, dict] = field(default_factory=dict)   # unit_state rows as they were before the batch
    memo: dict = field(default_factory=dict)  # what one handler looked up for the next (e.g. shifts)


class Handler(Protocol):
    name: str

    def handle(self, conn: psycopg.Connection, view: BatchView) -> None: ...


class Chain:
    def __init__(self, handlers: list[Handler]):
        self.handlers = handlers
        self.errors: dict[str, int] = defaultdict(int)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def run(self, conn: psycopg.Connection, view: BatchView) -> None:
        for handler in self.handlers:
            try:
                with conn.transaction():        # a savepoint inside the batch's transaction
                    handler.handle(conn, view)
            except psycopg.OperationalError:
                raise                            # the database is gone: the whole batch is retried
            except Exception:  # noqa: BLE001 - isolate the handler, keep the batch
                self.errors[handler.name] += 1
                log.exception("handler %s failed on a batch of %d units", handler.name, len(view.fresh))
