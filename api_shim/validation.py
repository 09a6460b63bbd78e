"""Checks of segment input that need the account's data: its lists and its custom fields.

All problems of one request are reported together, each with its location: list ids as
`contact_list_ids[1]` or `rules_json.any[0].all[2].list_ids[0]`, rule problems as the rule
parsers locate them, display fields as `display_fields[3]`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from uuid import UUID

from api_shim.errors import ApiError, ErrorItem, rules_errors
from api_shim.models import SegmentRules
from api_shim.types import json_size
from worker.db import Conn
from worker.references import load_graph, lock_references
from worker.rules import (
    FieldRegistry,
    RuleError,
    RulesInvalid,
    RuleTree,
    parse_simple_rules,
    parse_v2_rules,
)
from worker.rules.limits import MAX_DEPTH, MAX_RULES_BYTES
from worker.rules.references import SegmentGraph
from worker.store import load_registry

STATUS_CHOICES = ["subscribed", "unsubscribed", "bounced", "complained", "pending"]


async def known_list_ids(conn: Conn, account_id: UUID, ids: Collection[UUID]) -> set[UUID]:
    """Which of `ids` are lists of this account."""
    if not ids:
        return set()
    rows = await conn.fetch(
        "SELECT id FROM contact_lists WHERE account_id = $1 AND id = ANY($2::uuid[])",
        account_id,
        list(ids),
    )
    return {r["id"] for r in rows}


async def check_v2_input(
    conn: Conn,
    account_id: UUID,
    registry: FieldRegistry,
    *,
    rules_json: Mapping[str, Any] | None,
    contact_list_ids: list[UUID] | None,
    segment_id: UUID | None = None,
) -> RuleTree | None:
    """Raise a located 400 unless the lists are the account's and the rules are valid;
    returns the parsed rules (None if none were given). `segment_id` is the segment being
    changed (None: being created): the segments its rules reference must not lead back to it.
    In a transaction, the account's references stay locked until it ends, so that the
    caller saves them (worker.references.save_references) as they were checked."""
    list_ids = contact_list_ids or []
    known = await known_list_ids(conn, account_id, {*list_ids, *_rule_list_ids(rules_json)})
    errors = [
        ErrorItem(
            loc=f"contact_list_ids[{i}]",
            msg=f"list {list_id} is not a list of this account",
            type="unknown_list",
        )
        for i, list_id in enumerate(list_ids)
        if list_id not in known
    ]
    tree = None
    if rules_json is not None:
        await lock_references(conn, account_id)
        graph = await load_graph(conn, account_id, segment_id)
        try:
            tree = _parse_v2(rules_json, registry, known, graph)
        except RulesInvalid as exc:
            errors.extend(rules_errors(exc))
    if errors:
        raise ApiError(400, errors)
    return tree


async def check_segment_rules(conn: Conn, account_id: UUID, body: SegmentRules) -> RuleTree:
    """The rules of a create or preview body, checked against the account's lists, fields
    and segments (a located 400 otherwise): one path, so that both answer alike."""
    registry = await load_registry(conn, account_id)
    tree = await check_v2_input(
        conn,
        account_id,
        registry,
        rules_json=body.rules_json,
        contact_list_ids=body.contact_list_ids,
    )
    assert tree is not None  # rules_json is required
    return tree


def _parse_v2(
    raw: Mapping[str, Any], registry: FieldRegistry, known: set[UUID], graph: SegmentGraph
) -> RuleTree:
    if json_size(raw) > MAX_RULES_BYTES:
        msg = f"must be at most {MAX_RULES_BYTES} bytes of JSON"
        raise RulesInvalid([RuleError("rules_json", msg, "too_large")])
    return parse_v2_rules(raw, registry, known_list_ids=known, segments=graph)


def check_simple_rules(raw: Any, registry: FieldRegistry) -> RuleTree:
    try:
        return parse_simple_rules(raw, registry, loc="")
    except RulesInvalid as exc:
        raise ApiError(400, rules_errors(exc)) from None


def _rule_list_ids(raw: Any, depth: int = 0) -> set[UUID]:
    """Every well-formed list id named in membership conditions of raw v2 rules, at any
    depth of any/all/not up to the limit (deeper rules are rejected by the parser)."""
    if depth > MAX_DEPTH:
        return set()
    if isinstance(raw, list):
        return {list_id for node in raw for list_id in _rule_list_ids(node, depth)}
    if not isinstance(raw, Mapping):
        return set()
    if any(key in raw for key in _GROUP_KEYS):
        return {x for key in _GROUP_KEYS for x in _rule_list_ids(raw.get(key), depth + 1)}
    ids = raw.get("list_ids") if raw.get("kind") == "membership" else None
    return _uuids(ids if isinstance(ids, list) else ())


_GROUP_KEYS = ("any", "all", "not")


def _uuids(values: Iterable[Any]) -> set[UUID]:
    out = set()
    for value in values:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # malformed: the parser locates it
                out.add(UUID(value))
    return out


def display_fields(registry: FieldRegistry, names: list[str]) -> list[dict[str, Any]]:
    """Field names -> `[{label, contact_column_name, data_type, choices}]`, or a located 400."""
    errors: list[ErrorItem] = []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        spec = registry.lookup(name)
        if spec is None:
            msg = registry.unknown(name)
            errors.append(ErrorItem(loc=f"display_fields[{i}]", msg=msg, type="unknown_field"))
        elif name in seen:
            errors.append(
                ErrorItem(loc=f"display_fields[{i}]", msg="listed twice", type="duplicate")
            )
        else:
            seen.add(name)
            out.append(
                {
                    "label": name.replace("_", " ").capitalize(),
                    "contact_column_name": name,
                    "data_type": spec.type.value,
                    "choices": STATUS_CHOICES if name == "status" else None,
                }
            )
    if errors:
        raise ApiError(400, errors)
    return out
