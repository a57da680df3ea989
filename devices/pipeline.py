"""One place that assembles what writing positions needs (limits, directory, partitions, the
alarm handler chain), shared by the MQTT worker and the OsmAnd HTTP endpoint."""
from __future__ import annotations

from devices.store import Limits, Writer
from gis.config import Settings


def new_writer(settings: Settings) -> Writer:
    from devices.handlers.build import build_chain

    return Writer(Limits(settings.poor_accuracy_m, settings.max_speed_kmh / 3.6, None), chain=build_chain(settings))
