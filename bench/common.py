"""What the benchmark scripts share: where the data lives and the fixed ids it is built with.

Ids are md5 hashes of readable names, so the loader (in SQL: `md5(text)::uuid`) and the plans
script (in Python: `stable_uuid`) agree on them without a lookup, and a reload is identical.
"""

from __future__ import annotations

import os
from pathlib import Path
from uuid import UUID

from segments.demo.data import CAMPAIGNS, CUSTOM_FIELDS, LISTS, ListSpec, stable_uuid

__all__ = ["CAMPAIGNS", "CUSTOM_FIELDS", "LISTS", "ListSpec", "stable_uuid"]

DEFAULT_DSN = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/segments_bench"
)
OUT_DIR = Path(__file__).resolve().parent / "out"  # git-ignored


ACCOUNT_BIG = stable_uuid("bench", "account", "big")
ACCOUNT_SMALL = stable_uuid("bench", "account", "small")


def list_id(account_id: UUID, key: str) -> UUID:
    return stable_uuid(account_id, "list", key)


def campaign_id(account_id: UUID, number: int) -> UUID:
    return stable_uuid(account_id, "campaign", number)
