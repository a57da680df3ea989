"""The ingest worker (`citygrid ingest`): MQTT in, batches into PostgreSQL, nothing lost.

    broker ──▶ read up to a batch ──▶ decode, one transaction ──▶ PUBACK of its messages
               (waiting at most          per batch                   ──▶ read again …
                the batch window)

- One thread does it all, driving paho's network loop by hand between batches. A network
  thread of its own would share the core with the writer through the GIL and cost more
  than it overlaps: a worker draining a backlog alone stored about 30 % more per second
  this way. While a batch is written the broker keeps what comes in (flow control below).

- MQTT 3.1.1 (devices/mqtt.py says why not 5) with a persistent session (clean session off;
  the broker keeps it for persistent_client_expiration) and manual acknowledgements: a
  message is acknowledged only after the transaction holding it has committed, so a worker
  killed at any moment leaves the unacknowledged ones with the broker, which delivers them
  again; (device, fix_time) makes the second delivery a no-op.
- Shared subscriptions ($share/GROUP/…) let several workers split the load. The broker keeps
  dealing a share to a stopped worker's session until it expires: restart a worker under
  its own name, or retire the name (`citygrid ingest --name N --retire`: store what the
  broker kept for it, leave the group, end the session).
- The broker sends at most max_inflight_messages unacknowledged messages (20,000 in
  deploy/mosquitto.conf) and the worker reads no more than a batch ahead: the rest waits at
  the broker while the database is slow or down (the worker keeps the connection alive
  while it waits for the database).
- The database going away is waited out (the batch is kept and retried); messages that
  cannot be decoded go to dead_letter with the reason and are acknowledged (they would
  fail the same way forever).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

import json

import psycopg

from devices import mqtt, partitions, telemetry_history
from devices.decoders import native, owntracks, telemetry
from devices.fix import DecodeError
from devices.device_sweep import DeviceSweeper
from devices.handlers.sweep import Sweeper
from devices.pipeline import new_writer
from devices.rate_limit import RateLimiter
from devices.store import Batch, Received, write
from devices.telemetry_store import TelemetryWriter, write_telemetry
from workflows.cases import CaseDesk
from gis.config import Settings
from gis.db import connect, prepare_app_session

log = logging.getLogger("citygrid.ingest")

TOPICS = ("owntracks/+/+", "owntracks/+/+/event", "citygrid/units/+/pos",
          "citygrid/devices/+/telemetry", "citygrid/devices/+/status", "citygrid/devices/+/cmd/ack")
HEARTBEAT_S = 5.0
SWEEP_S = 1.0
COMMANDS_PER_PASS = 500
CLAIM_S = 30                             # a claimed command not acknowledged by then is sent again
HOUSEKEEPING_S = 3600.0
DIRECTORY_RELOAD_S = 60.0
RETIRE_QUIET_S = 2.0                     # retiring: the broker has sent nothing this long → drained
RECONNECT_S = (1.0, 10.0)                # first and longest wait between attempts to reach the broker
READS_PER_LOOK = 64                      # packets read between looks at whether any more came


def decode(message: Received) -> list:
    """The decoder a topic calls for; DecodeError for anything it cannot take (the decoders
    refuse oversize payloads before parsing them)."""
    if message.source == "owntracks":
        return owntracks.decode(message.topic, message.payload, message.received_at)
    if message.source == "native":
        return native.decode(message.topic, message.payload, message.received_at)
    if message.source == "telemetry":
        return telemetry.decode(message.topic, message.payload, message.received_at)
    raise DecodeError("bad_topic", f"nothing decodes topic {message.topic!r}")


def source_of(topic: str) -> str:
    if topic.startswith("owntracks/"):
        return "owntracks"
    if topic.startswith("citygrid/devices/"):
        return "telemetry"
    return "native" if topic.startswith("citygrid/") else "unknown"


@dataclass
class Counters:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    handler_errors: int = 0


class IngestWorker:
    def __init__(self, settings: Settings, name: str, *, client_id: str | None = None):
        self.settings, self.name = settings, name
        self.client_id = client_id or f"citygrid-ingest-{name}"
        self.inbox: list = []                   # (generation, message id, QoS, Received) not yet written
        self.counters = Counters()
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self.stop_event = threading.Event()
        self.retiring = False                 # drain this name's queue at the broker, then end its session
        self._last_message = time.monotonic()
        self.connected = threading.Event()    # an Event: tests and the CLI watch it from other threads
        self._next_attempt, self._reconnect_wait = 0.0, RECONNECT_S[0]
        self._generation = 0                  # bumps on every (re)connect: old message ids are void
        self.writer = new_writer(settings)
        self.desk = CaseDesk.default()          # device alarms open cases in the closed loop
        self.telemetry = TelemetryWriter(desk=self.desk)
        self.device_limit = RateLimiter(settings.device_rate_per_s, settings.device_burst)
        self.sweeper = Sweeper(settings)
        self.device_sweeper = DeviceSweeper(dt.timedelta(minutes=settings.device_alarm_escalate_minutes))
        self.client = mqtt.ingest_client(self.client_id, on_connect=self._on_connect,
                                         on_disconnect=self._on_disconnect, on_message=self._on_message,
                                         login=settings.mqtt_login)
        self._conn: psycopg.Connection | None = None
        self._in_flight: dict[tuple[str, int], object] = {}   # (outbox, command id) → its publish, until sent

    # ---------------------------------------------------------------- MQTT side
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        self._generation += 1
        # Subscribing again on a resumed session is harmless and covers a broker that lost it.
        client.subscribe([(f"$share/{self.settings.ingest_share_group}/{t}", 1) for t in TOPICS])
        self.connected.set()
        log.info("connected to the broker (session %s)", "resumed" if flags.session_present else "new")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not self.stop_event.is_set():
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.Message) -> None:
        self._last_message = time.monotonic()
        topic = msg.topic
        self.inbox.append((self._generation, msg.mid, msg.qos,
                           Received(source_of(topic), topic, msg.payload, dt.datetime.now(dt.timezone.utc))))

    def connect(self) -> None:
        mqtt.prepare_persistent(self.client, self.settings.mqtt_host, self.settings.mqtt_port)
        self._reconnect()

    def _reconnect(self) -> None:
        """Open the connection again, at most once per wait (doubling while the broker stays away)."""
        if time.monotonic() < self._next_attempt:
            return
        try:
            self.client.reconnect()
            self._reconnect_wait = RECONNECT_S[0]
        except OSError as e:
            log.warning("cannot reach the broker at %s:%s (%s); trying again in %.0f s", self.settings.mqtt_host,
                        self.settings.mqtt_port, e, self._reconnect_wait)
            self._next_attempt = time.monotonic() + self._reconnect_wait
            self._reconnect_wait = min(2 * self._reconnect_wait, RECONNECT_S[1])

    def _pump(self, wait: float) -> None:
        """Talk to the broker for at most `wait` seconds: send what is queued (acknowledgements,
        commands), keep the connection alive, and read what it sent, up to a batch."""
        if self.client.socket() is None:
            self._reconnect()
            if self.client.socket() is None:
                self.stop_event.wait(max(0.0, min(wait, self._next_attempt - time.monotonic())))
                return
        before = len(self.inbox)
        if self.client.loop(timeout=max(wait, 0.0)) != mqtt.SUCCESS:
            return                              # paho closed the socket (and said so): reconnect next time
        if len(self.inbox) == before:
            return                              # nothing came, or not a message: no read-ahead
        while len(self.inbox) < self.settings.ingest_batch_max:
            before = len(self.inbox)
            for _ in range(READS_PER_LOOK):
                if self.client.loop_read() != mqtt.SUCCESS:
                    return
            if len(self.inbox) == before:
                return

    def _idle(self, seconds: float) -> bool:
        """Wait, keeping the broker connection alive; True when stop() came meanwhile."""
        end = time.monotonic() + seconds
        while not self.stop_event.is_set() and (left := end - time.monotonic()) > 0:
            self._pump(min(left, 1.0))
        return self.stop_event.is_set()

    # ---------------------------------------------------------------- database side
    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings.database_url)
            prepare_app_session(self._conn, self.settings.db_app_role)
            self.writer.directory.load(self._conn)
            self.writer.partitions = partitions.PartitionKeeper()
            self.telemetry.partitions = partitions.PartitionKeeper("telemetry")
            self.telemetry.registry.load(self._conn)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None

    def _take_batch(self) -> list:
        """What arrived, up to the batch size, waiting at most the batch window."""
        limit = self.settings.ingest_batch_max
        deadline = time.monotonic() + self.settings.ingest_batch_wait_ms / 1000
        while len(self.inbox) < limit and not self.stop_event.is_set():
            wait = deadline - time.monotonic()
            if wait <= 0:
                break
            self._pump(wait)
        items, self.inbox = self.inbox[:limit], self.inbox[limit:]
        return items

    def _decode_all(self, items: list) -> Batch:
        batch = Batch(received_at=dt.datetime.now(dt.timezone.utc))
        now = time.monotonic()
        for _, _, _, message in items:
            if message.source == "telemetry" and not self._within_rate(message, now, batch):
                continue
            try:
                batch.add(message, decode(message))
            except DecodeError as e:
                batch.refuse(message, e)
            except Exception as e:  # noqa: BLE001 - a decoder bug must not lose the message
                log.exception("decoder failed on %s", message.topic)
                batch.refuse(message, DecodeError("decoder_error", f"decoder failed: {e!r}"))
        return batch

    def _within_rate(self, message: Received, now: float, batch: Batch) -> bool:
        """A device flooding the broker: its messages beyond the limit go to the dead letters."""
        device = message.topic.split("/", 3)[2]
        if self.device_limit.allow(device, now):
            return True
        batch.refuse(message, DecodeError("rate_limited", f"{device} sent more than {self.settings.device_rate_per_s:g}"
                                          f" messages/s (bursts up to {self.settings.device_burst}); set aside"))
        return False

    def _write_until_done(self, batch: Batch, items: list):
        """Write the batch, waiting out a database that is down: never drop, never ack early."""
        delay = 0.5
        while True:
            try:
                return self._store(batch)
            except psycopg.OperationalError as e:
                log.warning("database unavailable (%s); retrying in %.1f s", str(e).strip()[:200], delay)
                self._drop_connection()
                if self._idle(delay):
                    return None
                delay = min(delay * 2, 5.0)
            except psycopg.Error as e:
                # Something in the batch the database refuses (a value no decoder foresaw):
                # write the messages one by one so only the culprit goes to the dead letters.
                log.warning("a batch was refused (%s); writing its messages one by one", str(e).strip()[:200])
                return self._write_one_by_one(items)

    def _store(self, batch: Batch) -> Counters:
        """Positions and telemetry of a batch in one transaction (every dead letter with them)."""
        conn = self._db()
        if not (batch.readings or batch.statuses or batch.answers):
            written = write(conn, batch, self.writer)
            return Counters(stored=len(written.stored), duplicates=written.duplicates, dead_letters=written.dead_letters)
        with conn.transaction():
            written = write(conn, batch, self.writer)
            readings = write_telemetry(conn, batch.readings, batch.statuses, self.telemetry, answers=batch.answers)
        self.writer.partitions.committed(written.days)       # their partitions exist for good now
        self.telemetry.partitions.committed(readings.days)
        return Counters(stored=len(written.stored) + readings.stored,
                        duplicates=written.duplicates + readings.duplicates,
                        dead_letters=written.dead_letters + readings.dead_letters)

    def _write_one_by_one(self, items: list) -> Counters:
        total = Counters()
        for item in items:
            single = self._decode_all([item])
            try:
                written = self._store(single)
            except psycopg.OperationalError:
                raise
            except psycopg.Error as e:
                refused = Batch(received_at=single.received_at)
                refused.refuse(item[3], DecodeError("unstorable", f"the database refused a value: {str(e).strip()[:300]}"))
                written = self._store(refused)
            total.stored += written.stored
            total.duplicates += written.duplicates
            total.dead_letters += written.dead_letters
        return total

    def _acknowledge(self, items: list) -> None:
        # Only QoS 1 is subscribed (a QoS 0 message needs none); ids from an earlier
        # connection are void (the broker sends those messages again).
        self.client.ack_many([mid for generation, mid, qos, _ in items if qos == 1 and generation == self._generation])

    def process(self, items: list) -> None:
        batch = self._decode_all(items)
        written = self._write_until_done(batch, items)
        if written is None:
            return                              # stopping: the broker keeps them
        self._acknowledge(items)
        c = self.counters
        c.received += len(items)
        c.stored += written.stored
        c.duplicates += written.duplicates
        c.dead_letters += written.dead_letters
        c.handler_errors = self.writer.chain.error_count + self.telemetry.errors
        if any(f.sos for f, _ in batch.fixes):
            self._outbox()

    def _reload_directory(self) -> None:
        try:
            self.writer.directory.load(self._db())
            self.telemetry.registry.load(self._db())
        except psycopg.OperationalError:
            self._drop_connection()

    def _sweep(self) -> None:
        """Time-driven alarms, escalations, trailing live positions."""
        for name, sweep in (("unit", lambda: self.sweeper.sweep(self._db())),
                            ("device", lambda: self.device_sweeper.sweep(self._db(), self.telemetry.registry))):
            try:
                sweep()
            except psycopg.OperationalError:
                self._drop_connection()
            except Exception:  # noqa: BLE001 - a sweeper bug must not stop ingest (nor the other sweep)
                self.counters.handler_errors += 1
                log.exception("the %s alarm sweep failed", name)

    def _outbox(self) -> None:
        try:
            self._send_commands()
        except psycopg.OperationalError:
            self._drop_connection()
        except Exception:  # noqa: BLE001 - a failed publish pass is retried on the next
            log.exception("publishing the command outbox failed")

    # The outboxes: (table, the column naming the receiver, its topic).
    OUTBOXES = (("unit_command", "unit_id", "citygrid/units/{}/cmd"),
                ("device_command", "device_id", "citygrid/devices/{}/cmd"))

    def _send_commands(self) -> None:
        """Publish the commands to units and devices that committed transactions left in the
        outboxes, without waiting: each is claimed, published, and marked sent on a later pass
        once the broker has acknowledged it. A claim not marked sent within CLAIM_S is taken
        again (by any worker): a receiver may get a command twice, never not."""
        conn = self._db()
        done: dict[str, list[int]] = {table: [] for table, _, _ in self.OUTBOXES}
        for key, info in list(self._in_flight.items()):
            try:
                if info.is_published():
                    done[key[0]].append(key[1])
                    del self._in_flight[key]
            except (RuntimeError, ValueError):       # never left (disconnected): claim it again later
                del self._in_flight[key]
        for table, receiver, topic in self.OUTBOXES:
            if done[table]:
                # (a quick device may have answered before this pass: its answer stands)
                sent = (", status = CASE status WHEN 'queued' THEN 'sent' ELSE status END"
                        if table == "device_command" else "")
                conn.execute(f"UPDATE {table} SET sent_at = now(){sent} WHERE id = ANY(%s)", (done[table],))
            if not self.connected.is_set():
                continue
            pending = [cid for t, cid in self._in_flight if t == table]
            open_only = " AND status = 'queued'" if table == "device_command" else ""
            rows = conn.execute(
                f"UPDATE {table} SET claimed_at = now() WHERE id IN (SELECT id FROM {table}"
                f" WHERE sent_at IS NULL{open_only} AND (claimed_at IS NULL"
                " OR claimed_at < now() - make_interval(secs => %s)) AND NOT id = ANY(%s)"
                f" ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, {receiver} AS receiver, payload",
                (CLAIM_S, pending, COMMANDS_PER_PASS)).fetchall()
            for r in rows:
                self._in_flight[(table, r["id"])] = self.client.publish(
                    topic.format(r["receiver"]), json.dumps(r["payload"], ensure_ascii=False), qos=1)

    def _heartbeat(self) -> None:
        c = self.counters
        try:
            self._db().execute(
                "INSERT INTO ingest_worker (name, started_at, seen_at, received, stored, duplicates, dead_letters,"
                " handler_errors, queue_depth) VALUES (%s, %s, now(), %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, seen_at = now(),"
                " received = excluded.received, stored = excluded.stored, duplicates = excluded.duplicates,"
                " dead_letters = excluded.dead_letters, handler_errors = excluded.handler_errors,"
                " queue_depth = excluded.queue_depth",
                (self.name, self.started_at, c.received, c.stored, c.duplicates, c.dead_letters, c.handler_errors,
                 len(self.inbox)))
        except psycopg.OperationalError:
            self._drop_connection()

    def _housekeeping(self) -> None:
        try:
            conn = self._db()
            today = partitions.local_day(dt.datetime.now(dt.timezone.utc))
            partitions.ensure(conn, today, "position")
            partitions.ensure(conn, today, "telemetry")
            days = self.settings.position_retention_days
            dropped = partitions.drop_expired(conn, today, days, "position")
            if dropped:
                log.info("dropped %d position partition(s) past the %d-day retention", dropped, days)
            done = telemetry_history.downsample(conn, today, raw_days_kept=self.settings.telemetry_raw_days,
                                                hourly_days_kept=self.settings.telemetry_retention_days)
            if any(done.values()):
                log.info("telemetry downsampled: %s", done)
        except psycopg.OperationalError:
            self._drop_connection()
        except psycopg.Error:
            log.exception("partition upkeep failed; trying again in an hour (batches still make their own)")

    def run(self) -> None:
        """Until stop(): connect, then write batches as they come."""
        self.connect()
        next_beat = next_housekeeping = next_sweep = 0.0
        next_reload = time.monotonic() + DIRECTORY_RELOAD_S
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                if now >= next_housekeeping:
                    self._housekeeping()
                    next_housekeeping = now + HOUSEKEEPING_S
                items = self._take_batch()
                if items:
                    self.process(items)
                if time.monotonic() >= next_reload:
                    self._reload_directory()
                    next_reload = time.monotonic() + DIRECTORY_RELOAD_S
                if time.monotonic() >= next_sweep:
                    self._sweep()
                    self._outbox()
                    next_sweep = time.monotonic() + SWEEP_S
                if time.monotonic() >= next_beat:
                    self._heartbeat()
                    next_beat = time.monotonic() + HEARTBEAT_S
                if self.retiring and self._drained():
                    self._end_session()
                    return
        finally:
            self._disconnect()
            self._drop_connection()

    def _disconnect(self) -> None:
        """Say goodbye to the broker (a DISCONNECT it keeps the session for) and close."""
        self.client.disconnect()
        self._until_closed(2.0)

    def _until_closed(self, seconds: float) -> None:
        """Run the network loop until the DISCONNECT has gone out and paho closed the socket."""
        end = time.monotonic() + seconds
        while self.client.socket() is not None and time.monotonic() < end:
            if self.client.loop(timeout=0.05) != mqtt.SUCCESS:
                break

    def _drained(self) -> bool:
        """Retiring: connected, nothing waiting here, and the broker has sent nothing for a while."""
        return (self.connected.is_set() and not self.inbox
                and time.monotonic() - self._last_message > RETIRE_QUIET_S)

    def _end_session(self) -> None:
        """Leave the shared subscription, take what the broker still sends, then disconnect
        and end the session so the broker stops keeping (and dealing to) this name."""
        self.client.unsubscribe([f"$share/{self.settings.ingest_share_group}/{t}" for t in TOPICS])
        self._last_message = time.monotonic()
        while not self._drained() and not self.stop_event.is_set():
            items = self._take_batch()
            if items:
                self.process(items)
        self._disconnect()
        mqtt.end_session(self.client_id, self.settings.mqtt_host, self.settings.mqtt_port, login=self.settings.mqtt_login)
        log.info("retired %s: its queue at the broker is drained and its session ended", self.name)

    def stop(self) -> None:
        self.stop_event.set()
