"""The field registry: which fields a rule may name, their types and the operators allowed.

Three sources (docs/rules.md): contact columns, fields derived from events, and the account's
custom fields declared in `contact_fields` (values in `contacts.attributes`). A custom field
whose key equals a built-in name is shadowed by the built-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from worker.rules.choices import did_you_mean, show


class FieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    LIST = "list"


class FieldSource(StrEnum):
    COLUMN = "column"  # a column of contacts
    DERIVED = "derived"  # computed from the contact's events
    CUSTOM = "custom"  # a key of contacts.attributes


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    source: FieldSource


OPERATORS_BY_TYPE: Mapping[FieldType, frozenset[str]] = {
    FieldType.TEXT: frozenset(
        {
            "equals",
            "not_equals",
            "contains",
            "not_contains",
            "starts_with",
            "in",
            "not_in",
            "is_null",
            "is_not_null",
        }
    ),
    FieldType.NUMBER: frozenset(
        {"equals", "not_equals", "gt", "gte", "lt", "lte", "in", "not_in", "is_null", "is_not_null"}
    ),
    FieldType.DATETIME: frozenset(
        {
            "gt",
            "gte",
            "lt",
            "lte",
            "within_days",
            "in_calendar",
            "anniversary_within_days",
            "is_null",
            "is_not_null",
        }
    ),
    FieldType.BOOLEAN: frozenset({"equals", "not_equals", "is_null", "is_not_null"}),
    FieldType.LIST: frozenset({"has_any", "has_all", "has_none", "is_null", "is_not_null"}),
}
ALL_FIELD_OPERATORS = frozenset().union(*OPERATORS_BY_TYPE.values())

# The text columns of `contacts` besides `email`; the importer sets the same.
CONTACT_TEXT_COLUMNS = (
    "name",
    "first_name",
    "last_name",
    "company",
    "status",
    "country",
    "city",
    "language",
)

_COLUMNS = {
    **dict.fromkeys(("email", *CONTACT_TEXT_COLUMNS), FieldType.TEXT),
    "tags": FieldType.LIST,
    "created_at": FieldType.DATETIME,
    "updated_at": FieldType.DATETIME,
}
_DERIVED = {
    "opens_count": FieldType.NUMBER,
    "clicks_count": FieldType.NUMBER,
    "last_open_at": FieldType.DATETIME,
    "last_click_at": FieldType.DATETIME,
}
BUILTIN_FIELDS: Mapping[str, FieldSpec] = {
    **{n: FieldSpec(n, t, FieldSource.COLUMN) for n, t in _COLUMNS.items()},
    **{n: FieldSpec(n, t, FieldSource.DERIVED) for n, t in _DERIVED.items()},
}


@dataclass(frozen=True)
class FieldRegistry:
    """The fields of one account: built-ins plus its declared custom fields."""

    custom: Mapping[str, FieldType]

    @classmethod
    def builtin_only(cls) -> FieldRegistry:
        return cls({})

    @classmethod
    def from_declarations(cls, rows: Mapping[str, str]) -> FieldRegistry:
        """From contact_fields rows (key -> data_type)."""
        return cls({key: FieldType(data_type) for key, data_type in rows.items()})

    @cached_property
    def declared(self) -> tuple[tuple[str, str], ...]:
        """The custom fields as (key, type), sorted: equal for equal registries (a cache key)."""
        return tuple(sorted((key, kind.value) for key, kind in self.custom.items()))

    def names(self) -> list[str]:
        """Every field a rule may name: the built-ins, then the custom fields."""
        return [*BUILTIN_FIELDS, *(key for key in self.custom if key not in BUILTIN_FIELDS)]

    def unknown(self, name: str) -> str:
        """The message for a field name that is not here: the closest known names, or the
        built-in ones when nothing is close."""
        hint = did_you_mean(name, self.names()) or (
            f"the built-in fields are {', '.join(BUILTIN_FIELDS)}; "
            "a custom field must be declared before rules use it"
        )
        return (
            f"unknown field {show(name)}: not a contact field and not a custom field declared "
            f"for this account; {hint}"
        )

    def lookup(self, name: str) -> FieldSpec | None:
        if name in BUILTIN_FIELDS:
            return BUILTIN_FIELDS[name]
        if name in self.custom:
            return FieldSpec(name, self.custom[name], FieldSource.CUSTOM)
        return None
