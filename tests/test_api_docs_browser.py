"""/docs and /redoc in a real browser (headless Chromium) against `segments api` as a process:
the pages render the operations, and every asset they load comes from the service itself, so
they work on a machine with no internet."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.api_fixtures import ApiProcess, api_process
from tests.browser import chromium

_RENDER_TIMEOUT_S = 30
# ReDoc's "API docs by Redocly" footer logo: an image it hides itself when it cannot load
# (offline), so the page does not need it.
_OPTIONAL = {"https://cdn.redoc.ly/redoc/logo-mini.svg"}


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def server(database_url: str, amqp_url: str) -> Iterator[ApiProcess]:
    with api_process(database_url, amqp_url) as running:
        yield running


def _foreign_resources(browser: webdriver.Chrome, base: str) -> list[str]:
    """URLs the page loaded (scripts, styles, fonts, images, the spec) from anywhere else."""
    urls: list[str] = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    origin = urlsplit(base).netloc
    return [url for url in urls if urlsplit(url).netloc != origin and url not in _OPTIONAL]


def test_swagger_ui_shows_the_operations_from_local_assets(
    browser: webdriver.Chrome, server: ApiProcess
) -> None:
    browser.get(f"{server.url}/docs")
    create_segment = (
        ".opblock-post .opblock-summary-path[data-path='/api/v2/segments/'],"
        ".opblock-post .opblock-summary-path[data-path='/api/v2/segments']"
    )
    WebDriverWait(browser, _RENDER_TIMEOUT_S).until(
        lambda b: b.execute_script(f"return document.querySelector({create_segment!r}) !== null")
    )
    operations = browser.execute_script(
        "return document.querySelectorAll('.opblock .opblock-summary-path').length"
    )
    assert operations >= 10
    assert _foreign_resources(browser, server.url) == []


def test_redoc_shows_the_operations_from_local_assets(
    browser: webdriver.Chrome, server: ApiProcess
) -> None:
    browser.get(f"{server.url}/redoc")
    WebDriverWait(browser, _RENDER_TIMEOUT_S).until(
        lambda b: b.execute_script(
            "return document.querySelectorAll('[data-section-id^=\"operation/\"]').length > 0"
        )
    )
    assert "/api/v2/segments" in browser.find_element("css selector", "body").text
    assert _foreign_resources(browser, server.url) == []
