"""The alarm handler chain run on each batch of new fixes, in this order:

    back online → out of area → stationary → SOS

(live positions are announced by the statement that advances the unit states, devices.store)

plus the sweeper (handlers.sweep) for what time alone decides (offline, escalation)."""
from __future__ import annotations

from devices.handlers.area import OutOfArea
from devices.handlers.chain import Chain
from devices.handlers.duty import ShiftBook
from devices.handlers.offline import BackOnline
from devices.handlers.sos import Sos
from devices.handlers.stationary import Stationary
from gis.config import Settings


def build_chain(settings: Settings) -> Chain:
    book = ShiftBook()
    return Chain([
        BackOnline(),
        OutOfArea(book, settings.out_of_area_seconds),
        Stationary(book, settings.stationary_radius_m, settings.stationary_minutes),
        Sos(settings.sos_radius_m),
    ])
