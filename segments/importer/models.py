"""Row validation for `segments import`: one pydantic model per kind, the step that turns a
CSV row's cells into the model's input, and the staging record each valid row becomes.
Pure: no IO.

Conventions (README, "Importing data"):
- an empty cell (CSV) or an empty string (NDJSON) is null; text is stored as NULL, never '';
- emails are trimmed and lower-cased: contacts are upserted, and looked up, by that form;
- datetimes are ISO 8601 (worker.rules.values); no offset means UTC;
- CSV lists (`tags`, custom fields declared `list`) separate items with `|` or `;`;
- CSV custom fields are `attr.<key>` columns (typed by the account's `contact_fields`) and/or
  an `attributes` column holding a JSON object.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import to_json

from worker.rules.fields import CONTACT_TEXT_COLUMNS
from worker.rules.values import _ISO_DATETIME, ISO_DATETIME_HELP, parse_iso_datetime

Kind = Literal["contacts", "events", "members"]
KINDS: tuple[Kind, ...] = ("contacts", "events", "members")

Status = Literal["subscribed", "unsubscribed", "bounced", "complained", "pending"]
EventType = Literal["open", "click", "bounce", "complaint", "delivered", "unsubscribe"]
TEXT_MAX = 255
MAX_TAGS = 100
MAX_ATTRIBUTES = 200
ATTR_PREFIX = "attr."
_LIST_SEPARATORS = re.compile(r"[|;]")

# Contacts: the columns a row may set besides `email`, one presence bit each. A row sets the
# columns it has (a null clears them) and leaves the others as they are, like the HTTP API.
CONTACT_COLUMNS = (
    *CONTACT_TEXT_COLUMNS,
    "tags",
    "isp_id",
    "attributes",
    "created_at",
    "updated_at",
)
MASK_BITS = {name: 1 << i for i, name in enumerate(CONTACT_COLUMNS)}
# A null here means "leave it as it is" (or the default for a new contact), not "clear it".
_NULL_KEEPS = ("status", "attributes", "created_at", "updated_at")
_MASKS: dict[frozenset[str], int] = {}  # fields given -> mask; at most 2**len(CONTACT_COLUMNS)


class RowError(ValueError):
    """A row that cannot be loaded; the message says why, naming the column."""


@dataclass(frozen=True)
class RowContext:
    """What validating a row needs to know about the account and the command line."""

    field_types: Mapping[str, str] = field(default_factory=dict)  # contact_fields key -> type
    default_list: UUID | None = None  # --list
    account_id: UUID | None = None  # for messages that show the command to run


def read_datetime(text: str) -> datetime | None:
    """parse_iso_datetime's answer (the one dialect rules and stored fields use), faster:
    once `text` has the dialect's shape, the standard library builds the value."""
    if _ISO_DATETIME.fullmatch(text) and not text.startswith("0000"):
        try:
            value = datetime.fromisoformat(text)
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except (ValueError, OverflowError):
            pass  # the exact reader decides: a date that does not exist, years out of range
    return parse_iso_datetime(text)


def _iso_datetime(value: object) -> object:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        parsed = read_datetime(value.strip())
        if parsed is not None:
            return parsed
    raise ValueError(f"must be {ISO_DATETIME_HELP}")


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_datetime)]
Text = Annotated[str, StringConstraints(max_length=TEXT_MAX)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=TEXT_MAX)]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=320, pattern=r"^[^\s@]+@[^\s@]+$"
    ),
]
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def record(self, line: int) -> tuple[Any, ...]:
        """The row of the staging table this row becomes (load.STAGING_COLUMNS)."""
        raise NotImplementedError


class ContactRow(_Row):
    email: Email
    name: Text | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    company: Text | None = None
    status: Status | None = None
    country: Text | None = None
    city: Text | None = None
    language: Text | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    isp_id: Int32 | None = None
    attributes: Annotated[dict[str, Any], Field(max_length=MAX_ATTRIBUTES)] | None = None
    created_at: IsoDatetime | None = None
    updated_at: IsoDatetime | None = None

    def mask(self) -> int:
        """Which columns this row sets (MASK_BITS)."""
        fields = frozenset(self.model_fields_set)
        mask = _MASKS.get(fields)
        if mask is None:
            mask = _MASKS[fields] = sum(MASK_BITS.get(name, 0) for name in fields)
        for name in _NULL_KEEPS:
            if getattr(self, name) is None:
                mask &= ~MASK_BITS[name]
        return mask

    def record(self, line: int) -> tuple[Any, ...]:
        mask = self.mask()
        tags = self.tags
        if tags is None and mask & MASK_BITS["tags"]:
            tags = []  # an empty list is the null of a list column
        return (
            line,
            mask,
            self.email,
            self.name,
            self.first_name,
            self.last_name,
            self.company,
            self.status,
            self.country,
            self.city,
            self.language,
            list(dict.fromkeys(tags)) if tags else tags,
            self.isp_id,
            None if self.attributes is None else to_json(self.attributes).decode(),
            self.created_at,
            self.updated_at,
        )


class _ContactRef(_Row):
    """A contact named by id, by email, or by both (then they must agree)."""

    contact_id: UUID | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _names_a_contact(self) -> Self:
        if self.contact_id is None and self.email is None:
            raise ValueError("give contact_id or email")
        return self


class EventRow(_ContactRef):
    type: EventType
    campaign_id: UUID | None = None
    occurred_at: IsoDatetime

    def record(self, line: int) -> tuple[Any, ...]:
        return (line, self.contact_id, self.email, self.type, self.campaign_id, self.occurred_at)


class MemberRow(_ContactRef):
    list_id: UUID
    action: Literal["add", "remove"] | None = None

    def record(self, line: int) -> tuple[Any, ...]:
        return (line, self.list_id, self.contact_id, self.email, self.action != "remove")


MODELS: Mapping[Kind, type[_Row]] = {
    "contacts": ContactRow,
    "events": EventRow,
    "members": MemberRow,
}

# CSV header names each kind accepts (contacts also take `attr.<key>` columns).
CSV_COLUMNS: Mapping[Kind, frozenset[str]] = {
    kind: frozenset(model.model_fields) for kind, model in MODELS.items()
}


def csv_header_problem(kind: Kind, header: list[str], context: RowContext) -> str | None:
    """Why a CSV header cannot be imported as `kind`, or None if it can."""
    known = CSV_COLUMNS[kind]
    unknown = [c for c in header if c not in known and not _is_attr_column(kind, c)]
    if unknown:
        hint = " (custom fields: attr.<key> columns)" if kind == "contacts" else ""
        return f"unknown columns {unknown}; {kind} files have {sorted(known)}{hint}"
    undeclared = [
        c[len(ATTR_PREFIX) :]
        for c in header
        if _is_attr_column(kind, c) and c[len(ATTR_PREFIX) :] not in context.field_types
    ]
    if undeclared:
        return _undeclared_fields_problem(undeclared, context)
    columns = set(header)
    if kind == "contacts" and "email" not in columns:
        return "contacts files need an email column"
    if kind != "contacts" and not columns & {"contact_id", "email"}:
        return f"{kind} files need a contact_id or an email column"
    if kind == "events" and not {"type", "occurred_at"} <= columns:
        return "events files need type and occurred_at columns"
    if kind == "members" and "list_id" not in columns and context.default_list is None:
        return "members files need a list_id column, or pass --list LIST_ID"
    return None


def _undeclared_fields_problem(keys: list[str], context: RowContext) -> str:
    """Segments can only use declared fields, and a declaration says how to read a cell
    (42 the number or "42" the text), so an attr.<key> column needs one first."""
    account = context.account_id or "ACCOUNT_ID"
    key = keys[0]
    return (
        f"custom fields {keys} are not declared (attr.<key> columns are read as their "
        f"declared type); declare each first, with its type (text, number, datetime, boolean "
        f"or list): `segments field declare {account} {key} text`, or over HTTP "
        f'`PUT /api/v2/fields/{key}` with {{"data_type": "text"}}; '
        "or put undeclared values in an `attributes` JSON column"
    )


def _is_attr_column(kind: Kind, column: str) -> bool:
    return kind == "contacts" and column.startswith(ATTR_PREFIX) and len(column) > len(ATTR_PREFIX)


def split_list(cell: str) -> list[str]:
    """A CSV list cell: items separated by `|` or `;`, trimmed, empty items dropped."""
    return [item for item in (part.strip() for part in _LIST_SEPARATORS.split(cell)) if item]


def _number(cell: str) -> int | float:
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        value = float(cell)
    except ValueError:
        raise RowError("is not a number") from None
    if not math.isfinite(value):
        raise RowError("is not a finite number")
    return value


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _boolean(cell: str) -> bool:
    lowered = cell.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise RowError("is not a boolean (true/false, yes/no, 1/0)")


def _datetime_text(cell: str) -> str:
    if read_datetime(cell) is None:
        raise RowError(f"is not {ISO_DATETIME_HELP}")
    return cell


_CONVERTERS: Mapping[str, Callable[[str], Any]] = {
    "number": _number,
    "boolean": _boolean,
    "datetime": _datetime_text,
    "list": split_list,
}


def _attributes_json(cell: str) -> dict[str, Any]:
    try:
        value = json.loads(cell)
    except ValueError:
        raise RowError("attributes: is not valid JSON") from None
    if not isinstance(value, dict):
        raise RowError("attributes: must be a JSON object")
    return value


def _attribute_reader(key: str, context: RowContext) -> Callable[[str], Any]:
    """How a custom field's CSV cell becomes the JSON value its declared type reads (the
    header check has refused undeclared ones): a number field must store 42, not "42",
    which would read as null."""
    declared = context.field_types.get(key, "text")
    convert = _CONVERTERS.get(declared)

    def read(cell: str) -> Any:
        if convert is None:
            return cell
        try:
            return convert(cell.strip())
        except RowError as exc:
            raise RowError(f"{ATTR_PREFIX}{key}: {cell!r} {exc} (declared {declared})") from None

    return read


class ContactCells:
    """Contacts CSV rows as ContactRow input, planned once from the header: `tags` split,
    `attr.<key>` cells (empty ones left out) and an `attributes` JSON column merged into
    `attributes`, attr.* winning."""

    def __init__(self, header: Sequence[str], context: RowContext) -> None:
        self._tags = "tags" in header
        self._json = "attributes" in header
        self._attrs = [
            (c, c[len(ATTR_PREFIX) :], _attribute_reader(c[len(ATTR_PREFIX) :], context))
            for c in header
            if c.startswith(ATTR_PREFIX)
        ]

    def __call__(self, cells: dict[str, Any]) -> dict[str, Any]:
        """Rewrites the row's own dict in place."""
        if self._tags:
            tags = cells["tags"]
            cells["tags"] = split_list(tags) if tags else []
        if self._attrs or self._json:
            attributes = {}
            if self._json:
                text = cells.pop("attributes")
                if text:
                    attributes = _attributes_json(text)
            for column, key, read in self._attrs:
                cell = cells.pop(column)
                if cell:
                    attributes[key] = read(cell)
            cells["attributes"] = attributes or None
        return cells


def plain_cells(cells: dict[str, Any]) -> dict[str, Any]:
    """An NDJSON object whose empty strings are null, as empty CSV cells are."""
    return {column: None if cell == "" else cell for column, cell in cells.items()}


def _as_read(cells: dict[str, Any]) -> dict[str, Any]:
    return cells


Prepare = Callable[[dict[str, Any]], dict[str, Any]]
Validate = Callable[[dict[str, Any], int], tuple[Any, ...]]


def validator(kind: Kind, context: RowContext, csv_header: Sequence[str] | None = None) -> Validate:
    """The function that turns one input row (CSV: given its header; empty cells already
    None, see readers) into its staging record, or raises RowError. It may rewrite the row's
    dict."""
    model = MODELS[kind]
    prepare: Prepare = plain_cells
    if csv_header is not None:
        prepare = ContactCells(csv_header, context) if kind == "contacts" else _as_read
    default_list = context.default_list

    def validate(values: dict[str, Any], line: int) -> tuple[Any, ...]:
        data = prepare(values)
        if default_list is not None and data.get("list_id") is None:
            data["list_id"] = default_list
        try:
            return model.model_validate(data).record(line)
        except ValidationError as exc:
            raise RowError(describe(exc)) from None

    return validate


def describe(exc: ValidationError) -> str:
    """pydantic's errors as one line: `column: problem; column: problem`."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing" or error.get("input", "") is None:
            message = "is required"
            if where == "list_id":
                message += ": add a list_id column or pass --list"
        elif error["type"] == "string_pattern_mismatch" and where == "email":
            message = "is not an email address"
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
