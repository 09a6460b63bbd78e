"""The web console at /console/: static files of this package (api_shim/console/), no build
step and nothing fetched from elsewhere. The pages call the public HTTP API like any client,
with the key the user pastes (kept in the tab's sessionStorage), so scopes and tenant
isolation hold as they do for curl. See docs/console.md.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

URL = "/console"
_DIRECTORY = files("api_shim") / "console"
# Everything from this origin only: a script injected through data (a segment's name, an
# email) could neither run nor send the key elsewhere. Inline styles stay off too: the
# pages set styles through the DOM, never in markup.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Always revalidated (ETag), so a new release is picked up on the next load.
    "Cache-Control": "no-cache",
}


class _ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the console at /console/ (and /console, redirected)."""
    app.mount(URL, _ConsoleFiles(directory=str(_DIRECTORY), html=True), name="console")

    @app.get(URL, include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse(f"{URL}/", status_code=308)
