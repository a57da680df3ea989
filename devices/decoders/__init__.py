"""Decoders for the position feeds patrol devices send: OwnTracks (MQTT), OsmAnd as the
Traccar Client app sends it (HTTP), and our own native MQTT format. Each turns one message
into Fix / DeviceEvent values (devices.fix) or raises DecodeError with a reason code."""
