"""Rule errors carry the exact location of the problem in the input, as a dotted path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RuleError:
    loc: str  # e.g. "rules_json.any[0].all[2].value"
    msg: str
    type: str  # a stable machine-readable code, e.g. "operator_not_allowed"


class RulesInvalid(ValueError):
    """The rules cannot be used. Never retried: the input has to change."""

    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(f"{e.loc}: {e.msg}" for e in self.errors))


def join_loc(base: str, *parts: str | int) -> str:
    """join_loc("rules_json", "any", 0, "all", 2) -> "rules_json.any[0].all[2]"."""
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else part
    return out
