"""Request and response bodies of the v2 segments API (README: HTTP API)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from api_shim.types import Description, DocumentedAs, Name, Timezone
from worker.rules.limits import MAX_ARRAY_ITEMS
from worker.rules.v2 import RulesJson

# The documented palette (README: HTTP API). Colours are matched exactly, lower case.
Color = Literal[
    "#cc9ccb",
    "#f0f080",
    "#ecd12d",
    "#dadabc",
    "#7cb7de",
    "#b6d8d5",
    "#065358",
    "#dbe3b4",
    "#c1cceb",
    "#944c6d",
    "#f7819b",
    "#f9c8cb",
]
Status = Literal["PENDING", "RUNNING", "DONE", "FAILED"]
MAX_DISPLAY_FIELDS = 50

# Validated by worker.rules (with the account's fields and exact locations), documented as
# the v2 dialect's model.
RulesJsonInput = Annotated[dict[str, Any], DocumentedAs(RulesJson)]
ListIds = Annotated[list[UUID], Field(min_length=1, max_length=MAX_ARRAY_ITEMS)]


class SegmentRules(BaseModel):
    """What a segment matches: the part of a create body that a preview takes too, so that
    both validate it alike (api_shim.validation.check_segment_rules)."""

    model_config = ConfigDict(extra="forbid")
    contact_list_ids: ListIds
    rules_json: RulesJsonInput
    timezone: Timezone = "UTC"


class SegmentCreate(SegmentRules):
    name: Name
    color: Color
    description: Description | None = None


class SegmentPatch(TypedDict, total=False):
    """Only the keys sent change. rules_json / contact_list_ids / timezone changes rebuild
    the segment; display_fields takes field names."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    name: Name
    color: Color
    description: Description | None
    contact_list_ids: ListIds
    rules_json: RulesJsonInput
    display_fields: Annotated[list[str], Field(max_length=MAX_DISPLAY_FIELDS)]
    timezone: Timezone


class Pagination(BaseModel):
    page: int
    page_size: int
    total_count: int
    total_pages: int


class SegmentItem(BaseModel):
    id: UUID
    name: str
    color: str | None
    status: Status
    total_count: int | None = Field(description="Matching contacts; null unless DONE.")
    created_at: datetime
    updated_at: datetime


class SegmentList(BaseModel):
    pagination: Pagination
    items: list[SegmentItem]


class DisplayField(BaseModel):
    label: str
    contact_column_name: str
    data_type: str
    choices: list[str] | None


class Segment(BaseModel):
    id: UUID
    name: str
    color: str | None
    description: str | None
    rules_json: RulesJsonInput
    contact_list_ids: list[UUID]
    status: Status
    total_count: int | None = Field(description="Matching contacts; null unless DONE.")
    created_at: datetime
    updated_at: datetime
    display_fields: list[DisplayField]
    timezone: str = Field(
        description="IANA timezone of the segment's calendar periods and anniversaries."
    )
    error_reason: str | None = Field(description="Why the last build failed; null unless FAILED.")


class Contact(BaseModel):
    id: UUID
    email: str
    name: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    status: str
    country: str | None
    city: str | None
    language: str | None
    tags: list[str]
    attributes: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None


class SegmentContact(Contact):
    added_at: datetime = Field(description="When the contact joined the segment.")


class SegmentContactList(BaseModel):
    pagination: Pagination
    items: list[SegmentContact]
