"""Server-rendered pages. Each page checks the login in the browser against the API;
the pages themselves hold no data."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
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


@router.get("/m", response_class=HTMLResponse)
def inspector_phone(request: Request):
    """The field inspector's phone page: report (with an offline outbox) and my tasks."""
    return templates.TemplateResponse(request, "m.html", {"demo": request.app.state.settings.demo})


@router.get("/console", response_class=HTMLResponse)
def case_console(request: Request):
    """The case console of operators, shift leads, dispatchers and departments."""
    return templates.TemplateResponse(request, "console.html", {"demo": request.app.state.settings.demo})


@router.get("/devices", response_class=HTMLResponse)
def device_page(request: Request):
    """IoT field devices (物联感知设备): list, map, latest values, chart, command log."""
    return templates.TemplateResponse(request, "devices.html", {"demo": request.app.state.settings.demo})


@router.get("/alarms", response_class=HTMLResponse)
def alarm_page(request: Request):
    """Device alarms (设备告警): acknowledge and comment, refreshed by the live bus."""
    return templates.TemplateResponse(request, "alarms.html", {"demo": request.app.state.settings.demo})


@router.get("/wall", response_class=HTMLResponse)
def video_wall(request: Request):
    """The video wall: camera groups in a 1/4/9/16 layout, live."""
    return templates.TemplateResponse(request, "wall.html", {"demo": request.app.state.settings.demo})


@router.get("/docs", response_class=HTMLResponse)
def api_docs():
    """The OpenAPI explorer, served from our vendored copy of Swagger UI (works offline)."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="CityGrid Command API",
                               swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
                               swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
                               swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
                               swagger_ui_parameters={"validatorUrl": None})
