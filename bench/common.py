"""What the benchmark scripts share: where the data lives and the fixed ids it is built with.

Ids are md5 hashes of readable names, so the loader (in SQL: `md5(text)::uuid`) and the plans
script (in Python: `stable_uuid`) agree on them without a lookup, and a reload is identical.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

DEFAULT_DSN = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/segments_bench"
)
OUT_DIR = Path(__file__).resolve().parent / "out"  # git-ignored


def stable_uuid(*parts: object) -> UUID:
    """md5 of the ':'-joined parts; equals PostgreSQL's `md5(a || ':' || b ...)::uuid`."""
    text = ":".join(str(p) for p in parts)
    return UUID(hashlib.md5(text.encode(), usedforsecurity=False).hexdigest())


ACCOUNT_BIG = stable_uuid("bench", "account", "big")
ACCOUNT_SMALL = stable_uuid("bench", "account", "small")
CAMPAIGNS = 50  # per account; campaign 1 is the most recent


@dataclass(frozen=True)
class ListSpec:
    key: str
    name: str
    share: float  # fraction of the account's contacts on the list, drawn independently


LISTS = (
    ListSpec("all", "All subscribers", 0.80),
    ListSpec("newsletter", "Newsletter", 0.35),
    ListSpec("customers", "Customers", 0.15),
    ListSpec("webinar", "Webinar 2024", 0.10),
    ListSpec("blocklist", "Do not mail", 0.02),
)


def list_id(account_id: UUID, key: str) -> UUID:
    return stable_uuid(account_id, "list", key)


def campaign_id(account_id: UUID, number: int) -> UUID:
    return stable_uuid(account_id, "campaign", number)


# Custom fields declared in contact_fields for both accounts (values in contacts.attributes).
CUSTOM_FIELDS = {
    "score": "number",
    "vip": "boolean",
    "birthday": "datetime",
    "interests": "list",
    "plan": "text",
}
