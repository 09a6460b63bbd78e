"""Progress of an import on stderr: a live line on a terminal, log events otherwise."""

from __future__ import annotations

import sys
import time
from typing import IO

import structlog

log = structlog.get_logger(__name__)


class Progress:
    """Rows read and the rate. On a terminal one line redrawn at most every `redraw_s`;
    elsewhere (a log collector, a file) an `import.progress` event every `every_rows`."""

    def __init__(
        self,
        kind: str,
        stream: IO[str] | None = None,
        *,
        every_rows: int = 100_000,
        redraw_s: float = 0.2,
    ) -> None:
        self._kind = kind
        self._stream = stream if stream is not None else sys.stderr
        self._live = self._stream.isatty()
        self._every_rows = every_rows
        self._redraw_s = redraw_s
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._next_log = every_rows
        self._line_open = False

    def _rate(self, read: int) -> int:
        return round(read / max(time.monotonic() - self._started, 1e-6))

    def rows(self, read: int, rejected: int) -> None:
        if self._live:
            now = time.monotonic()
            if now - self._drawn_at >= self._redraw_s:
                self._drawn_at = now
                self._stream.write(
                    f"\r{self._kind}: {read:,} rows read ({self._rate(read):,}/s), "
                    f"{rejected:,} rejected\x1b[K"
                )
                self._stream.flush()
                self._line_open = True
        elif read >= self._next_log:
            self._next_log = read + self._every_rows
            log.info(
                "import.progress",
                kind=self._kind,
                read=read,
                rejected=rejected,
                rows_per_s=self._rate(read),
            )

    def phase(self, name: str, **details: object) -> None:
        """A step after reading (checking, merging, publishing): ends the live line."""
        self._end_line()
        log.info(f"import.{name}", kind=self._kind, **details)

    def _end_line(self) -> None:
        if self._line_open:
            self._stream.write("\n")
            self._stream.flush()
            self._line_open = False
