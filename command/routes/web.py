"""Server-rendered pages. Each page checks the login in the browser against the API;
the pages themselves hold no data."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent.parent / "web" / "templates")


@router.get("/")
def home():
    return RedirectResponse("/map")


@router.get("/map", response_class=HTMLResponse)
def city_map(request: Request):
    return templates.TemplateResponse(request, "map.html", {"demo": request.app.state.settings.demo})
