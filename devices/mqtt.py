"""The one place that talks to paho-mqtt: clients for the ingest worker (MQTT 5, persistent
session, manual acknowledgement) and a plain publisher (simulator, benchmarks, tools)."""
from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

Message = mqtt.MQTTMessage


def ingest_client(client_id: str, *, on_connect, on_disconnect, on_message) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                         manual_ack=True)
    client.on_connect, client.on_disconnect, client.on_message = on_connect, on_disconnect, on_message
    return client


SUCCESS = mqtt.MQTT_ERR_SUCCESS


def prepare_persistent(client: mqtt.Client, host: str, port: int, *, session_expiry_s: int,
                       receive_maximum: int) -> None:
    """Set up a connection that keeps the session (and its queued messages) across restarts;
    the caller opens it with client.reconnect() and drives client.loop() itself."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    props.ReceiveMaximum = receive_maximum
    client.connect_async(host, port, keepalive=30, clean_start=False, properties=props)


def end_session(client: mqtt.Client) -> None:
    """Disconnect telling the broker to drop this client's session now (MQTT 5: expiry 0)."""
    props = Properties(PacketTypes.DISCONNECT)
    props.SessionExpiryInterval = 0
    client.disconnect(properties=props)


def qos1() -> mqtt.SubscribeOptions:
    return mqtt.SubscribeOptions(qos=1)


class Publisher:
    """A QoS 1 publisher with its own network thread; `publish` returns once the message is
    handed to paho, `flush` waits until the broker has acknowledged everything sent."""

    def __init__(self, host: str, port: int, client_id: str | None = None, max_inflight: int = 1000):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"citygrid-pub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self._connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self._connected.set() if not rc.is_failure else None
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise ConnectionError(f"no answer from the MQTT broker at {host}:{port}")
        self._pending: list = []

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
