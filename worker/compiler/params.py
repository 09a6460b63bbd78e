"""The statement's bound values: the only maker of placeholders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Params:
    """Every value a statement needs goes through add(), which returns its typed placeholder;
    a value never reaches the SQL text. Placeholders are numbered in the order values are
    added, so the order of add() calls is the numbering the golden SQL pins."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any, pg_type: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{pg_type}"
