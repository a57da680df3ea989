"""Passwords (argon2), bearer tokens, the current user, and role/area/department checks."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import jwt
import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from gis.db import audit, department_id
from gis.errors import Conflict, Forbidden, Invalid, Unauthenticated
from gis.roles import ROLES

ALL = frozenset(ROLES)

# Which roles may do what. Area and department limits are applied on top, per user.
PERMISSIONS: dict[str, frozenset[str]] = {
    "map.read": ALL,                 # grids, parts, base map, geocode, catalog
    "part.status": frozenset({"admin", "operator", "shift_lead", "department", "inspector"}),
    "case.report": frozenset({"admin", "operator", "shift_lead", "inspector"}),
    "case.read": ALL,                # which cases: workflows.cases.visibility
    "case.act": ALL,                 # which actions: the transition table
    "apikey.manage": frozenset({"admin"}),
    # 综合评价: whole tables for these; departments and inspectors see their own row only.
    "evaluation.read": frozenset({"admin", "leader", "commander", "shift_lead", "department", "inspector"}),
    "user.manage": frozenset({"admin"}),
    "audit.read": frozenset({"admin", "leader"}),
    # Patrol units (巡查单元): positions, tracks, alarms, attendance. Which units: command.unit_access.
    "unit.read": frozenset({"admin", "leader", "commander", "shift_lead", "operator", "dispatcher", "department",
                            "inspector"}),
    "unit.manage": frozenset({"admin", "shift_lead"}),          # units, devices, shifts (排班)
    "unit.alarm": frozenset({"admin", "commander", "shift_lead", "operator", "dispatcher"}),  # clear alarms
    "report.read": frozenset({"admin", "leader", "commander", "shift_lead", "department"}),  # 考勤日报
    # IoT field devices (物联感知设备). Which devices: command.routes.device_routes.device_filter.
    "device.read": frozenset({"admin", "leader", "commander", "shift_lead", "operator", "dispatcher", "department",
                              "inspector"}),
    "device.manage": frozenset({"admin", "shift_lead"}),        # registry, rule overrides
    "device.alarm": frozenset({"admin", "commander", "shift_lead", "operator", "dispatcher", "department"}),
    "device.command": frozenset({"admin", "commander", "shift_lead", "operator", "dispatcher", "department"}),
    # Cameras (视频监控): every staff role sees them, their events and the coverage; admins register them.
    "camera.read": ALL,
    "camera.manage": frozenset({"admin"}),
    # Emergency command (应急指挥). Which incidents: workflows.incidents.visibility; who may act
    # on a task: its owner or a commander (workflows.response).
    "incident.read": ALL,
    "incident.report": frozenset({"admin", "leader", "commander", "shift_lead", "operator", "dispatcher"}),
    "incident.command": frozenset({"leader", "commander"}),   # verify, level, activate, waive, close
    "incident.task": ALL,
    "resource.read": ALL,
    "resource.manage": frozenset({"admin", "commander", "shift_lead"}),
    "dispatch.order": frozenset({"leader", "commander", "shift_lead", "dispatcher"}),
    "alert.draft": frozenset({"leader", "commander", "shift_lead", "operator"}),
    "alert.approve": frozenset({"leader", "commander"}),      # 签发
    "duty.read": ALL,
    "duty.manage": frozenset({"admin", "shift_lead"}),        # posts and the roster (排班)
}

_hasher = PasswordHasher()
# Verified against when the user is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("citygrid-no-such-user")
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    dept_id: int | None
    areas: tuple[str, ...] = field(default=())

    @property
    def scope(self) -> list[str] | None:
        """Area code prefixes this user is limited to; None for the whole jurisdiction.
        Inspectors are bound to their grids: one without an area sees nothing."""
        if self.role == "inspector":
            return list(self.areas)
        return list(self.areas) if self.areas else None

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    @property
    def dept_limit(self) -> int | None:
        return self.dept_id if self.role == "department" else None

    def public(self) -> dict:
        return {"id": self.id, "username": self.username, "display_name": self.display_name,
                "role": self.role, "role_name": ROLES[self.role], "dept_id": self.dept_id,
                "areas": list(self.areas)}


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise Invalid("a password needs at least 8 characters")
    return _hasher.hash(password)


def check_password(conn: psycopg.Connection, username: str, password: str) -> User:
    row = conn.execute("SELECT id, password_hash FROM app_user WHERE username = %s AND active",
                       (username,)).fetchone()
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
    except (VerifyMismatchError, InvalidHashError):
        row = None
    if row is None:
        raise Unauthenticated("wrong user name or password")
    return load_user(conn, row["id"])


def load_user(conn: psycopg.Connection, user_id: int) -> User:
    row = conn.execute(
        "SELECT u.id, u.username, u.display_name, u.role, u.dept_id,"
        " coalesce(array_agg(a.area_code ORDER BY a.area_code) FILTER (WHERE a.area_code IS NOT NULL), '{}') AS areas"
        " FROM app_user u LEFT JOIN user_area a ON a.user_id = u.id WHERE u.id = %s AND u.active"
        " GROUP BY u.id", (user_id,)).fetchone()
    if row is None:
        raise Unauthenticated("this account no longer exists or was disabled; log in again")
    return User(row["id"], row["username"], row["display_name"], row["role"], row["dept_id"], tuple(row["areas"]))


def create_user(conn: psycopg.Connection, *, username: str, password: str, role: str,
                display_name: str | None = None, dept: str | None = None, areas: list[str] | None = None,
                actor: str, actor_id: int | None = None) -> User:
    """Create a user with an audit row, in one transaction."""
    from gis.codes import area_level

    if role not in ROLES:
        raise Invalid(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role == "department" and not dept:
        raise Invalid("a department user needs --dept (the department it belongs to)")
    if role == "inspector" and not areas:
        raise Invalid("an inspector is bound to grids: give their patrol area (--area, a street, community or grid code)")
    for code in areas or []:
        area_level(code)
    with conn.transaction():
        dept_id = department_id(conn, dept)
        if conn.execute("SELECT 1 FROM app_user WHERE username = %s", (username,)).fetchone():
            raise Conflict(f"user {username!r} already exists")
        user_id = conn.execute(
            "INSERT INTO app_user (username, display_name, role, dept_id, password_hash)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (username, display_name or username, role, dept_id, hash_password(password))).fetchone()["id"]
        for code in areas or []:
            conn.execute("INSERT INTO user_area (user_id, area_code) VALUES (%s, %s)", (user_id, code))
        audit(conn, actor=actor, actor_id=actor_id, action="user.create", entity="user", entity_id=str(user_id),
              detail={"username": username, "role": role, "dept": dept, "areas": areas or []})
        return load_user(conn, user_id)


def issue_token(user: User, secret: str, ttl_minutes: int) -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return jwt.encode({"sub": str(user.id), "role": user.role, "iat": now,
                       "exp": now + dt.timedelta(minutes=ttl_minutes)}, secret, algorithm="HS256")


def user_id_from_token(token: str, secret: str) -> int:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        return int(claims["sub"])
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("your session has expired; log in again") from None
    except (jwt.InvalidTokenError, ValueError):
        raise Unauthenticated("the access token is not valid; log in again") from None


def current_user(request: Request, token: str | None = Depends(oauth2_scheme)) -> User:
    if not token:
        raise Unauthenticated("log in first: send 'Authorization: Bearer <token>' from POST /api/auth/token")
    user_id = user_id_from_token(token, request.app.state.settings.secret_key.get_secret_value())
    with request.app.state.pool.connection() as conn:
        return load_user(conn, user_id)


def require(permission: str):
    """A dependency that lets the request through only for roles holding `permission`."""
    if permission not in PERMISSIONS:
        raise KeyError(permission)

    def check(user: User = Depends(current_user)) -> User:
        if not user.can(permission):
            raise Forbidden(f"the role {ROLES[user.role]} ({user.role}) may not do this ({permission})")
        return user

    return check
