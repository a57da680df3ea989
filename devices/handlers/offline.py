"""Offline (离线): raised by the sweeper when a unit on shift sends nothing for T minutes;
cleared here as soon as any fix of the unit is stored (even a flagged one: the phone is back)."""
from __future__ import annotations

import psycopg

from devices.handlers import alarms
from devices.handlers.chain import BatchView

REASON_BACK = "恢复上报"


class BackOnline:
    name = "offline"

    def handle(self, conn: psycopg.Connection, view: BatchView) -> None:
        offline = alarms.open_of_kind(conn, "offline")          # few: read them all, not probe every unit
        alarms.clear_alarms(conn, sorted(offline & view.alive), "offline", REASON_BACK)
