"""Contact ingestion for producers that speak HTTP and for standalone use (DESIGN.md 5).

Each call writes its data and its `contact.changed` outbox rows in one transaction, so the
message is published if and only if the data committed. Batch sizes are bounded (README:
HTTP API, Limits); a larger load goes through `segments import` or several calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from api_shim import contacts_store as db
from api_shim.auth import CONTACTS, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, ApiError, ErrorItem, not_found
from api_shim.routing import SlashOptionalRouter
from api_shim.types import Email, JsonObject, ShortText, storable_text, utc
from worker.outbox import enqueue_contacts_changed

MAX_CONTACTS = 1000  # per upsert call (one contact.changed message)
MAX_EVENTS = 5000  # per events call
MAX_MEMBER_CHANGES = 1000  # per list, each of add and remove
MAX_CHANGED_IDS = 10_000  # per changes call (split into messages of 1000)

router = SlashOptionalRouter(prefix="/api/v2", tags=["contacts"], responses={**ERROR_RESPONSES})

Tag = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(storable_text)]
Writer = Annotated[Principal, Depends(require(CONTACTS))]
Ctx = Annotated[AppContext, Depends(app_context)]


class ContactIn(BaseModel):
    """A contact by email. Keys sent set their value (null clears it); keys left out keep
    theirs. `attributes` (custom fields) merge key by key. New contacts default to
    `subscribed`."""

    model_config = ConfigDict(extra="forbid")
    email: Email
    name: ShortText | None = None
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    company: ShortText | None = None
    status: Literal["subscribed", "unsubscribed", "bounced", "complained", "pending"] | None = None
    country: ShortText | None = None
    city: ShortText | None = None
    language: ShortText | None = None
    tags: Annotated[list[Tag], Field(max_length=100)] | None = None
    isp_id: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)] | None = None
    attributes: Annotated[JsonObject, Field(max_length=200)] | None = None


class ContactBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contacts: Annotated[list[ContactIn], Field(min_length=1, max_length=MAX_CONTACTS)]


class UpsertedContact(BaseModel):
    id: UUID
    email: str
    created: bool


class UpsertResult(BaseModel):
    items: list[UpsertedContact]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact_id: UUID
    type: Literal["open", "click", "bounce", "complaint", "delivered", "unsubscribe"]
    campaign_id: UUID | None = None
    occurred_at: Annotated[datetime, AfterValidator(utc)] | None = Field(
        None, description="Default now; no offset means UTC."
    )


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_EVENTS)]


class EventsResult(BaseModel):
    inserted: int


MemberIds = Annotated[list[UUID], Field(max_length=MAX_MEMBER_CHANGES)]


class MembershipChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add: MemberIds = []
    remove: MemberIds = []


class MembershipResult(BaseModel):
    added: int
    removed: int


class ContactChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_CHANGED_IDS)]


class ChangesAccepted(BaseModel):
    contact_ids: int
    messages: int


@router.post("/contacts", response_model=UpsertResult, summary="Upsert contacts by email")
async def upsert_contacts(ctx: Ctx, who: Writer, body: ContactBatch) -> UpsertResult:
    _reject_duplicates([c.email for c in body.contacts], "contacts", "email")
    docs = [_document(c) for c in body.contacts]
    async with ctx.pool.acquire() as conn, conn.transaction():
        by_email = await db.upsert_contacts(conn, who.account_id, docs)
        await enqueue_contacts_changed(conn, who.account_id, [i for i, _ in by_email.values()])
    items = [
        UpsertedContact(id=by_email[c.email][0], email=c.email, created=by_email[c.email][1])
        for c in body.contacts
    ]
    return UpsertResult(items=items)


@router.post("/events", response_model=EventsResult, summary="Append engagement events")
async def append_events(ctx: Ctx, who: Writer, body: EventBatch) -> EventsResult:
    ids = [e.contact_id for e in body.events]
    rows = [(e.contact_id, e.type, e.campaign_id, e.occurred_at) for e in body.events]
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _require_contacts(conn, who.account_id, ids, "events", "contact_id")
        inserted = await db.insert_events(conn, who.account_id, rows)
        await enqueue_contacts_changed(conn, who.account_id, ids)
    return EventsResult(inserted=inserted)


@router.post(
    "/lists/{list_id}/members",
    response_model=MembershipResult,
    responses={404: ERROR_RESPONSES[400] | {"description": "No such list in this account"}},
    summary="Add contacts to a list and remove others",
)
async def change_members(
    ctx: Ctx, who: Writer, list_id: UUID, body: MembershipChange
) -> MembershipResult:
    both = set(body.add) & set(body.remove)
    if both:
        raise ApiError.invalid(
            (f"remove[{i}]", "is also in add", "conflicting_change")
            for i, contact_id in enumerate(body.remove)
            if contact_id in both
        )
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await db.list_exists(conn, who.account_id, list_id):
            raise not_found("list", "list_id")
        await _require_contacts(conn, who.account_id, body.add, "add", None)
        added = await db.add_members(conn, who.account_id, list_id, body.add)
        removed = await db.remove_members(conn, who.account_id, list_id, body.remove)
        if added or removed:
            await enqueue_contacts_changed(conn, who.account_id, [*added, *removed])
    return MembershipResult(added=len(added), removed=len(removed))


@router.post(
    "/contacts/changes",
    status_code=202,
    response_model=ChangesAccepted,
    summary="Signal that contacts changed (publishes contact.changed)",
)
async def contacts_changed(ctx: Ctx, who: Writer, body: ContactChanges) -> ChangesAccepted:
    # Ids are not checked against the account: a contact deleted by the backing API is
    # signalled exactly this way, and the worker only ever reads this account's rows.
    unique = list(dict.fromkeys(body.contact_ids))
    async with ctx.pool.acquire() as conn, conn.transaction():
        messages = await enqueue_contacts_changed(conn, who.account_id, unique)
    return ChangesAccepted(contact_ids=len(unique), messages=messages)


def _document(contact: ContactIn) -> dict[str, Any]:
    """The keys the client sent, for the SQL's "present means set" rule."""
    doc = contact.model_dump(mode="json", exclude_unset=True)
    for key in ("status", "attributes"):  # null here means "leave as it is"
        if doc.get(key, "") is None:
            del doc[key]
    if "tags" in doc and doc["tags"] is None:
        doc["tags"] = []  # an empty list is the null of a list
    return doc


def _reject_duplicates(values: list[str], key: str, field: str) -> None:
    seen: set[str] = set()
    errors = []
    for i, value in enumerate(values):
        if value in seen:
            item = ErrorItem(loc=f"{key}[{i}].{field}", msg="appears twice", type="duplicate")
            errors.append(item)
        seen.add(value)
    if errors:
        raise ApiError(400, errors)


async def _require_contacts(
    conn: Any, account_id: UUID, ids: list[UUID], key: str, field: str | None
) -> None:
    """A located 400 for every id that is not a contact of this account."""
    if not ids:
        return
    known = await db.existing_contacts(conn, account_id, ids)
    errors = [
        ErrorItem(
            loc=f"{key}[{i}]" + (f".{field}" if field else ""),
            msg=f"contact {contact_id} is not a contact of this account",
            type="unknown_contact",
        )
        for i, contact_id in enumerate(ids)
        if contact_id not in known
    ]
    if errors:
        raise ApiError(400, errors)
