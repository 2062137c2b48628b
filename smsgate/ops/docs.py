"""The API's interactive documentation (/docs), served by this server alone: the Swagger UI
files come from an installed package (`fastapi-offline`'s copies, pinned with it), never from a
CDN, so the page loads nothing from elsewhere and works offline. (FastAPI's /redoc is off: ReDoc
fetches its logo from its CDN.)"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from smsgate.kit.responses import api_router

ASSETS = "/docs/assets"
TITLE = "SMSGate API"
router = api_router(include_in_schema=False)


@router.get("/docs")
async def swagger() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=TITLE,
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    )


def install(app: FastAPI) -> None:
    """The pages' files, from the package that carries them."""
    folder = Path(str(files("fastapi_offline") / "static"))
    app.mount(ASSETS, StaticFiles(directory=folder), name="docs-assets")
