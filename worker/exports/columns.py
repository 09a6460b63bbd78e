"""The columns an export may hold: a whitelist of contact columns, the membership's `added_at`,
and `attr.KEY` for each custom field the account declared (contact_fields).

Column names reach SQL only through this whitelist; a custom field's key is a query parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from worker.rules.fields import CONTACT_TEXT_COLUMNS


class Kind(Enum):
    """How a column's values are written (worker/exports/formats.py)."""

    TEXT = "text"
    UUID = "uuid"
    INT = "int"
    TIMESTAMP = "timestamp"
    TEXT_LIST = "text_list"
    JSON = "json"  # a custom field: any JSON value


ATTR_PREFIX = "attr."

# name -> (SQL expression over contacts c and segment_members m, kind)
CONTACT_COLUMNS: dict[str, tuple[str, Kind]] = {
    "id": ("c.id", Kind.UUID),
    **{name: (f"c.{name}", Kind.TEXT) for name in ("email", *CONTACT_TEXT_COLUMNS)},
    "tags": ("c.tags", Kind.TEXT_LIST),
    "isp_id": ("c.isp_id", Kind.INT),
    "created_at": ("c.created_at", Kind.TIMESTAMP),
    "updated_at": ("c.updated_at", Kind.TIMESTAMP),
    "added_at": ("m.added_at", Kind.TIMESTAMP),
}
# Without `columns`: the contact's own data and when it joined the segment, then every
# declared custom field (in key order).
DEFAULT_COLUMNS = tuple(name for name in CONTACT_COLUMNS if name != "isp_id")
MAX_COLUMNS = 200


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    attr_key: str | None = None  # set for `attr.KEY` columns


class UnknownColumn(ValueError):
    """A requested column is not exportable; `index` is its position in the request."""

    def __init__(self, index: int | None, msg: str) -> None:
        super().__init__(msg)
        self.index = index
        self.msg = msg


def parse_column_list(text: str | None) -> list[str] | None:
    """`id,email, attr.plan` -> names; None or blank -> None (the default set)."""
    if text is None or not text.strip():
        return None
    return [part.strip() for part in text.split(",")]


def resolve_columns(requested: Sequence[str] | None, declared: Sequence[str]) -> list[Column]:
    """The columns to write, in the order asked; raises UnknownColumn naming the choices."""
    if requested is None:
        names = [*DEFAULT_COLUMNS, *(ATTR_PREFIX + key for key in sorted(declared))]
    else:
        names = list(requested)
    if len(names) > MAX_COLUMNS:
        raise UnknownColumn(None, f"at most {MAX_COLUMNS} columns")
    seen: set[str] = set()
    columns = []
    for index, name in enumerate(names):
        if name in seen:
            raise UnknownColumn(index, f"column {name!r} is asked for twice")
        seen.add(name)
        columns.append(_column(index, name, declared))
    if not columns:
        raise UnknownColumn(None, "name at least one column")
    return columns


def _column(index: int, name: str, declared: Sequence[str]) -> Column:
    if name in CONTACT_COLUMNS:
        return Column(name, CONTACT_COLUMNS[name][1])
    if name.startswith(ATTR_PREFIX):
        key = name.removeprefix(ATTR_PREFIX)
        if key in declared:
            return Column(name, Kind.JSON, attr_key=key)
        known = ", ".join(sorted(declared)) or "none"
        raise UnknownColumn(
            index,
            f"{key!r} is not a declared custom field of this account (declared: {known}); "
            "declare it first",
        )
    custom = ", ".join(ATTR_PREFIX + key for key in sorted(declared))
    choices = ", ".join(CONTACT_COLUMNS) + (f", {custom}" if custom else "")
    raise UnknownColumn(index, f"unknown column {name!r}; choose from: {choices}")


def select_list(columns: Sequence[Column], first_param: int) -> tuple[str, list[str]]:
    """The SELECT list for `columns` and the custom field keys it binds, as parameters
    numbered from `first_param`."""
    expressions = []
    keys: list[str] = []
    for column in columns:
        if column.attr_key is None:
            expressions.append(CONTACT_COLUMNS[column.name][0])
        else:
            keys.append(column.attr_key)
            expressions.append(f"c.attributes -> ${first_param + len(keys) - 1}::text")
    return ", ".join(expressions), keys
