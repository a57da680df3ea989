"""The one place that talks to paho-mqtt: clients for the ingest worker (MQTT 3.1.1,
persistent session, manual acknowledgement) and a plain publisher (simulator, benchmarks,
tools).

Why 3.1.1 for the ingest worker: paho builds an MQTT 5 `Properties` object for every PUBLISH
it reads, and that alone cost a worker a fifth of its throughput (one worker draining a
100,000-fix backlog: 9,100 fixes/s as MQTT 5, 11,100 as 3.1.1; 84 vs 65 µs of CPU a fix).
What MQTT 5 gave is configured at the broker instead (deploy/mosquitto.conf): how long it
keeps a worker's session (persistent_client_expiration) and how many unacknowledged
messages it sends one client (max_inflight_messages). Shared subscriptions work the same."""
from __future__ import annotations

import json
import struct
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt

Message = mqtt.MQTTMessage
SUCCESS = mqtt.MQTT_ERR_SUCCESS


class IngestClient(mqtt.Client):
    """paho's client with savings for a reader of thousands of messages a second:

    - it reads the socket up to 64 KiB at a time, where paho asks for one byte, then the
      length, then the body (three system calls a message); its `loop()` hands over what
      was read ahead instead of waiting in select(), which cannot see it;
    - `ack_many` sends the PUBACKs of a whole batch as one write, not one each (these two:
      about 10 % of a worker's CPU, measured draining a backlog);
    - every message goes straight to `on_message`: paho would first walk its per-topic
      callback tree, which a worker never fills (about 7 % of a worker's CPU on telemetry).

    All go through paho's own extension points (_sock_recv, _packet_queue, which paho keeps
    for the websocket and TLS wrappers, and _handle_on_message); paho-mqtt is pinned below 3
    in pyproject.toml."""

    _READ_AHEAD = 65536
    _ahead, _taken = b"", 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._taken >= len(self._ahead):
            data = super()._sock_recv(self._READ_AHEAD)    # BlockingIOError when none came
            if not data:
                return data                                # closed by the broker
            self._ahead, self._taken = data, 0
        start = self._taken
        self._taken = min(len(self._ahead), start + bufsize)
        return self._ahead[start:self._taken]

    def _sock_close(self) -> None:
        self._ahead, self._taken = b"", 0                  # nothing of a closed connection is read later
        super()._sock_close()

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        with self._in_callback_mutex:
            self.on_message(self, self._userdata, message)

    def message_callback_add(self, sub, callback) -> None:
        raise TypeError("an IngestClient hands every message to on_message; it takes no per-topic callbacks")

    def buffered(self) -> bool:
        return self._taken < len(self._ahead)

    def loop(self, timeout: float = 1.0) -> mqtt.MQTTErrorCode:
        """paho's loop, which would wait in select() for bytes already read ahead: it does not
        wait while some are, and hands them all over."""
        rc = super().loop(0.0 if self.buffered() else timeout)
        while rc == SUCCESS and self.buffered():
            rc = self.loop_read()
        return rc

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK for QoS 1 messages, in one packet write (paho finishes it if the socket
        takes it in parts)."""
        if mids and self._sock is not None:
            self._packet_queue(PUBACK, b"".join(_PUBACK.pack(0x40, 2, mid) for mid in mids), 0, 0)


PUBACK = 0x40
_PUBACK = struct.Struct("!BBH")                            # fixed header, remaining length 2, message id


def ingest_client(client_id: str, *, on_connect, on_disconnect, on_message, clean_session: bool = False,
                  login: tuple[str, str | None] | None = None) -> IngestClient:
    client = IngestClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                          clean_session=clean_session, manual_ack=True)
    if login:
        client.username_pw_set(*login)
    client.on_connect, client.on_disconnect, client.on_message = on_connect, on_disconnect, on_message
    return client


def prepare_persistent(client: mqtt.Client, host: str, port: int) -> None:
    """Set up a connection that keeps the session (and its queued messages) across restarts;
    the caller opens it with client.reconnect() and drives client.loop() itself."""
    client.connect_async(host, port, keepalive=30)


def end_session(client_id: str, host: str, port: int, timeout: float = 10.0,
                login: tuple[str, str | None] | None = None) -> None:
    """Make the broker drop a (disconnected) client's session now: in MQTT 3.1.1 a connection
    with a clean session under the same client id discards the old session and its queue."""
    connected = threading.Event()
    client = ingest_client(client_id, on_connect=lambda *a: connected.set(), on_disconnect=None,
                           on_message=None, clean_session=True, login=login)
    client.connect(host, port, keepalive=30)
    end = time.monotonic() + timeout
    while not connected.is_set() and time.monotonic() < end:
        client.loop(timeout=0.05)
    if not connected.is_set():
        client.disconnect()
        raise ConnectionError(f"the broker at {host}:{port} did not answer; the session of {client_id} is kept")
    client.disconnect()
    while client.socket() is not None and time.monotonic() < end:
        client.loop(timeout=0.05)


class Publisher:
    """A QoS 1 publisher with its own network thread; `publish` returns once the message is
    handed to paho, `flush` waits until the broker has acknowledged everything sent."""

    def __init__(self, host: str, port: int, client_id: str | None = None, max_inflight: int = 1000,
                 login: tuple[str, str | None] | None = None):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"citygrid-pub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        if login:
            self.client.username_pw_set(*login)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self._connected = threading.Event()
        self._handlers: dict[str, Callable[[str, bytes], None]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise ConnectionError(f"no answer from the MQTT broker at {host}:{port}")
        self._pending: list = []

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:
            for topic_filter in self._handlers:            # a new connection has no subscriptions
                client.subscribe(topic_filter, qos=1)
            self._connected.set()

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        """Also receive what is published on `topic_filter` (QoS 1): `handler(topic, payload)`
        is called on the network thread, and the filter is subscribed again after a reconnect."""
        self._handlers[topic_filter] = handler
        self.client.subscribe(topic_filter, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        for topic_filter, handler in self._handlers.items():
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                handler(message.topic, message.payload)

    # MQTT message ids are 16-bit: far fewer than 65,535 messages may await their PUBACK.
    MAX_PENDING = 20_000

    def publish(self, topic: str, payload: bytes | str | dict, qos: int = 1):
        if isinstance(payload, dict):
            payload = json.dumps(payload, ensure_ascii=False)
        if len(self._pending) >= self.MAX_PENDING:
            self._settle(self.MAX_PENDING // 2)
        info = self.client.publish(topic, payload, qos=qos)
        if qos:
            self._pending.append(info)
        return info

    def _settle(self, keep: int, timeout: float = 60.0) -> None:
        """Wait for the oldest messages' acknowledgements until at most `keep` are pending."""
        done = 0
        for info in self._pending[: len(self._pending) - keep]:
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                break
            done += 1
        self._pending = self._pending[done:]

    def flush(self, timeout: float = 60.0) -> bool:
        self._settle(0, timeout)
        return not self._pending

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()
