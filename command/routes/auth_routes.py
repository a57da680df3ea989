from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from command.auth import User, check_password, current_user, issue_token
from command.deps import db

router = APIRouter(tags=["auth"])


@router.post("/api/auth/token")
def login(request: Request, form: OAuth2PasswordRequestForm = Depends(), conn=Depends(db)):
    """OAuth2 password flow: user name and password in, a bearer token out."""
    settings = request.app.state.settings
    user = check_password(conn, form.username, form.password)
    return {"access_token": issue_token(user, settings.secret_key.get_secret_value(), settings.token_ttl_minutes),
            "token_type": "bearer", "expires_in": settings.token_ttl_minutes * 60, "user": user.public()}


@router.get("/api/me")
def me(user: User = Depends(current_user)):
    return user.public()
