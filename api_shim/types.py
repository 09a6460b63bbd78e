"""Input types shared by the API faces: text PostgreSQL can store, JSON documented by a model.

PostgreSQL text and jsonb cannot hold the NUL character, and UTF-8 cannot encode a lone
surrogate (which JSON's "\\ud800" escapes can produce): both are refused at the boundary, with
their location, instead of failing inside the database.
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import AfterValidator, Field, GetJsonSchemaHandler, StringConstraints, TypeAdapter
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from worker.rules.choices import did_you_mean

MAX_JSON_DEPTH = 32


def storable_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def utc(value: datetime) -> datetime:
    """Aware, in UTC (no offset means UTC), and within the years 1 to 9999 once in UTC."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def storable_json(value: Any, depth: int = 0) -> Any:
    """Raise ValueError unless `value` can be stored as jsonb; returns it unchanged."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        storable_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_text(str(key))
            storable_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            storable_json(item, depth + 1)
    return value


def json_size(value: Any) -> int:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))  # lone surrogates are reported later


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255),
    AfterValidator(storable_text),
    AfterValidator(not_blank),
]
ShortText = Annotated[str, StringConstraints(max_length=255), AfterValidator(storable_text)]
SearchText = Annotated[str, StringConstraints(max_length=255), AfterValidator(storable_text)]
Description = Annotated[str, StringConstraints(max_length=5000), AfterValidator(storable_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(storable_json)]


class DocumentedAs:
    """Annotation: validate as the annotated type, document (OpenAPI) as `documented`.

    The rule bodies are validated by the rule language (worker.rules) against the account's
    fields, with exact locations; the OpenAPI document still shows their full structure."""

    def __init__(self, documented: Any) -> None:
        self.core_schema = TypeAdapter(documented).core_schema

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(self.core_schema)


_EMAIL_SHAPE = re.compile(r"[^\s@]+@[^\s@]+")


def email_address(value: str) -> str:
    if not _EMAIL_SHAPE.fullmatch(value):
        raise PydanticCustomError(
            "invalid_email",
            "is not an email address: write it as name@domain, e.g. ada@example.com",
        )
    return value


# Trimmed and lower-cased, as `segments import` does: one contact per address however it is
# written, and the same contact whichever way the data arrives.
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=320),
    AfterValidator(email_address),
    AfterValidator(storable_text),
]


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def known_timezone(value: str) -> str:
    """An IANA timezone name the calendar rules can use (docs/rules.md, timezones)."""
    if value in _timezones():
        return value
    same = [name for name in _timezones() if name.lower() == value.lower()]
    hint = (
        f"did you mean {same[0]!r}?" if same else (did_you_mean(value, sorted(_timezones())) or "")
    )
    raise ValueError(
        f"unknown timezone {value[:60]!r}: use an IANA name such as 'Europe/Amsterdam', "
        f"'America/New_York' or 'UTC' (names are case-sensitive){'; ' + hint if hint else ''}"
    )


Timezone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(known_timezone),
    Field(description="IANA timezone of the segment's calendar periods and anniversaries."),
]
