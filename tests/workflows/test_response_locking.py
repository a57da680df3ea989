"""Lock order: every writer takes the incident's row lock before its tasks, dispatch orders
and resources. Closing an incident while someone finishes one of its tasks, or answers one
of its dispatch orders, then waits its turn instead of deadlocking; the timer loop skips an
incident somebody holds rather than waiting for it with a task already claimed.

Each race is forced into the interleaving that deadlocked before: a third connection holds a
row lock, the first writer queues on it, the second writer queues behind, and the holder lets
go. Nothing here asserts on time; the waits poll PostgreSQL for who is blocked."""
from __future__ import annotations

import datetime as dt
import queue
import threading

import psycopg
import pytest

from gis.db import connect
from gis.errors import Conflict
from tests.workflows.conftest import EMERGENCY_T0
from tests.workflows.test_response import by_step, flood
from workflows import dispatch, incidents, response
from workflows.resources import NewResource, add_resource

T0 = EMERGENCY_T0


def _wait_until_blocked(db, pid: int) -> None:
    """Poll until backend `pid` waits for a lock (capped, so a broken test ends instead of hanging)."""
    for _ in range(800):
        if db.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0 AS blocked", (pid,)).fetchone()["blocked"]:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


def _race(db_url, db, hold_sql: str, hold_args: tuple, first, second) -> dict:
    """Hold a row lock; start `first(conn)` and let it queue; start `second(conn)` and let it
    queue; let go. Returns each one's outcome: "ok" or the exception it raised."""
    outcomes: dict = {}
    threads = []

    def run(name, call, pids):
        with connect(db_url) as conn:
            conn.execute("SET lock_timeout = '8s'")          # a lost wake-up fails the test, not the suite
            pids.put(conn.info.backend_pid)
            try:
                call(conn)
                outcomes[name] = "ok"
            except Exception as e:  # noqa: BLE001 - the outcome is what the test looks at
                outcomes[name] = e

    with connect(db_url) as holder, holder.transaction():
        assert holder.execute(hold_sql, hold_args).fetchone() is not None
        for name, call in (("first", first), ("second", second)):
            pids: queue.Queue = queue.Queue()
            threads.append(threading.Thread(target=run, args=(name, call, pids)))
            threads[-1].start()
            _wait_until_blocked(db, pids.get(timeout=10))
    for t in threads:
        t.join(timeout=20)
    assert not any(isinstance(o, psycopg.errors.DeadlockDetected) for o in outcomes.values()), outcomes
    return outcomes


def closer(incident_id, actor):
    """Close as the API does: the close and the release of every resource still out, together."""
    def call(conn):
        with conn.transaction():
            response.close(conn, incident_id, actor, note="处置完毕", now=T0)
            dispatch.release_all(conn, incident_id, actor, now=T0)
    return call


def test_finishing_a_task_while_the_incident_closes_does_not_deadlock(db_url, db, crew):
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=T0)
    tasks = by_step(db, inc)
    response.act_on_task(db, tasks["verify"]["id"], "done", crew["cmdr"], note="已核实", now=T0)
    response.act_on_task(db, tasks["pumps"]["id"], "done", crew["cmdr"], note="已排水", now=T0)
    last = tasks["traffic_control"]["id"]             # the last mandatory task still open

    outcomes = _race(db_url, db, "SELECT id FROM incident_task WHERE id = %s FOR UPDATE", (last,),
                     lambda c: response.act_on_task(c, last, "waive", crew["cmdr2"], note="积水已退，无需管制", now=T0),
                     closer(inc, crew["cmdr"]))
    assert outcomes == {"first": "ok", "second": "ok"}
    assert by_step(db, inc)["traffic_control"]["status"] == "waived"
    assert incidents.get(db, inc, crew["cmdr"])["status"] == "closed"


def test_a_close_that_wins_the_race_refuses_cleanly(db_url, db, crew):
    """The other way round: the close holds the incident first; the task action waits, then
    finds the incident closed (409), having written nothing."""
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=T0)
    for t in by_step(db, inc).values():
        if t["mandatory"]:
            response.act_on_task(db, t["id"], "waive", crew["cmdr"], note="演练，无需处置", now=T0)
    inform = by_step(db, inc)["inform"]["id"]          # optional and open: the close cancels it

    outcomes = _race(db_url, db, "SELECT id FROM incident WHERE id = %s FOR UPDATE", (inc,),
                     closer(inc, crew["cmdr"]),
                     lambda c: response.act_on_task(c, inform, "start", crew["cmdr2"], now=T0))
    assert outcomes["first"] == "ok"
    assert isinstance(outcomes["second"], Conflict) and "closed" in str(outcomes["second"])
    assert by_step(db, inc)["inform"]["status"] == "cancelled"
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'task.start'").fetchone()["n"] == 0


def _dispatched(db, crew):
    inc = flood(db, crew["cmdr"])                      # no plan: nothing holds the close back
    truck = add_resource(db, NewResource("泵车1号", "pump_truck", 113.3410, 27.0005), actor="test")["id"]
    order = dispatch.dispatch(db, inc, truck, crew["cmdr"], now=T0)["id"]
    return inc, truck, order


def test_answering_an_order_while_the_incident_closes_does_not_deadlock(db_url, db, crew):
    inc, truck, order = _dispatched(db, crew)
    outcomes = _race(db_url, db, "SELECT id FROM dispatch_order WHERE id = %s FOR UPDATE", (order,),
                     lambda c: dispatch.update_order(c, order, "acknowledge", crew["cmdr2"], now=T0),
                     closer(inc, crew["cmdr"]))
    assert outcomes == {"first": "ok", "second": "ok"}
    assert db.execute("SELECT status, acked_at FROM dispatch_order WHERE id = %s", (order,)).fetchone() == \
        {"status": "released", "acked_at": T0}
    assert db.execute("SELECT status FROM resource WHERE id = %s", (truck,)).fetchone()["status"] == "available"
    assert incidents.get(db, inc, crew["cmdr"])["status"] == "closed"


def test_releasing_a_resource_while_it_is_dispatched_again_does_not_deadlock(db_url, db, crew):
    """update_order (order, resource, then incident before) against dispatch (incident, then
    resource): the release goes first, and the resource is sent out again after it."""
    inc, truck, order = _dispatched(db, crew)
    outcomes = _race(db_url, db, "SELECT id FROM resource WHERE id = %s FOR UPDATE", (truck,),
                     lambda c: dispatch.update_order(c, order, "release", crew["cmdr2"], now=T0),
                     lambda c: dispatch.dispatch(c, inc, truck, crew["cmdr"], now=T0))
    assert outcomes == {"first": "ok", "second": "ok"}
    assert [o["status"] for o in dispatch.orders(db, inc)] == ["released", "sent"]
    assert db.execute("SELECT status FROM resource WHERE id = %s", (truck,)).fetchone()["status"] == "assigned"


@pytest.mark.parametrize("kind", ["task", "order"])
def test_the_timer_loop_skips_an_incident_somebody_holds(db_url, db, crew, kind):
    """Escalation never waits for an incident's lock with rows already claimed (the other half
    of the close deadlock): a held incident is left for the next round, then escalated."""
    if kind == "task":
        inc = flood(db, crew["cmdr"])
        response.activate(db, inc, crew["cmdr"], now=T0)
        fire, late = response.fire_due, T0 + dt.timedelta(minutes=16)        # verify, due at 15
    else:
        inc, _, _ = _dispatched(db, crew)
        fire, late = dispatch.fire_due, T0 + dt.timedelta(minutes=11)        # not acknowledged in 10
    with connect(db_url) as timer:
        timer.execute("SET lock_timeout = '3s'")       # before the fix: a LockNotAvailable, not a hang
        with connect(db_url) as holder, holder.transaction():
            incidents.locked(holder, inc)
            assert fire(timer, now=late) == 0
        assert fire(timer, now=late) == 1
        assert fire(timer, now=late) == 0
    escalated = [e for e in incidents.events(db, inc) if e["kind"].endswith(".escalated")]
    assert len(escalated) == 1



@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])       # deadlock_detected, serialization_failure
def test_a_collision_is_a_409_to_retry_and_a_lost_database_still_a_503(db_url, sqlstate):
    """PostgreSQL rolling back one of two colliding transactions is the client's cue to reload
    and retry (409), not "the database cannot be reached" (503, kept for a real outage)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from command import http_errors
    from command.services import free_port

    app = FastAPI()
    http_errors.install(app)

    @app.get("/collide")
    def collide():
        with connect(db_url) as conn:
            conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'collided' USING ERRCODE = '{sqlstate}'; END $$")

    @app.get("/down")
    def down():
        psycopg.connect(f"postgresql://citygrid@127.0.0.1:{free_port()}/citygrid", connect_timeout=5)

    with TestClient(app) as client:
        r = client.get("/collide")
        assert r.status_code == 409 and r.json()["error"] == "Conflict"
        assert "at the same moment; reload and try again" in r.json()["message"]
        r = client.get("/down")
        assert r.status_code == 503 and "cannot be reached" in r.json()["message"]
