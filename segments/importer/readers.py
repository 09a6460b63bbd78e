"""Streaming the rows of an import file, each with the line number it starts on.

CSV (a header row, then one record per row; quoted cells may span lines) or NDJSON (one JSON
object per line). `-` is stdin; a name ending in `.gz` is read through gzip. Nothing is held
beyond the current row. CSV has no null, so an empty cell comes out as None. A row that
cannot even be read as a row (bad JSON or CSV quoting, a cell count that differs from the
header, text PostgreSQL cannot store) comes out as a BadRow with the reason; a file that
cannot be read at all raises InputError.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

Format = Literal["csv", "ndjson"]
FORMATS: tuple[Format, ...] = ("csv", "ndjson")
_SUFFIXES: dict[str, Format] = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}

# Separators other tools write "CSV" with (a spreadsheet in a locale with decimal commas writes
# semicolons); read with commas, such a header is one column holding them all.
_OTHER_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}

# One CSV cell may hold a large JSON `attributes` object.
csv.field_size_limit(16 * 1024 * 1024)


class InputError(Exception):
    """The file cannot be imported at all (missing, unreadable, unknown format, bad header)."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


def detect_format(path: str, explicit: Format | None) -> Format:
    if explicit is not None:
        return explicit
    if path == "-":
        raise InputError("reading stdin: say which format it is with --format csv|ndjson")
    name = path.lower().removesuffix(".gz")
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise InputError(
        f"cannot tell the format of {path} from its name (.csv, .ndjson, .jsonl, optionally "
        ".gz): say which it is with --format csv|ndjson"
    )


@contextlib.contextmanager
def open_text(path: str, stdin: IO[bytes] | None = None) -> Iterator[IO[str]]:
    """The file as UTF-8 text (a leading BOM dropped). Bytes that are not UTF-8 come through
    as lone surrogates, so the row holding them is rejected rather than the whole file."""
    with contextlib.ExitStack() as stack:
        binary: IO[bytes] | gzip.GzipFile
        if path == "-":
            binary = stdin if stdin is not None else sys.stdin.buffer
        else:
            try:
                if path.lower().endswith(".gz"):
                    binary = stack.enter_context(gzip.open(path))
                else:
                    binary = stack.enter_context(open(path, "rb"))
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            yield text
        except (OSError, EOFError) as exc:  # e.g. a truncated or corrupt .gz
            raise InputError(f"cannot read {path}: {exc}") from None
        finally:
            text.detach()  # the stack closes the file; stdin stays open


def unstorable(text: str) -> str | None:
    """Why PostgreSQL cannot store `text` (NUL, or bytes that were not UTF-8), or None."""
    if "\x00" in text:
        return "contains the NUL character"
    if text.isascii():  # O(1): no lone surrogates in ASCII
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return None


def _unstorable_json(value: Any) -> str | None:
    if isinstance(value, str):
        return unstorable(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = unstorable(key) or _unstorable_json(item)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _unstorable_json(item)
            if problem:
                return problem
    return None


class CsvRows:
    """The rows of a CSV file: `header` is read on construction, iterate for the rows."""

    def __init__(self, stream: IO[str]) -> None:
        self._reader = csv.reader(stream, strict=True)
        self.header = self._read_header()
        self.header_line = self._reader.line_num

    def _read_header(self) -> list[str]:
        try:
            first = next((r for r in self._reader if r), None)
        except csv.Error as exc:
            raise InputError(f"line {self._reader.line_num}: not valid CSV: {exc}") from None
        if first is None:
            raise InputError("the file is empty: a CSV file starts with a header row")
        header = [name.strip() for name in first]
        problem = unstorable("".join(header))
        if problem:
            raise InputError(f"line {self._reader.line_num}: the header {problem}")
        if "" in header:
            raise InputError(f"line {self._reader.line_num}: a header cell is empty")
        separator = _other_separator(header)
        if separator is not None:
            raise InputError(
                f"line {self._reader.line_num}: the header {first[0]!r} is a single column "
                f"holding {separator} characters: this file is {separator}-separated, and "
                "`segments import` reads comma-separated CSV. Save it with commas as "
                "separators (in a spreadsheet: CSV, comma-delimited) and import it again"
            )
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise InputError(f"line {self._reader.line_num}: columns appear twice: {duplicates}")
        return header

    def __iter__(self) -> Iterator[Row | BadRow]:
        header = self.header
        width = len(header)
        reader = self._reader
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # the reader carries on with the next line
                yield BadRow(line, f"not valid CSV: {exc}")
                continue
            if not cells:
                continue  # a blank line
            if len(cells) != width:
                yield BadRow(line, f"has {len(cells)} cells, the header has {width}")
                continue
            problem = unstorable("".join(cells))
            if problem:
                yield BadRow(line, f"the row {problem}")
                continue
            # CSV has no null: an empty cell is one.
            yield Row(line, {name: cell or None for name, cell in zip(header, cells, strict=True)})


def _other_separator(header: list[str]) -> str | None:
    """The name of the separator a one-column header is split by, if it is one of the usual
    others (a real one-column file, `email`, has none of them)."""
    if len(header) != 1:
        return None
    return next((name for char, name in _OTHER_SEPARATORS.items() if char in header[0]), None)


def ndjson_rows(stream: IO[str]) -> Iterator[Row | BadRow]:
    """One JSON object per line; blank lines are skipped."""
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            reason = getattr(exc, "msg", str(exc))
            yield BadRow(line, f"not valid JSON: {reason}")
            continue
        if not isinstance(value, dict):
            yield BadRow(line, "must be a JSON object")
            continue
        # Only \u escapes can smuggle NUL or a lone surrogate past the raw-text check.
        problem = unstorable(text) or ("\\u" in text and _unstorable_json(value)) or None
        if problem:
            yield BadRow(line, f"the row {problem}")
            continue
        yield Row(line, value)
