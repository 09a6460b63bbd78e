"""`segments explain SEGMENT CONTACT` as a person reads it: the verdicts first, then the rule
tree indented, one line per node, each condition followed by what it read. Green and red on
a terminal; plain text elsewhere (a pipe, a file, a test)."""

from __future__ import annotations

import json
from typing import Any

from worker.explain_contact import ContactExplanation
from worker.observed import jsonable

_GREEN, _RED, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[0m"
_WIDTH = 56  # conditions are padded to this width, so what they read lines up


def render(e: ContactExplanation, colour: bool) -> str:
    def verdict(value: bool, text: str | None = None) -> str:
        word = text or ("yes" if value else "no")
        return f"{_GREEN if value else _RED}{word}{_RESET}" if colour else word

    fresh = _instant(jsonable(e.fresh_as_of)) if e.fresh_as_of else "not yet known"
    lines = [
        f'segment {e.segment_id} "{e.segment_name}"',
        f"contact {e.contact_id} <{e.email}>",
        f"  matches: {verdict(e.matches)}   member: {verdict(e.member)}"
        f"   in universe: {verdict(e.in_universe)}",
        f"  evaluated at {_instant(jsonable(e.evaluated_at))}; fresh as of {fresh}",
        "",
    ]
    lines += _node_lines(e.tree, 0, lambda ok: verdict(ok, "✓" if ok else "✗"))
    return "\n".join(lines)


def _node_lines(node: dict[str, Any], depth: int, mark: Any) -> list[str]:
    indent = "  " * depth
    for key in ("any", "all"):
        if key in node:
            what = "any of" if key == "any" else "all of"
            head = f"{indent}{mark(node['result'])} {what}"
            return [head, *(line for n in node[key] for line in _node_lines(n, depth + 1, mark))]
    if "not" in node:
        return [f"{indent}{mark(node['result'])} not", *_node_lines(node["not"], depth + 1, mark)]
    text = f"{indent}{mark(node['result'])} {describe(node)}"
    # The mark's colour codes take no room on screen: pad by the visible length.
    visible = len(indent) + 2 + len(describe(node))
    return [text + " " * max(1, _WIDTH - visible) + "| " + observed(node)]


def describe(c: dict[str, Any]) -> str:
    """A condition in one line: `country equals "NL"`, `open count_gte 2, last 30 days`."""
    kind, op = c["kind"], c["operator"]
    if kind == "field":
        value = "" if c.get("value") is None else " " + _show(c["value"])
        return f"{c['field']} {op}{value}"
    if kind in ("activity", "deliverability"):
        value = "" if c.get("value") is None else f" {c['value']}"
        return f"{c['metric']} {op}{value}{_window(c.get('days_window'))}{_campaigns(c)}"
    named = {"membership": "list_ids", "isp": "values", "segment": "segment_ids"}[kind]
    return f"{kind} {op} {_show(c[named])}"


def observed(c: dict[str, Any]) -> str:
    seen = c["observed"]
    kind = c["kind"]
    if kind == "field":
        if seen["stored"] == seen["read"]:
            return f"value {_show(seen['read'])}"
        return f"stored {_show(seen['stored'])}, read {_show(seen['read'])}"
    if kind in ("activity", "deliverability"):
        start, end = _instant(seen["from"] or "the first"), _instant(seen["to"] or "now")
        span = "" if seen["from"] is None and seen["to"] is None else f" from {start} to {end}"
        return f"{seen['count']} {'event' if seen['count'] == 1 else 'events'}{span}"
    if kind == "isp":
        name = f" ({seen['name']})" if seen["name"] else ""
        return f"isp_id {_show(seen['isp_id'])}{name}"
    found = seen["lists" if kind == "membership" else "segments"]
    where = "on" if kind == "membership" else "in"
    return f"{where} " + (", ".join(x["name"] for x in found) if found else "none of them")


def _window(window: dict[str, Any] | None) -> str:
    if not window:
        return ""
    if window["mode"] == "calendar":
        return f", calendar {window['unit']} {window['offset']:+d}"
    days = window["days"]
    return f", last {days} days" if window["mode"] == "last" else f", more than {days} days ago"


def _campaigns(c: dict[str, Any]) -> str:
    if c.get("include_campaign_ids"):
        return f", campaigns {_show(c['include_campaign_ids'])}"
    if c.get("exclude_campaign_ids"):
        return f", not campaigns {_show(c['exclude_campaign_ids'])}"
    return ""


def _instant(text: str) -> str:
    """An ISO 8601 instant to the second, as people read it (`2026-11-05 01:09:40Z`)."""
    if len(text) < 19 or text[10] != "T":
        return text
    return text[:10] + " " + text[11:19] + "Z"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
