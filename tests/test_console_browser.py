"""The web console (/console/) in headless Chromium against `segments run` as a process: sign
in with a key, build a segment in the rule builder and watch it reach DONE with the right
count, explain a member and a non-member, see an invalid rule's error next to the part it
points at, all from the keyboard where a user would type, and with no console errors.

`SEGMENTS_CONSOLE_SCREENSHOTS=1` also saves the list, builder and explain pages at 1280 px and
390 px wide into docs/img/ (the README shows them).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.api_fixtures import (
    ApiProcess,
    api_process,
    make_contact,
    make_tenant,
    segment_body,
)
from tests.browser import chromium

_TIMEOUT_S = 45
_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "img"
_WIDTHS = (1280, 390)
# Answers the tests provoke on purpose: the invalid rule's 400 (Chromium logs every 4xx
# answer as a console error of source "network").
_COUNTRY_NL = {"all": [{"kind": "field", "field": "country", "operator": "equals", "value": "nl"}]}
_EXPECTED_400 = ("/api/v2/segments/preview/", "/api/v2/segments/ ")


@pytest.fixture(scope="module")
async def data(pool: asyncpg.Pool) -> dict[str, Any]:
    """An account with one list: two contacts on it (one in NL, one in DE) and one NL
    contact off it, so "country is nl" over the list counts exactly one."""
    async with pool.acquire() as conn:
        tenant = await make_tenant(conn)
        await conn.execute(
            "UPDATE contact_lists SET name = 'Newsletter' WHERE id = $1", tenant.list_id
        )
        suffix = uuid.uuid4().hex[:8]
        emails = {
            "member": f"ada-{suffix}@example.com",
            "other": f"bert-{suffix}@example.com",
            "outside": f"cleo-{suffix}@example.com",
        }
        ids = {
            "member": await make_contact(conn, tenant.account_id, emails["member"], country="NL"),
            "other": await make_contact(conn, tenant.account_id, emails["other"], country="DE"),
            "outside": await make_contact(conn, tenant.account_id, emails["outside"], country="nl"),
        }
        for role in ("member", "other"):
            await conn.execute(
                "INSERT INTO contact_list_members (list_id, contact_id, account_id) "
                "VALUES ($1, $2, $3)",
                tenant.list_id,
                ids[role],
                tenant.account_id,
            )
    return {"tenant": tenant, "emails": emails, "ids": ids, "name": f"Dutch readers {suffix}"}


@pytest.fixture(scope="module")
def server(database_url: str, amqp_url: str) -> Iterator[ApiProcess]:
    with api_process(
        database_url, amqp_url, "run", SEGMENTS_API_RATE_LIMIT_PER_MINUTE="100000"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def others(server: ApiProcess, data: dict[str, Any]) -> None:
    """Two more segments, made over HTTP, so the list has company."""
    tenant = data["tenant"]
    rules = [
        {"any": [{"kind": "activity", "metric": "open", "operator": "ever"}]},
        {
            "all": [
                {"not": {"kind": "field", "field": "country", "operator": "equals", "value": "de"}}
            ]
        },
    ]
    named = zip(("Openers", "Outside Germany"), ("#cc9ccb", "#f7819b"), rules, strict=True)
    for name, color, rules_json in named:
        body = segment_body(tenant.list_id, name=name, color=color, rules_json=rules_json)
        answer = httpx.post(f"{server.url}/api/v2/segments/", json=body, headers=tenant.headers)
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def browser(server: ApiProcess, data: dict[str, Any], others: None) -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        driver.get(f"{server.url}/console/")
        # The key form has focus on arrival: typing the key and Enter signs in.
        _wait(driver, lambda d: d.switch_to.active_element.get_attribute("type") == "password")
        driver.switch_to.active_element.send_keys(data["tenant"].key, Keys.ENTER)
        _wait(driver, lambda d: _text(d, "h1") == "Segments")
        yield driver


def _wait(driver: webdriver.Chrome, condition: Any, timeout: float = _TIMEOUT_S) -> Any:
    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        page = _text(driver, "main")
        raise AssertionError(
            f"not met within {timeout}s at {driver.current_url}\n--- page:\n{page}\n"
            f"--- console:\n{driver.get_log('browser')}"
        ) from None


def _text(driver: webdriver.Chrome, css: str) -> str:
    """The first match's text, or "" (also when the page replaced it while it was read)."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def _at(driver: webdriver.Chrome, loc: str) -> WebElement:
    """The builder's control for an input location (`rules_json.all[0].value`)."""
    return driver.find_element(By.CSS_SELECTOR, f'[data-loc="{loc}"]')


def _button(driver: webdriver.Chrome, label: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'button[aria-label="{label}"]')


def _tab_to(driver: webdriver.Chrome, text: str, presses: int = 40) -> WebElement:
    """Press Tab until the focused element's text is `text`: reachable by keyboard."""
    for _ in range(presses):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        focused = driver.switch_to.active_element
        if focused.text.strip() == text:
            return focused
    raise AssertionError(f"{text!r} not reachable with Tab")


def _type(element: WebElement, text: str) -> None:
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.BACKSPACE, text)


def _console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return [
        e
        for e in entries
        if e["level"] == "SEVERE"
        and not (
            e.get("source") == "network"
            and "status of 400" in e["message"]
            and any(path in e["message"] for path in _EXPECTED_400)
        )
    ]


# WCAG's contrast ratio of each visible text's colour against the first opaque background
# behind it; returns the texts below AA (4.5:1, or 3:1 for large text).
_LOW_CONTRAST_JS = """
const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255;
  return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
  .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
const background = (el) => { for (; el; el = el.parentElement) {
  const c = rgb(getComputedStyle(el).backgroundColor); if (c.length === 3 || c[3] > 0.9) return c;
} return [255, 255, 255]; };
const low = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const el = walker.currentNode.parentElement; const text = walker.currentNode.textContent.trim();
  if (!text || !el.getClientRects().length || el.closest('.visually-hidden, option, svg')) continue;
  if (el.closest('button:disabled')) continue;  // WCAG exempts inactive controls
  const style = getComputedStyle(el); const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  const [a, b] = [lum(rgb(style.color)), lum(background(el))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < (large ? 3 : 4.5)) low.push(`${text.slice(0, 40)}: ${ratio.toFixed(2)}`);
}
return low;
"""


# True when the page has no chart or its chart is drawn for the window's width.
_CHART_FITS = """
const chart = document.querySelector('svg.chart');
if (!chart) return true;
const width = Math.max(280, Math.min(640, document.documentElement.clientWidth - 32));
return chart.viewBox.baseVal.width === width;
"""


def _low_contrast(driver: webdriver.Chrome) -> list[str]:
    low: list[str] = driver.execute_script(_LOW_CONTRAST_JS)
    return low


def _screenshots(driver: webdriver.Chrome, name: str) -> None:
    """Checked for contrast on every run; saved when SEGMENTS_CONSOLE_SCREENSHOTS is set."""
    assert _low_contrast(driver) == [], name
    if not os.environ.get("SEGMENTS_CONSOLE_SCREENSHOTS"):
        return
    for width in _WIDTHS:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 300, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        _wait(driver, lambda d: d.execute_script(_CHART_FITS))  # redrawn for this width
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": width,
                "height": min(height, 2200),
                "deviceScaleFactor": 1,
                "mobile": width < 600,
            },
        )
        driver.save_screenshot(str(_IMAGES / f"console-{name}-{width}.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_a_segment_built_in_the_builder_reaches_done_with_the_right_count(
    browser: webdriver.Chrome, server: ApiProcess, data: dict[str, Any]
) -> None:
    _tab_to(browser, "New segment").send_keys(Keys.ENTER)
    _wait(browser, lambda d: _text(d, "h1") == "New segment")
    _type(_at(browser, "name"), data["name"])
    newsletter = browser.find_element(By.XPATH, "//label[starts-with(., 'Newsletter')]")
    browser.find_element(By.ID, newsletter.get_attribute("for")).send_keys(Keys.SPACE)
    Select(_at(browser, "rules_json.all[0].field")).select_by_value("country")
    Select(_at(browser, "rules_json.all[0].operator")).select_by_value("equals")
    _type(_at(browser, "rules_json.all[0].value"), "nl")
    # A nested group: any of (status is subscribed, NOT opened in the last 30 days); true for
    # every contact here, so the count stays one. Buttons are pressed with Enter.
    _button(browser, "Add a group to rules_json").send_keys(Keys.ENTER)
    _button(browser, "Add a condition to rules_json.all[1]").send_keys(Keys.ENTER)
    Select(_at(browser, "rules_json.all[1].any[1].kind")).select_by_value("activity")
    _button(browser, "Negate rules_json.all[1].any[1] (wrap it in NOT)").send_keys(Keys.ENTER)
    assert browser.switch_to.active_element == _at(browser, "rules_json.all[1].any[1].not.kind")
    # The live preview counts the rule as it stands: one contact on the list is Dutch.
    _wait(browser, lambda d: _text(d, ".preview .big strong") == "1")
    assert data["emails"]["member"] in _text(browser, ".preview")
    _screenshots(browser, "builder")
    _at(browser, "rules_json.all[0].value").send_keys(Keys.ENTER)  # Enter submits the form

    _wait(browser, lambda d: _text(d, "h1") == data["name"])
    _wait(browser, lambda d: "DONE" in _text(d, ".facts"))
    facts = _text(browser, ".facts")
    assert "Contacts\n1\n" in facts, facts
    members = "section[aria-labelledby=members-title]"
    _wait(browser, lambda d: data["emails"]["member"] in _text(d, members))
    tree = _text(browser, ".tree")
    assert "country equals “nl”" in tree, tree
    assert "Not:\nopened at least once in the last 30 days" in tree, tree
    _screenshots(browser, "segment")
    assert "Fresh as of" in facts and "not reported" not in facts, facts

    browser.get(f"{server.url}/console/#/?search={data['name'].split()[-1]}")
    _wait(browser, lambda d: "DONE" in _text(d, "table.segments tbody"))
    assert data["name"] in _text(browser, "table.segments tbody")
    browser.get(f"{server.url}/console/#/")
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "table.segments tbody tr")) == 3)
    _screenshots(browser, "list")
    assert _console_errors(browser) == []


def _explain(browser: webdriver.Chrome, server: ApiProcess, ref: str, data: dict[str, Any]) -> str:
    # A new address that differs only after the # is no reload: wait for each new page.
    browser.get(f"{server.url}/console/#/")
    _wait(browser, lambda d: _text(d, "h1") == "Segments")
    _wait(browser, lambda d: data["name"] in _text(d, "table.segments tbody"))
    browser.find_element(By.LINK_TEXT, data["name"]).send_keys(Keys.ENTER)
    _wait(browser, lambda d: _text(d, "h1") == data["name"])
    field = browser.find_element(By.XPATH, "//label[.='Contact id or email']")
    browser.find_element(By.ID, field.get_attribute("for")).send_keys(ref, Keys.ENTER)
    _wait(browser, lambda d: ref in _text(d, "h1") and _text(d, ".explain .tree"))
    text: str = _wait(browser, lambda d: _text(d, ".explain"))
    return text


def test_explain_shows_why_a_member_is_in_and_a_non_member_is_not(
    browser: webdriver.Chrome, server: ApiProcess, data: dict[str, Any]
) -> None:
    member = _explain(browser, server, data["emails"]["member"], data)
    assert "Member of the segment now" in member and "Matches the rules now" in member
    assert "true" in _text(browser, ".explain .tree .result.pass")
    assert "NL" in _text(browser, ".explain .observed")  # what was stored
    _screenshots(browser, "explain")

    other = _explain(browser, server, data["emails"]["other"], data)
    assert "Not a member of the segment now" in other
    assert "Does not match the rules now" in other
    assert browser.find_elements(By.CSS_SELECTOR, ".explain .tree .node.fail")
    assert "DE" in _text(browser, ".explain .observed")
    assert _console_errors(browser) == []


def test_an_invalid_rule_shows_its_error_next_to_the_part_it_points_at(
    browser: webdriver.Chrome, server: ApiProcess, data: dict[str, Any]
) -> None:
    browser.get(f"{server.url}/console/#/new")
    _wait(browser, lambda d: _text(d, "h1") == "New segment")
    _type(_at(browser, "name"), f"{data['name']} invalid")
    newsletter = browser.find_element(By.XPATH, "//label[starts-with(., 'Newsletter')]")
    browser.find_element(By.ID, newsletter.get_attribute("for")).send_keys(Keys.SPACE)
    Select(_at(browser, "rules_json.all[0].field")).select_by_value("created_at")
    Select(_at(browser, "rules_json.all[0].operator")).select_by_value("gt")
    value = _at(browser, "rules_json.all[0].value")
    _type(value, "last tuesday")
    value.send_keys(Keys.ENTER)  # saving asks the API, which answers 400 with the location

    loc = "rules_json.all[0].value"
    message = _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, f'.error-msg[data-error-loc="{loc}"]'),
    )[0]
    # Right after the value's own field, and tied to the control for screen readers.
    field = message.find_element(By.XPATH, "preceding-sibling::*[1]")
    assert field.find_elements(By.CSS_SELECTOR, f'[data-loc="{loc}"]')
    assert value.get_attribute("aria-invalid") == "true"
    assert message.get_attribute("id") in value.get_attribute("aria-describedby")
    assert browser.switch_to.active_element == value  # focus went to the problem
    assert _text(browser, "h1") == "New segment"  # nothing saved
    assert _console_errors(browser) == []


def test_the_key_is_never_in_a_url_or_cookie(
    browser: webdriver.Chrome, server: ApiProcess, data: dict[str, Any]
) -> None:
    key = data["tenant"].key
    assert key not in browser.current_url
    assert all(key not in c["value"] for c in browser.get_cookies())
    assert browser.execute_script("return localStorage.length") == 0
    assert key not in server.log()


def test_the_list_follows_a_build_without_reloading(
    browser: webdriver.Chrome, server: ApiProcess, data: dict[str, Any]
) -> None:
    browser.get(f"{server.url}/console/#/?search=Live")
    _wait(browser, lambda d: "No segment name contains" in _text(d, "main"))
    browser.execute_script("window.stillTheSamePage = true")
    tenant = data["tenant"]
    body = segment_body(tenant.list_id, name="Live one", rules_json=_COUNTRY_NL)
    answer = httpx.post(f"{server.url}/api/v2/segments/", json=body, headers=tenant.headers)
    assert answer.status_code == 200, answer.text

    row = "table.segments tbody tr"
    _wait(browser, lambda d: "DONE" in _text(d, row))
    cells = browser.find_elements(By.CSS_SELECTOR, f"{row} > *")
    assert [cell.text for cell in cells][:3] == ["Live one", "DONE", "1"]
    assert browser.execute_script("return window.stillTheSamePage") is True
    assert _console_errors(browser) == []


def _rules_json(browser: webdriver.Chrome) -> Any:
    area = browser.find_element(By.XPATH, "//label[.='rules_json']")
    text = browser.find_element(By.ID, area.get_attribute("for")).get_attribute("value")
    return json.loads(text)


def test_every_condition_kind_and_value_shape_can_be_built(
    browser: webdriver.Chrome, server: ApiProcess, data: dict[str, Any]
) -> None:
    browser.get(f"{server.url}/console/#/new")
    _wait(browser, lambda d: _text(d, "h1") == "New segment")
    first = "rules_json.all[0]"
    for kind in ("activity", "deliverability", "membership", "isp", "segment", "field"):
        Select(_at(browser, f"{first}.kind")).select_by_value(kind)
        _wait(browser, lambda d, kind=kind: _rules_json(d)["all"][0]["kind"] == kind)
    # A value control for each shape of value: a period, a list, a number, none.
    shapes = [
        ("created_at", "in_calendar", {"unit": "month", "offset": 0}),
        ("tags", "has_any", []),
        ("opens_count", "gt", 0),
        ("city", "is_null", None),
    ]
    for field, operator, value in shapes:
        Select(_at(browser, f"{first}.field")).select_by_value(field)
        Select(_at(browser, f"{first}.operator")).select_by_value(operator)
        condition = _rules_json(browser)["all"][0]
        assert (condition["field"], condition["operator"]) == (field, operator)
        assert condition.get("value") == value, condition
    Select(_at(browser, f"{first}.kind")).select_by_value("activity")
    Select(_at(browser, f"{first}.days_window")).select_by_value("calendar")
    assert _rules_json(browser)["all"][0]["days_window"] == {
        "mode": "calendar",
        "unit": "month",
        "offset": 0,
    }
    assert _console_errors(browser) == []


def test_editing_a_segment_saves_what_changed(
    browser: webdriver.Chrome, server: ApiProcess, data: dict[str, Any]
) -> None:
    tenant = data["tenant"]
    listed = httpx.get(
        f"{server.url}/api/v2/segments/?search=Openers", headers=tenant.headers
    ).json()
    (segment,) = listed["items"]
    browser.get(f"{server.url}/console/#/segments/{segment['id']}/edit")
    _wait(browser, lambda d: _text(d, "h1") == "Edit Openers")
    name = _at(browser, "name")
    _type(name, "Openers, renamed")
    name.send_keys(Keys.ENTER)
    _wait(browser, lambda d: _text(d, "h1") == "Openers, renamed")
    saved = httpx.get(
        f"{server.url}/api/v2/segments/{segment['id']}/", headers=tenant.headers
    ).json()
    assert saved["name"] == "Openers, renamed"
    assert saved["rules_json"] == {
        "any": [{"kind": "activity", "metric": "open", "operator": "ever"}]
    }
    assert _console_errors(browser) == []
