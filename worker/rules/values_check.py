"""Readers for field condition values: each checks one JSON value and returns it typed.

A reader raises ValueProblem with a message and, for arrays, the index of the bad element.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.rules.fields import FieldType
from worker.rules.limits import (
    MAX_ANNIVERSARY_DAYS,
    MAX_ARRAY_ITEMS,
    MAX_DAYS,
    MAX_PERIODS_BACK,
    MAX_STRING_LENGTH,
)
from worker.rules.tree import CalendarPeriod, FieldValue
from worker.rules.values import ISO_DATETIME_HELP, parse_iso_datetime


class ValueProblem(ValueError):
    def __init__(self, msg: str, type_: str, index: int | str | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.type = type_
        # Where in the value: an array's index, or an object's key.
        self.index = index


Reader = Callable[[Any], FieldValue]


def check_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueProblem("must be a string", "string_type")
    if value == "":
        raise ValueProblem("must be a non-empty string ('' means 'not set')", "string_empty")
    if len(value) > MAX_STRING_LENGTH:
        raise ValueProblem(f"must be at most {MAX_STRING_LENGTH} characters", "string_too_long")
    if "\x00" in value:
        raise ValueProblem("must not contain the NUL character (\\u0000)", "string_nul")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueProblem("must be valid Unicode (no lone surrogates)", "string_unicode") from None
    return value


def read_number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueProblem("must be a number", "number_type")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueProblem("must be a finite number", "number_type")
    # str() keeps the JSON literal's digits: 0.1 stays 0.1, not its binary expansion.
    return Decimal(str(value))


def read_datetime(value: Any) -> datetime:
    parsed = parse_iso_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValueProblem(f"must be {ISO_DATETIME_HELP}", "datetime_format")
    return parsed


def read_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueProblem("must be true or false", "bool_type")
    return value


def read_days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueProblem("must be a whole number of days", "int_type")
    if not 1 <= value <= MAX_DAYS:
        raise ValueProblem(f"must be between 1 and {MAX_DAYS} days", "days_range")
    return value


def read_anniversary_days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueProblem("must be a whole number of days", "int_type")
    if not 0 <= value <= MAX_ANNIVERSARY_DAYS:
        raise ValueProblem(
            f"must be between 0 (today only) and {MAX_ANNIVERSARY_DAYS} days", "days_range"
        )
    return value


UNITS = ("day", "week", "month", "year")
CALENDAR_HELP = (
    'an object such as {"unit": "week", "offset": 0} (this week) or '
    '{"unit": "month", "offset": -1} (last month)'
)


def read_calendar_period(value: Any) -> CalendarPeriod:
    """{"unit": day|week|month|year, "offset": -3650..0}; problems name the key."""
    if not isinstance(value, dict):
        raise ValueProblem(f"must be {CALENDAR_HELP}", "calendar_type")
    for key in value:
        if key not in ("unit", "offset"):
            raise ValueProblem("unknown key; expected unit and offset", "extra_forbidden", key)
    unit, offset = value.get("unit"), value.get("offset")
    if unit not in UNITS:
        msg = "is required" if unit is None else "unknown unit"
        raise ValueProblem(f"{msg}; expected one of {', '.join(UNITS)}", "calendar_unit", "unit")
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise ValueProblem(
            "must be a whole number of periods from the current one: 0 is this "
            f"{unit}, -1 the previous one",
            "int_type",
            "offset",
        )
    if not -MAX_PERIODS_BACK <= offset <= 0:
        raise ValueProblem(
            f"must be between -{MAX_PERIODS_BACK} and 0: 0 is this {unit}, -1 the previous "
            "one (periods ahead are not supported)",
            "offset_range",
            "offset",
        )
    return CalendarPeriod(unit, offset)


def read_nothing(value: Any) -> None:
    if value is not None:
        raise ValueProblem("must be omitted (or null) for this operator", "value_forbidden")


def array_of(read: Callable[[Any], Any]) -> Reader:
    def read_array(value: Any) -> FieldValue:
        if not isinstance(value, list) or not value:
            raise ValueProblem("must be a non-empty array", "array_type")
        if len(value) > MAX_ARRAY_ITEMS:
            raise ValueProblem(f"must have at most {MAX_ARRAY_ITEMS} items", "array_too_long")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(read(item))
            except ValueProblem as problem:
                problem.index = index
                raise
        return tuple(items)

    return read_array


_SCALAR_READERS: dict[FieldType, Reader] = {
    FieldType.TEXT: check_text,
    FieldType.NUMBER: read_number,
    FieldType.DATETIME: read_datetime,
    FieldType.BOOLEAN: read_boolean,
}


def value_reader(field_type: FieldType, operator: str) -> Reader:
    """The reader for the value of `operator` on a field of `field_type` (already allowed)."""
    if operator in ("is_null", "is_not_null"):
        return read_nothing
    if operator == "within_days":
        return read_days
    if operator == "anniversary_within_days":
        return read_anniversary_days
    if operator == "in_calendar":
        return read_calendar_period
    if operator in ("has_any", "has_all", "has_none"):
        return array_of(check_text)
    if operator in ("in", "not_in"):
        return array_of(_SCALAR_READERS[field_type])
    return _SCALAR_READERS[field_type]
