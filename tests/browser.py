"""Headless Chromium through selenium and the system's chromedriver, for the browser tests.

Without Chromium the tests skip, unless SEGMENTS_REQUIRE_BROWSER is set (CI sets it), where a
missing browser is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _browser_paths() -> tuple[str, str] | None:
    binary = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (binary, driver) if binary and driver else None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless Chromium that keeps the page's console messages (`get_log("browser")`)."""
    paths = _browser_paths()
    if paths is None:
        if os.environ.get("SEGMENTS_REQUIRE_BROWSER"):
            raise AssertionError("Chromium is required (SEGMENTS_REQUIRE_BROWSER) but missing")
        pytest.skip(
            "Chromium and chromedriver not installed (CI installs them: "
            "apt-get install chromium chromium-driver)"
        )
    binary, driver_path = paths
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The given driver path keeps Selenium Manager from trying to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()
