"""The interactive docs, /docs (Swagger UI) and /redoc (ReDoc), served with no internet.

FastAPI's own pages load their JavaScript and CSS from a CDN, so on a machine without internet
they stay blank. The assets here come from the fastapi-offline package, which ships Swagger UI
and ReDoc's bundles (updated with each of its releases, MIT-licensed) inside the wheel: pip
installs them with the service and no copy lives in this repository.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
# The package's data directory: its factory (FastAPIOffline) builds the app itself, and ours
# is built by create_app, so only its files are used.
_ASSETS_DIR = files("fastapi_offline") / "static"


def install(app: FastAPI) -> None:
    """Serve /docs and /redoc from the package's assets. The app must be created with
    `docs_url=None, redoc_url=None` so FastAPI's CDN pages are not registered."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(_ASSETS_DIR)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,  # fonts from Google would need the internet too
        )
