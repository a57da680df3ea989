"""User administration and the audit trail."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from command.auth import ROLES, User, create_user, require
from command.deps import db

router = APIRouter(tags=["users"])
Admin = Annotated[User, Depends(require("user.manage"))]


class NewUser(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{2,64}$")
    password: str = Field(min_length=8, max_length=200)
    role: str = Field(description=", ".join(ROLES))
    display_name: str | None = Field(default=None, max_length=100)
    dept: str | None = Field(default=None, description="department name (department users)")
    areas: list[str] = Field(default_factory=list, description="area codes the user is limited to")


@router.post("/api/users", status_code=201)
def add_user(new: NewUser, admin: Admin, conn=Depends(db)):
    user = create_user(conn, username=new.username, password=new.password, role=new.role,
                       display_name=new.display_name, dept=new.dept, areas=new.areas,
                       actor=admin.username, actor_id=admin.id)
    return user.public()


@router.get("/api/users")
def list_users(admin: Admin, conn=Depends(db)):
    return conn.execute(
        "SELECT u.id, u.username, u.display_name, u.role, d.name AS dept, u.active,"
        " coalesce(array_agg(a.area_code) FILTER (WHERE a.area_code IS NOT NULL), '{}') AS areas"
        " FROM app_user u LEFT JOIN department d ON d.id = u.dept_id LEFT JOIN user_area a ON a.user_id = u.id"
        " GROUP BY u.id, d.name ORDER BY u.username").fetchall()


@router.get("/api/audit")
def audit_trail(user: Annotated[User, Depends(require("audit.read"))], conn=Depends(db),
                entity: str | None = None, entity_id: str | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    return conn.execute(
        "SELECT id, at, actor, action, entity, entity_id, detail FROM audit_log"
        " WHERE (%(e)s::text IS NULL OR entity = %(e)s) AND (%(i)s::text IS NULL OR entity_id = %(i)s)"
        " ORDER BY id DESC LIMIT %(n)s", {"e": entity, "i": entity_id, "n": limit}).fetchall()
