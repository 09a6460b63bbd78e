"""Writing export rows as CSV or NDJSON, one batch of rows at a time.

CSV (RFC 4180: every cell that needs it quoted, quotes doubled, CRLF line ends, UTF-8):
lists (`tags`, list custom fields) are joined with `|`, as `segments import` reads them back;
other JSON values of custom fields are written as JSON; null is an empty cell. A text cell
that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage
return) is prefixed with `'` (OWASP's advice against CSV injection); numbers, dates and ids
are never changed. NDJSON: one JSON object per line, keyed by column name, values as stored
(custom fields keep their JSON types), nothing escaped beyond JSON.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from worker.exports.columns import Column, Kind

Format = Literal["csv", "ndjson"]
FORMATS: tuple[Format, ...] = ("csv", "ndjson")
MEDIA_TYPES: dict[Format, str] = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LIST_SEPARATOR = "|"


class Encoder(Protocol):
    def header(self) -> bytes: ...

    def rows(self, rows: Iterable[Iterable[Any]]) -> bytes: ...


def encoder(fmt: Format, columns: Sequence[Column]) -> Encoder:
    return CsvEncoder(columns) if fmt == "csv" else NdjsonEncoder(columns)


def guard_formula(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_json(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return guard_formula(value)
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return guard_formula(_LIST_SEPARATOR.join(str(v) for v in value))
    return guard_formula(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _csv_text(value: str | None) -> str:
    return "" if value is None else guard_formula(value)


def _csv_list(value: list[str] | None) -> str:
    return guard_formula(_LIST_SEPARATOR.join(value)) if value else ""


def _csv_plain(value: UUID | int | None) -> str:
    return "" if value is None else str(value)


def _csv_time(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


_CSV_CELL: dict[Kind, Callable[[Any], str]] = {
    Kind.TEXT: _csv_text,
    Kind.UUID: _csv_plain,
    Kind.INT: _csv_plain,
    Kind.TIMESTAMP: _csv_time,
    Kind.TEXT_LIST: _csv_list,
    Kind.JSON: _csv_json,
}


class CsvEncoder:
    def __init__(self, columns: Sequence[Column]) -> None:
        self._names = [c.name for c in columns]
        self._cells = [_CSV_CELL[c.kind] for c in columns]
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def header(self) -> bytes:
        self._writer.writerow(self._names)
        return self._take()

    def rows(self, rows: Iterable[Iterable[Any]]) -> bytes:
        cells = self._cells
        self._writer.writerows(
            [cell(value) for cell, value in zip(cells, row, strict=True)] for row in rows
        )
        return self._take()

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")


def _json_value(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class NdjsonEncoder:
    def __init__(self, columns: Sequence[Column]) -> None:
        self._names = [c.name for c in columns]

    def header(self) -> bytes:
        return b""

    def rows(self, rows: Iterable[Iterable[Any]]) -> bytes:
        names = self._names
        lines = (
            json.dumps(
                {name: _json_value(value) for name, value in zip(names, row, strict=True)},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for row in rows
        )
        return "".join(line + "\n" for line in lines).encode("utf-8")
