"""The ingest worker's MQTT client against the real broker: it reads many messages per
system call (and hands over every one of them without another select()), and acknowledges
a batch in one write that the broker honours message by message."""
from __future__ import annotations

import select
import time

from devices.mqtt import Publisher, ingest_client


def _session(broker, client_id: str, got: list, *, clean: bool):
    client = ingest_client(client_id, on_connect=None, on_disconnect=None, clean_session=clean,
                           on_message=lambda c, u, m: got.append((m.mid, m.payload)))
    client.connect("127.0.0.1", broker.port, keepalive=30)
    end = time.monotonic() + 10
    while not client.is_connected():
        assert time.monotonic() < end, "no CONNACK from the broker"
        client.loop(0.05)
    return client


def _loop_until(client, done, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not done() and time.monotonic() < end:
        client.loop(0.05)


def test_one_read_brings_a_burst_and_one_write_acknowledges_part_of_it(mqtt_broker):
    got: list = []
    client = _session(mqtt_broker, "test-read-ahead", got, clean=False)
    subscribed = []
    client.on_subscribe = lambda *a: subscribed.append(True)
    client.subscribe("readahead/#", 1)
    _loop_until(client, lambda: subscribed)
    pub = Publisher("127.0.0.1", mqtt_broker.port)
    for k in range(200):
        pub.publish(f"readahead/{k}", f"fix {k}".encode())
    assert pub.flush()
    time.sleep(0.3)                                   # the whole burst is in our socket by now

    assert select.select([client.socket()], [], [], 5)[0]
    client.loop_read()                                # one packet handed over …
    assert len(got) == 1 and client.buffered()        # … the rest of the read kept here
    while client.buffered():
        client.loop_read()                            # no select(): it would not see these
    if len(got) < 200:                                # a burst larger than one read of the socket
        _loop_until(client, lambda: len(got) == 200)
    assert [p for _, p in got] == [f"fix {k}".encode() for k in range(200)]

    client.ack_many([mid for mid, _ in got[:150]])    # the first 150 in one write
    # The broker handles a connection's packets in order: once it answers a SUBSCRIBE sent
    # after the acknowledgements, it has taken them (a new connection under the same id
    # could otherwise take the session over before it read them: redelivery, as MQTT allows).
    subscribed.clear()
    client.subscribe("readahead-fence", 1)
    _loop_until(client, lambda: subscribed)
    assert subscribed
    client.disconnect()
    client.loop(0.1)
    pub.close()

    again: list = []                                  # the same session: only the other 50 come back
    client = _session(mqtt_broker, "test-read-ahead", again, clean=False)
    _loop_until(client, lambda: len(again) >= 50)
    _loop_until(client, lambda: False, seconds=0.5)    # and nothing after them
    assert sorted(p for _, p in again) == sorted(f"fix {k}".encode() for k in range(150, 200))
    client.disconnect()
