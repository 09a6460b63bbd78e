"""What the demo shows. On a terminal: a progress bar and tables redrawn in place (plain ANSI
escapes, no dependency). Elsewhere (a pipe, a log collector, a test): structlog events for
the progress and every status change, and each table printed once, finished."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import structlog

from segments.demo.data import LoadProgress

log = structlog.get_logger(__name__)

_COLOURS = {"PENDING": "33", "RUNNING": "36", "DONE": "32", "FAILED": "31"}
_BAR = 20


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    right: frozenset[int] = frozenset()  # columns aligned right (numbers)
    status_column: int | None = None  # coloured on a terminal, as wide as the widest status

    def lines(self, colour: bool, width: int | None = None) -> list[str]:
        """The table's lines; with `width`, none longer (a wrapped line would break the
        redraw in place), and then without colour."""
        cells = [self.headers, *self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.headers))]
        if self.status_column is not None:  # no jitter when the last RUNNING ends
            widths[self.status_column] = max(widths[self.status_column], *map(len, _COLOURS))
        out = []
        for n, row in enumerate(cells):
            plain, coloured = [], []
            for i, cell in enumerate(row):
                text = cell.rjust(widths[i]) if i in self.right else cell.ljust(widths[i])
                plain.append(text)
                if colour and n > 0 and i == self.status_column and cell in _COLOURS:
                    text = f"\x1b[{_COLOURS[cell]}m{text}\x1b[0m"
                coloured.append(text)
            line = "  " + "  ".join(plain).rstrip()
            if width is not None and len(line) > width:
                out.append(line[:width])
            else:
                out.append("  " + "  ".join(coloured).rstrip())
            if n == 0:
                out.append(("  " + "  ".join("-" * w for w in widths))[: width or None])
        return out


class Display:
    def __init__(self, stream: IO[str] | None = None, *, live: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self.live = self._stream.isatty() if live is None else live
        self._line_open = False  # a progress line waiting for its newline
        self._table_lines = 0  # lines of the table drawn last, to redraw it in place
        self._next_progress_log = 0.0
        self._statuses: dict[str, str] = {}

    def write(self, text: str = "") -> None:
        """Lines of text (ends a progress line or a live table first)."""
        self._end_progress()
        self._table_lines = 0
        self._stream.write(text + "\n")
        self._stream.flush()

    def heading(self, text: str) -> None:
        self.write()
        self.write(f"\x1b[1m{text}\x1b[0m" if self.live else f"== {text}")

    def progress(self, p: LoadProgress) -> None:
        if not self.live:
            if p.fraction >= self._next_progress_log or p.fraction >= 1.0:
                self._next_progress_log = p.fraction + 0.1
                log.info(
                    "demo.load.progress",
                    contacts=p.contacts_done,
                    events=p.events_done,
                    percent=round(100 * p.fraction),
                    seconds=round(p.elapsed_s, 1),
                )
            return
        filled = round(_BAR * p.fraction)
        bar = "#" * filled + "." * (_BAR - filled)
        line = (
            f"  [{bar}] {100 * p.fraction:3.0f}%  {p.contacts_done:,}/{p.contacts:,} contacts"
            f"  {p.events_done:,}/{p.events:,} events  {p.elapsed_s:.0f}s"
        )
        self._stream.write(f"\r{line[: _width()]}\x1b[K")
        self._stream.flush()
        self._line_open = True

    def table(self, table: Table, *, final: bool = False) -> None:
        """On a terminal, draw `table` over the previous one; elsewhere print it when final."""
        if not self.live:
            if final:
                self.write("\n".join(table.lines(colour=False)))
            return
        self._end_progress()
        lines = table.lines(colour=True, width=_width())
        if self._table_lines:
            self._stream.write(f"\x1b[{self._table_lines}F")  # back to the table's first line
        self._stream.write("".join(line + "\x1b[K\n" for line in lines))
        self._stream.flush()
        self._table_lines = len(lines)

    def status(self, name: str, status: str, **details: object) -> None:
        """A segment's status as last seen: logged when it changes (off a terminal)."""
        if self._statuses.get(name) != status:
            self._statuses[name] = status
            if not self.live:
                log.info("demo.segment", segment=name, status=status, **details)

    def _end_progress(self) -> None:
        if self._line_open:
            self._stream.write("\n")
            self._line_open = False


def _width() -> int:
    """Usable terminal width: one less than the columns, so no line ever wraps."""
    return shutil.get_terminal_size().columns - 1


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def number(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def delta(before: int | None, after: int | None) -> str:
    if before is None or after is None:
        return ""
    return "0" if after == before else f"{after - before:+,}"


def joined(items: Sequence[str]) -> str:
    return ", ".join(items)
