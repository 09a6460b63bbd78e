"""The console's files as the API serves them: at /console/, from the package, with headers
that keep the page to its own origin, every module an import names present, and nothing
loaded from the internet."""

from __future__ import annotations

import re
from importlib.resources import files

import httpx

from tests.api_fixtures import *  # noqa: F403

_CONSOLE = files("api_shim") / "console"
_IMPORT = re.compile(r'from "\./([\w.]+)"')
_URL = re.compile(r"https?://[^\s\"'`)]+")
# The one URL in the code is a name, never fetched: the namespace SVG elements are made in.
_NOT_FETCHED = {"http://www.w3.org/2000/svg"}


async def test_the_console_page_is_served_with_a_same_origin_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/console/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"

    bare = await client.get("/console")
    assert bare.status_code == 308 and bare.headers["location"] == "/console/"
    assert (await client.get("/console/nothing.js")).status_code == 404


async def test_every_imported_module_is_served_as_javascript(client: httpx.AsyncClient) -> None:
    scripts = sorted(p.name for p in _CONSOLE.iterdir() if p.name.endswith(".js"))
    imported = {
        name for script in scripts for name in _IMPORT.findall((_CONSOLE / script).read_text())
    }
    assert imported <= set(scripts), imported - set(scripts)
    for name in [*scripts, "app.css"]:
        answer = await client.get(f"/console/{name}")
        assert answer.status_code == 200, name
        kind = "css" if name.endswith(".css") else "javascript"
        assert kind in answer.headers["content-type"], (name, answer.headers["content-type"])


def test_nothing_is_fetched_from_elsewhere() -> None:
    for path in _CONSOLE.iterdir():
        urls = set(_URL.findall(path.read_text())) - _NOT_FETCHED
        assert urls == set(), (path.name, urls)


def test_the_key_is_kept_in_session_storage_only() -> None:
    code = "\n".join(p.read_text() for p in _CONSOLE.iterdir() if p.name.endswith(".js"))
    assert "sessionStorage" in code
    for forbidden in ("localStorage", "document.cookie", "indexedDB"):
        assert forbidden not in code, forbidden
