"""Contact ingestion for producers that speak HTTP and for standalone use (README: HTTP API).

Each call writes its data and its `contact.changed` outbox rows in one transaction, so the
message is published if and only if the data committed. Batch sizes are bounded (README:
HTTP API, Limits); a larger load goes through `segments import` or several calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from fastapi import Depends
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from api_shim import contacts_store as db
from api_shim.auth import CONTACTS, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, ApiError, ErrorItem, not_found
from api_shim.routing import SlashOptionalRouter
from api_shim.types import Email, JsonObject, ShortText, storable_text, utc
from worker.contact_lookup import ids_by_email, normal_email
from worker.hints import fields_changed
from worker.lists import change_members as change_list_members
from worker.messages import ChangeHints
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


class ContactRef(BaseModel):
    """One contact of the account, by `contact_id` or by `email` (exactly one of them)."""

    model_config = ConfigDict(extra="forbid")
    contact_id: UUID | None = None
    email: Email | None = Field(None, description="Any case; as stored, trimmed and lower-cased.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.contact_id is None) == (self.email is None):
            raise ValueError("give exactly one of contact_id and email")
        return self


class EventIn(ContactRef):
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


def _member_ref(value: Any) -> Any:
    """A bare string names a contact by id, or by email when it holds an `@`."""
    if isinstance(value, str):
        return {"email": value} if "@" in value else {"contact_id": value}
    return value


Member = Annotated[
    ContactRef,
    BeforeValidator(_member_ref),
    Field(description="A contact id, an email, or an object with one of `contact_id` and `email`."),
]
Members = Annotated[list[Member], Field(max_length=MAX_MEMBER_CHANGES)]


class MembershipChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add: Members = []
    remove: Members = []


class MembershipResult(BaseModel):
    added: int
    removed: int


class ContactChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_CHANGED_IDS)]
    changed: ChangeHints | None = Field(
        None,
        description=(
            "What changed (README: Producers, change hints): segments whose rules read none of"
            " it are not re-evaluated. Leave it out when anything may have changed, and always"
            " for created or deleted contacts."
        ),
    )


class ChangesAccepted(BaseModel):
    contact_ids: int
    messages: int


@router.post("/contacts", response_model=UpsertResult, summary="Upsert contacts by email")
async def upsert_contacts(ctx: Ctx, who: Writer, body: ContactBatch) -> UpsertResult:
    _reject_duplicates([c.email for c in body.contacts], "contacts", "email")
    docs = [_document(c) for c in body.contacts]
    async with ctx.pool.acquire() as conn, conn.transaction():
        by_email = await db.upsert_contacts(conn, who.account_id, docs)
        # A created contact is new to every segment: no hints. An updated one changed the
        # fields its document sent.
        created = [i for i, new in by_email.values() if new]
        updated = [i for i, new in by_email.values() if not new]
        await enqueue_contacts_changed(conn, who.account_id, created)
        updated_docs = [d for d in docs if not by_email[d["email"]][1]]
        await enqueue_contacts_changed(conn, who.account_id, updated, _fields_sent(updated_docs))
    items = [
        UpsertedContact(id=by_email[c.email][0], email=c.email, created=by_email[c.email][1])
        for c in body.contacts
    ]
    return UpsertResult(items=items)


@router.post("/events", response_model=EventsResult, summary="Append engagement events")
async def append_events(ctx: Ctx, who: Writer, body: EventBatch) -> EventsResult:
    async with ctx.pool.acquire() as conn, conn.transaction():
        ids = await resolve_contacts(conn, who.account_id, body.events, "events", ".{field}")
        rows = [
            (i, e.type, e.campaign_id, e.occurred_at) for i, e in zip(ids, body.events, strict=True)
        ]
        inserted = await db.insert_events(conn, who.account_id, rows)
        types = sorted({e.type for e in body.events})
        await enqueue_contacts_changed(conn, who.account_id, ids, ChangeHints(events=types))
    return EventsResult(inserted=inserted)


@router.post(
    "/lists/{list_id}/members",
    response_model=MembershipResult,
    responses={404: ERROR_RESPONSES[400] | {"description": "No such list in this account"}},
    summary="Add contacts to a list and remove others (by contact id or email)",
)
async def change_members(
    ctx: Ctx, who: Writer, list_id: UUID, body: MembershipChange
) -> MembershipResult:
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await db.list_exists(conn, who.account_id, list_id):
            raise not_found("list", "list_id")
        add = await resolve_contacts(conn, who.account_id, body.add, "add", "")
        remove = await resolve_contacts(
            conn, who.account_id, body.remove, "remove", "", check_ids=False
        )
        both = set(add) & set(remove)
        if both:
            raise ApiError.invalid(
                (f"remove[{i}]", "is also in add", "conflicting_change")
                for i, contact_id in enumerate(remove)
                if contact_id in both
            )
        added, removed = await change_list_members(conn, who.account_id, list_id, add, remove)
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
        messages = await enqueue_contacts_changed(conn, who.account_id, unique, body.changed)
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


def _fields_sent(docs: Sequence[dict[str, Any]]) -> ChangeHints:
    """The change hints of updating contacts with these documents: the keys they sent."""
    columns = {key for doc in docs for key in doc if key != "email"}
    custom = {key for doc in docs for key in doc.get("attributes", {})}
    return fields_changed(columns, custom)


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


async def resolve_contacts(
    conn: Any,
    account_id: UUID,
    refs: Sequence[ContactRef],
    key: str,
    field_loc: str,
    *,
    check_ids: bool = True,
) -> list[UUID]:
    """The contact id of each ref (ContactRef), in order; a located 400 for every email the
    account has no contact for and (check_ids) every id that is not one of its contacts.
    `field_loc` formats the location's tail from the ref's `{field}` (".{field}" or "")."""
    emails = [r.email for r in refs if r.email is not None]
    by_email = await ids_by_email(conn, account_id, emails) if emails else {}
    given = [r.contact_id for r in refs if r.contact_id is not None]
    known = await db.existing_contacts(conn, account_id, given) if check_ids and given else set()
    errors: list[ErrorItem] = []
    ids: list[UUID] = []
    for i, ref in enumerate(refs):
        if ref.email is not None:
            found = by_email.get(normal_email(ref.email))
            if found is None:
                msg = (
                    f"no contact with email {ref.email} in this account; "
                    "create it first with POST /api/v2/contacts"
                )
                loc = f"{key}[{i}]" + field_loc.format(field="email")
                errors.append(ErrorItem(loc=loc, msg=msg, type="unknown_contact"))
                continue
            ids.append(found)
        else:
            contact_id = ref.contact_id
            assert contact_id is not None  # exactly one of the two (ContactRef)
            if check_ids and contact_id not in known:
                msg = f"contact {contact_id} is not a contact of this account"
                loc = f"{key}[{i}]" + field_loc.format(field="contact_id")
                errors.append(ErrorItem(loc=loc, msg=msg, type="unknown_contact"))
                continue
            ids.append(contact_id)
    if errors:
        raise ApiError(400, errors)
    return ids
