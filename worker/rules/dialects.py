"""The three dialects side by side: parse rules as stored with a segment (`segments.dialect`,
`segments.rules`), and show them in any API's dialect, whatever dialect they were written in.

Rules shown in their own dialect are returned exactly as written. Otherwise they go through
the canonical form (OR of AND-groups of condition objects) into the target dialect, which
uses the closest faithful form for what it cannot say, never a different meaning (each
dialect module says how; README: HTTP API, Rules across the three APIs). Stored rules were
validated when written; anything malformed (written directly by another system) shows as no
groups. A dialect name that is none of the three is an error, never read as another one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from worker.rules import simple, v1, v2
from worker.rules.choices import one_of, show
from worker.rules.fields import FieldRegistry
from worker.rules.shapes import Groups
from worker.rules.tree import RuleTree

Dialect = Literal["v2", "v1", "simple"]
Shown = TypeVar("Shown")


@dataclass(frozen=True)
class DialectRules(Generic[Shown]):
    """What a dialect module provides: parse (validating) and show (lenient)."""

    parse: Callable[[Any, FieldRegistry], RuleTree]
    read_groups: Callable[[Any], Groups]  # stored rules -> canonical groups
    as_written: Callable[[Any], Shown | None]  # stored rules, if of this dialect's shape
    render: Callable[[Groups], Shown]  # canonical groups -> this dialect
    render_nested: Callable[[Mapping[str, Any]], Shown]  # a nested v2 tree -> this dialect


V2 = DialectRules(v2.parse, v2.read_groups, v2.as_written, v2.render, v2.render_nested)
V1 = DialectRules(v1.parse, v1.read_groups, v1.as_written, v1.render, v1.render_nested)
SIMPLE = DialectRules(
    simple.parse, simple.read_groups, simple.as_written, simple.render, simple.render_nested
)
DIALECTS: Mapping[str, DialectRules[Any]] = {"v2": V2, "v1": V1, "simple": SIMPLE}


class UnknownDialect(ValueError):
    """A dialect name none of the modules reads. The database allows only the three (a CHECK
    constraint), so this is a bug in the caller, not a user's mistake."""

    def __init__(self, name: object) -> None:
        super().__init__(f"unknown rules dialect {show(name)}; {one_of(DIALECTS)}")
        self.name = name


def dialect(name: str) -> DialectRules[Any]:
    try:
        return DIALECTS[name]
    except KeyError:
        raise UnknownDialect(name) from None


def parse_rules(written_in: str, raw: Any, registry: FieldRegistry) -> RuleTree:
    """Rules as stored with a segment, in the dialect they were written in."""
    return dialect(written_in).parse(raw, registry)


def canonical_groups(written_in: str, rules: Any) -> Groups:
    """Stored rules as canonical groups of condition objects, empty groups left out."""
    return [group for group in dialect(written_in).read_groups(rules) if group]


def shown_in(target: DialectRules[Shown], written_in: str, rules: Any) -> Shown:
    """Stored rules in the target dialect."""
    if dialect(written_in) is target:
        kept = target.as_written(rules)
        if kept is not None:
            return kept
    if dialect(written_in) is V2 and v2.is_nested(rules):
        return target.render_nested(rules)
    return target.render(canonical_groups(written_in, rules))


def v2_rules(written_in: str, rules: Any) -> dict[str, Any]:
    return shown_in(V2, written_in, rules)


def v1_rules(written_in: str, rules: Any) -> v1.V1Rules:
    """(matchType, filters)."""
    return shown_in(V1, written_in, rules)


def simple_rules(written_in: str, rules: Any) -> list[Any]:
    return shown_in(SIMPLE, written_in, rules)
