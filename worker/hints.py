"""Change hints: what changed about a message's contacts (`contact.changed`'s `changed`).
Pure; worker.dependencies says which segments they concern."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from worker.messages import MAX_HINT_FIELDS, ChangeHints


@dataclass(frozen=True)
class Hints:
    """What changed about a message's contacts (`|`: about the contacts of both)."""

    fields: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    lists: bool = False

    @classmethod
    def of(cls, hints: ChangeHints) -> Hints:
        return cls(frozenset(hints.fields), frozenset(hints.events), hints.lists)

    def __or__(self, other: Hints) -> Hints:
        return Hints(
            self.fields | other.fields, self.events | other.events, self.lists or other.lists
        )


# Hint field names that are not rule fields: the ISP alias column, and every custom field at
# once (for a producer that rewrote `attributes` without knowing which keys moved).
ISP_FIELD = "isp_id"
ALL_CUSTOM_FIELDS = "attributes"


def fields_changed(columns: Iterable[str], attribute_keys: Iterable[str]) -> ChangeHints:
    """The hints of an update of existing contacts that set these columns and these custom
    fields (and, as every update does, `updated_at`). Too many custom keys for one hint: all
    of them, as `attributes`."""
    keys = set(attribute_keys)
    custom = {ALL_CUSTOM_FIELDS} if len(keys) > MAX_HINT_FIELDS // 2 else keys
    names = (set(columns) - {ALL_CUSTOM_FIELDS}) | custom | {"updated_at"}
    return ChangeHints(fields=sorted(names))
