"""Checks of the JSON around the conditions, shared by the dialects: its size, its arrays and
its keys. Each records a located error rather than raising, except the size check, which
stops everything (no per-condition work on oversized input)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from worker.rules.conditions import Errors
from worker.rules.errors import RuleError, RulesInvalid, join_loc
from worker.rules.limits import MAX_RULES_BYTES


def check_size(raw: Any, loc: str) -> None:
    """Reject rules over MAX_RULES_BYTES of JSON before anything else looks at them: the count
    limits alone allow huge arrays of long strings."""
    try:
        size = len(json.dumps(raw, separators=(",", ":")).encode())
    except (TypeError, ValueError, UnicodeEncodeError):
        return  # not JSON-shaped or has lone surrogates: the checks that follow report it
    if size > MAX_RULES_BYTES:
        raise RulesInvalid(
            [
                RuleError(
                    loc or "body",
                    f"is {size} bytes of JSON; at most {MAX_RULES_BYTES} are allowed",
                    "rules_too_large",
                )
            ]
        )


def object_list(raw: Any, key: str, loc: str, max_items: int, errors: Errors) -> list[Any] | None:
    """raw[key] as a non-empty list of at most max_items, or None with the error recorded."""
    if not isinstance(raw, Mapping):
        errors.add(loc or "body", f"must be an object with {key!r}", "object_type")
        return None
    items = raw.get(key)
    key_loc = join_loc(loc, key)
    if not isinstance(items, list) or not items:
        errors.add(key_loc, "must be a non-empty array", "array_type")
        return None
    if len(items) > max_items:
        errors.add(key_loc, f"must have at most {max_items} items", "too_many_items")
        return None
    return items


def reject_unknown_keys(
    raw: Mapping[str, Any], allowed: set[str], loc: str, errors: Errors
) -> None:
    for extra in sorted(set(raw) - allowed, key=str):
        errors.add(join_loc(loc, str(extra)), "unknown key", "extra_forbidden")
