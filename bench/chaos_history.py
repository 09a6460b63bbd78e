"""What the chaos workload did, as the checker needs it (bench/chaos.py).

Every write is recorded before its answer is known and then marked: `acked` (the service
said yes: a 2xx, a publisher confirm, a committed transaction) or left uncertain (a timeout,
a reset connection, a 5xx: it may or may not have happened). Writes to one register (a
contact's field, a list membership, a segment's rules) come from one driver at a time, in
order, so the history of each register is a sequence.

The rule for a register, as in Jepsen's register checks but simpler because each register
has one writer: its final value is the value of the last acknowledged write, or of any
uncertain write (one whose request hung in a stopped process may land after later writes:
an uncertain write is concurrent with everything after it). With no acknowledged write, the
initial value is allowed too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_INITIAL = object()


@dataclass
class Write:
    value: Any
    acked: bool = False


@dataclass
class History:
    registers: dict[tuple[Any, ...], list[Write]] = field(default_factory=lambda: defaultdict(list))
    events: list[tuple[str, str, datetime, Write]] = field(default_factory=list)
    acked: int = 0
    uncertain: int = 0
    not_sent: int = 0  # writes that certainly never reached the service (no connection)
    rejected: list[str] = field(default_factory=list)  # valid writes answered with a 4xx

    def write(self, key: tuple[Any, ...], value: Any) -> Write:
        entry = Write(value)
        self.registers[key].append(entry)
        return entry

    def withdraw(self, key: tuple[Any, ...], entry: Write) -> None:
        """`entry` certainly never happened (its request never left): it is no write."""
        self.registers[key].remove(entry)
        self.not_sent += 1

    def event(self, email: str, kind: str, at: datetime) -> Write:
        entry = Write((email, kind, at))
        self.events.append((email, kind, at, entry))
        return entry

    def settle(self, writes: list[Write], acked: bool) -> None:
        for entry in writes:
            entry.acked = acked
        if acked:
            self.acked += len(writes)
        else:
            self.uncertain += len(writes)


def allowed_final_values(writes: list[Write], initial: Any = _INITIAL) -> list[Any]:
    """The values a register may hold after `writes` (see the module's rule)."""
    acked = [w.value for w in writes if w.acked]
    uncertain = [w.value for w in writes if not w.acked]
    if not acked:
        return uncertain if initial is _INITIAL else [initial, *uncertain]
    return [acked[-1], *uncertain]


def register_violations(
    history: History, final: dict[tuple[Any, ...], Any], initial: dict[tuple[Any, ...], Any]
) -> list[str]:
    """Registers whose final value no allowed history explains (a lost or phantom write)."""
    problems = []
    for key, writes in history.registers.items():
        allowed = allowed_final_values(writes, initial.get(key, _INITIAL))
        value = final.get(key)
        if value not in allowed:
            problems.append(
                f"lost write: {key} is {value!r}, expected one of {allowed!r}"
                f" (its writes, in order: {describe(writes)})"
            )
    return problems


def describe(writes: list[Write]) -> str:
    """A register's history for a violation's message: each value and its outcome."""
    return ", ".join(f"{w.value!r} {'acked' if w.acked else 'uncertain'}" for w in writes)
