"""Why is this contact in (or not in) this segment: the segment's rules evaluated now for one
contact, with the verdict of every node and what each condition read (docs/rules.md, "Why is
a contact in a segment"). Shared by the HTTP API and `segments explain SEGMENT CONTACT`.

The verdicts come from one statement the compiler builds (worker.compiler.compile_explain):
`matches` is the segment's own query as incremental updates run it, so it equals the compiled
verdict by construction; each node's verdict is that node compiled as rules of its own. The
tree shown is the rules as the v2 API shows them (`rules_json`: as written for v2 segments,
the canonical tree for v1 and simple ones), node for node.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from worker.compiler import SegmentQuery, compile_explain
from worker.contact_lookup import find_contact
from worker.db import Conn
from worker.observed import ContactData, Json, jsonable, load_contact_data
from worker.rules import parse_v2_rules, v2_rules
from worker.rules.tree import ActivityCondition, AllNode, AnyNode, NotNode
from worker.rules.tree import Node as TreeNode
from worker.store import SegmentNotFound, SegmentRules, load_registry


class ContactNotFound(LookupError):
    """The account has no contact of that id or email."""


@dataclass(frozen=True)
class ContactExplanation:
    segment_id: UUID
    segment_name: str
    contact_id: UUID
    email: str
    member: bool  # in the materialised membership now
    matches: bool  # the rules evaluated now, universe included
    in_universe: bool
    evaluated_at: datetime
    fresh_as_of: datetime | None
    tree: Json  # rules_json, each node with "result", each condition with "observed"


async def explain_contact(
    conn: Conn, account_id: UUID, segment_id: UUID, contact: str, now: datetime
) -> ContactExplanation:
    """`contact`: its id, or its email (any case). Raises SegmentNotFound, ContactNotFound
    (nothing of another account is found), and RulesInvalid when the rules no longer fit the
    account's custom fields (their builds fail the same way)."""
    row = await conn.fetchrow(
        """SELECT id, account_id, name, generation, dialect, rules, contact_list_ids, timezone
           FROM segments WHERE id = $1 AND account_id = $2""",
        segment_id,
        account_id,
    )
    if row is None:
        raise SegmentNotFound(f"account {account_id} has no segment {segment_id}")
    found = await find_contact(conn, account_id, contact)
    if found is None:
        raise ContactNotFound(f"account {account_id} has no contact {contact}")
    registry = await load_registry(conn, account_id)
    query = SegmentRules.from_row(row).query(registry, now)
    shown = v2_rules(row["dialect"], row["rules"])
    tree = parse_v2_rules(shown, registry)  # node for node as shown (the meaning is query's)
    nodes = list(_preorder(tree.root))
    counted = list(dict.fromkeys(c for c in tree.conditions() if isinstance(c, ActivityCondition)))
    compiled = compile_explain(query, nodes, counted, found["id"])
    answer = await conn.fetchrow(compiled.sql, *compiled.params)
    assert answer is not None, "the contact is the account's: the statement has its row"
    verdicts = list(answer.values())
    matches, in_universe = verdicts[0], verdicts[1]
    results, counts = verdicts[2 : 2 + len(nodes)], verdicts[2 + len(nodes) :]
    data = await load_contact_data(
        conn, account_id, found["id"], tree.conditions(), dict(zip(counted, counts, strict=True))
    )
    return ContactExplanation(
        segment_id=segment_id,
        segment_name=row["name"],
        contact_id=found["id"],
        email=found["email"],
        member=await _is_member(conn, account_id, segment_id, found["id"]),
        matches=matches,
        in_universe=in_universe,
        evaluated_at=now,
        fresh_as_of=await segment_fresh_as_of(conn, account_id, segment_id),
        tree=_explained(shown, tree.root, iter(results), _Observer(data, query)),
    )


def _preorder(node: TreeNode) -> Iterator[TreeNode]:
    yield node
    match node:
        case AnyNode() | AllNode():
            for child in node.nodes:
                yield from _preorder(child)
        case NotNode():
            yield from _preorder(node.node)


@dataclass(frozen=True)
class _Observer:
    data: ContactData
    query: SegmentQuery


def _explained(
    raw: Mapping[str, Any], node: TreeNode, results: Iterator[bool], observer: _Observer
) -> Json:
    """The node as shown, with its result (taken in pre-order) and its children's."""
    result = next(results)
    match node:
        case AnyNode() | AllNode():
            key = "any" if isinstance(node, AnyNode) else "all"
            pairs = zip(raw[key], node.nodes, strict=True)
            children = [_explained(r, n, results, observer) for r, n in pairs]
            return {key: children, "result": result}
        case NotNode():
            return {"not": _explained(raw["not"], node.node, results, observer), "result": result}
    observed = observer.data.observed(node, observer.query)
    return {**raw, "result": result, "observed": observed}


async def _is_member(conn: Conn, account_id: UUID, segment_id: UUID, contact_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM segment_members
                   WHERE segment_id = $1 AND contact_id = $2 AND account_id = $3)""",
            segment_id,
            contact_id,
            account_id,
        )
    )


async def segment_fresh_as_of(conn: Conn, account_id: UUID, segment_id: UUID) -> datetime | None:
    """The segment's `fresh_as_of` (docs/rules.md): its column of that name, read through
    to_jsonb so that this works before the column exists (then it is null)."""
    value = await conn.fetchval(
        "SELECT to_jsonb(s) ->> 'fresh_as_of' FROM segments s WHERE id = $1 AND account_id = $2",
        segment_id,
        account_id,
    )
    return None if value is None else datetime.fromisoformat(value)


def explanation_json(e: ContactExplanation) -> Json:
    """The explanation as the HTTP API answers it."""
    return {
        "segment_id": str(e.segment_id),
        "contact_id": str(e.contact_id),
        "member": e.member,
        "matches": e.matches,
        "in_universe": e.in_universe,
        "evaluated_at": jsonable(e.evaluated_at),
        "fresh_as_of": jsonable(e.fresh_as_of),
        "tree": e.tree,
    }
