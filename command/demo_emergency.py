"""The demo city's emergency side (应急): a holder for every duty post the shipped plans name,
on a week's roster; emergency resources spread over the town (teams, vehicles, equipment,
warehouses of supplies, shelters); and one drill (演练) left running — the waterlogging plan
active, its first task done, the nearest pump trucks dispatched and an Exercise alert issued
— so a fresh demo shows the whole flow."""
from __future__ import annotations

import datetime as dt
import random
import re

import psycopg

from command.auth import User, create_user, load_user
from workflows import alerts, dispatch, duty, incidents, response
from workflows.incidents import NewIncident
from workflows.plans import resource_types
from workflows.resources import NewResource, add_resource

SURNAMES = "张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚"
# How many of each kind of resource the town keeps, and the stock of a supply or places of a shelter.
PER_KIND = {"team": 4, "vehicle": 6, "equipment": 5, "supply": 3, "shelter": 4}
STOCK = {"sandbags": 3000, "barrier_set": 60, "blankets": 800, "drinking_water": 1200}
SHELTER_PLACES = (300, 800)


def _dept_of(post: str) -> str:
    """The unit a post belongs to: 排水抢险队长 → 排水抢险队, 交警大队值班长 → 交警大队."""
    unit = re.sub(r"(抢修值班长|带班领导|值班长|值班员|调度员|火灾调查员|队长)$", "", post)
    return unit + "队" if unit.endswith(("抢险", "抢修")) else unit


def seed_emergency(conn: psycopg.Connection, *, password: str, now: dt.datetime, seed: int = 2026) -> list[str]:
    """Seed what is missing: posts and roster, resources, the running drill."""
    done = []
    if not conn.execute("SELECT 1 FROM duty_shift LIMIT 1").fetchone():
        done.append(_seed_roster(conn, password, now, random.Random(seed)))
    if not conn.execute("SELECT 1 FROM resource LIMIT 1").fetchone():
        done.append(_seed_resources(conn, random.Random(seed)))
    if not conn.execute("SELECT 1 FROM incident WHERE drill LIMIT 1").fetchone():
        done.append(_seed_drill(conn, now))
    return done


def _seed_roster(conn: psycopg.Connection, password: str, now: dt.datetime, rng: random.Random) -> str:
    """A holder for every post, on 24-hour shifts (08:00 to 08:00) from yesterday for a week; the
    commander's post is the demo commander's, the 带班领导 posts the demo leader's."""
    posts = duty.plan_posts()
    commander = load_user(conn, conn.execute("SELECT id FROM app_user WHERE username = 'commander'").fetchone()["id"])
    leader = load_user(conn, conn.execute("SELECT id FROM app_user WHERE username = 'leader'").fetchone()["id"])
    with conn.transaction():
        duty.ensure_posts(conn, posts, actor="demo")
        holders: dict[str, User] = {}
        for i, post in enumerate(posts, 1):
            if post == "县应急指挥长":
                holders[post] = commander
                continue
            if post.endswith("带班领导"):
                holders[post] = leader
                continue
            dept = _dept_of(post)
            if not conn.execute("SELECT 1 FROM department WHERE name = %s", (dept,)).fetchone():
                conn.execute("INSERT INTO department (name) VALUES (%s)", (dept,))
            conn.execute("UPDATE duty_post SET dept_id = (SELECT id FROM department WHERE name = %s) WHERE name = %s",
                         (dept, post))
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            holders[post] = create_user(conn, username=f"duty{i:02d}", password=password, role="department",
                                        display_name=f"{name}（{post}）", dept=dept, actor="demo")
        start = now.astimezone(incidents.LOCAL_TZ).replace(hour=8, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
        shifts = [duty.NewShift(post, holders[post].id, start + dt.timedelta(days=d), start + dt.timedelta(days=d + 1))
                  for post in posts for d in range(8)]
        duty.add_shifts(conn, shifts, actor="demo")
    return f"{len(posts)} duty posts on a week's roster (users duty01…, password {password})"


def _seed_resources(conn: psycopg.Connection, rng: random.Random) -> str:
    """Resources at places spread over the town's grids (stable for a seed)."""
    sites = conn.execute("SELECT ST_X(p) AS lon, ST_Y(p) AS lat, name FROM (SELECT ST_PointOnSurface(geom) AS p, name,"
                         " md5(code || %s) AS k FROM grid) g ORDER BY k", (str(rng.random()),)).fetchall()
    made = 0
    with conn.transaction():
        for code, kind in resource_types().items():
            count = PER_KIND[kind["kind"]]
            for n in range(1, count + 1):
                site = sites[made % len(sites)]
                quantity = STOCK.get(code, 1) if kind["kind"] == "supply" else \
                    rng.randint(*SHELTER_PLACES) if kind["kind"] == "shelter" else 1
                name = f"{kind['name']}{n}号" if kind["kind"] != "supply" else f"{site['name']}应急仓库·{kind['name']}"
                add_resource(conn, NewResource(name, code, site["lon"], site["lat"], quantity=quantity,
                                               contact=f"0731-2{rng.randint(1000000, 9999999)}"), actor="demo")
                made += 1
    return f"{made} emergency resources"


def _seed_drill(conn: psycopg.Connection, now: dt.datetime) -> str:
    """A waterlogging drill in the grid nearest the town's centre, as a commander would run it."""
    commander = load_user(conn, conn.execute("SELECT id FROM app_user WHERE username = 'commander'").fetchone()["id"])
    spot = conn.execute(
        "WITH c AS (SELECT ST_Centroid(ST_Collect(geom)) AS p FROM grid)"
        " SELECT ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat, g.name"
        " FROM grid g, c ORDER BY g.geom <-> c.p LIMIT 1").fetchone()
    with conn.transaction():
        made = incidents.create(conn, NewIncident(
            f"城区内涝应急演练（{spot['name']}）", "自然灾害", "水旱灾害", "Ⅳ", spot["lon"], spot["lat"], radius_m=400,
            description="演练：强降雨致城区主干道积水约35厘米，检验排水抢险、交通管制和信息发布。", drill=True,
            details={"depth": "35"}), commander, now=now)
        incident_id = made["id"]
        response.activate(conn, incident_id, commander, now=now)
        verify = next(t for t in response.tasks(conn, incident_id) if t["step_id"] == "verify")
        response.act_on_task(conn, verify["id"], "check", commander, checklist=[True] * len(verify["checklist"]), now=now)
        response.act_on_task(conn, verify["id"], "done", commander, note="演练：现场核实完毕，照片已回传", now=now)
        pumps = next(t for t in response.tasks(conn, incident_id) if t["step_id"] == "pumps")
        for need in dispatch.suggest(conn, incident_id, pumps["id"]):
            if need["type"] == "pump_truck":
                for truck in need["nearest"][:need["count"]]:
                    dispatch.dispatch(conn, incident_id, truck["id"], commander, task_id=pumps["id"], now=now)
        draft = alerts.draft(conn, incident_id, commander)
        alerts.approve(conn, draft["id"], commander, now=now)
    return f"drill {made['incident_no']} running (waterlogging plan active, an Exercise alert issued)"
