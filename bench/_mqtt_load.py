"""A load generator for the ingest bench: MQTT 3.1.1 PUBLISH packets at QoS 1 written
straight to a socket, many at a time, with their PUBACKs counted as they come back.

Why not paho-mqtt (the client the system itself uses): in Python it spends about as much
CPU per message as the whole ingest path does, and on a 2-core machine the generator's CPU
would be measured as the system's. This writes pre-built packets, so nearly all the CPU goes
to the broker, the worker and the database — the things being measured. It only speaks the
few packets it needs (CONNECT, PUBLISH QoS 1, PUBACK, DISCONNECT) and is not a client."""
from __future__ import annotations

import socket
import struct
import time

MAX_IN_FLIGHT = 60_000        # below the 16-bit packet-id space


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    body = _string(topic.encode()) + struct.pack("!H", packet_id) + payload
    return b"\x32" + _remaining_length(len(body)) + body


class LoadPublisher:
    def __init__(self, host: str, port: int, client_id: str):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = _string(b"MQTT") + b"\x04\x02" + struct.pack("!H", 60) + _string(client_id.encode())
        self.sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        ack = self._read_exactly(4)
        if ack[0] != 0x20 or ack[3] != 0:
            raise ConnectionError(f"the broker refused the connection (CONNACK {ack.hex()})")
        self.sent = self.acked = 0
        self._buffer = b""

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data

    def _drain_acks(self, block: bool) -> None:
        self.sock.setblocking(block)
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        finally:
            self.sock.setblocking(True)
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        self._buffer += chunk
        whole = len(self._buffer) // 4 * 4            # PUBACK is always 4 bytes: 40 02 id id
        self.acked += whole // 4
        self._buffer = self._buffer[whole:]

    def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        packets = []
        for topic, payload in messages:
            packet_id = self.sent % 65_535 + 1
            packets.append(publish_packet(topic, payload, packet_id))
            self.sent += 1
        while self.sent - self.acked > MAX_IN_FLIGHT:
            self._drain_acks(block=True)
        self.sock.sendall(b"".join(packets))
        self._drain_acks(block=False)

    def wait_acked(self, timeout: float = 120.0) -> bool:
        end = time.monotonic() + timeout
        self.sock.settimeout(1.0)
        while self.acked < self.sent and time.monotonic() < end:
            try:
                self._drain_acks(block=True)
            except socket.timeout:
                pass
        return self.acked >= self.sent

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()
