"""`GET /api/v2/segments/{id}/contacts/{contact_id}/explain/`: why a contact is in a segment,
or not (worker.explain_contact; `segments explain SEGMENT CONTACT` prints the same)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Path
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from api_shim.auth import READ, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, ApiError, not_found
from api_shim.routing import SlashOptionalRouter
from worker.explain_contact import ContactNotFound, explain_contact, explanation_json
from worker.rules import RulesInvalid
from worker.store import SegmentNotFound

router = SlashOptionalRouter(
    prefix="/api/v2/segments", tags=["v2 segments"], responses={**ERROR_RESPONSES}
)

_TREE = """The segment's `rules_json` (for a segment made in the v1 or simple API, its canonical
tree), node for node. Every node has `result`, its verdict for the contact; every condition
also has `observed`, what it read: `field`: `{"stored", "read"}` (the raw value, and the value
as rules read it: '' and empty lists are null, a custom value of the wrong type is null, list
elements lower-cased; for fields derived from events both are the derived value);
`activity`/`deliverability`: `{"count", "from", "to"}` (the events counted and the window
used, `from` inclusive, `to` exclusive, null where unbounded); `membership`: `{"lists":
[{"id", "name"}]}` (those of the condition's lists the contact is on); `isp`: `{"isp_id",
"name"}`; `segment`: `{"segments": [{"id", "name"}]}` (those of the condition's segments whose
membership holds the contact)."""

_EXAMPLE: JsonDict = {
    "segment_id": "6f1c1f0e-4a57-4d3e-9d0a-7a3c2b1e9f10",
    "contact_id": "0b8e6d4a-2f1c-4e7b-8a9d-3c5e7f9a1b2c",
    "member": True,
    "matches": True,
    "in_universe": True,
    "evaluated_at": "2026-12-05T01:30:00Z",
    "fresh_as_of": "2026-12-05T01:29:58Z",
    "tree": {
        "all": [
            {
                "kind": "field",
                "field": "status",
                "operator": "equals",
                "value": "subscribed",
                "result": True,
                "observed": {"stored": "subscribed", "read": "subscribed"},
            },
            {
                "not": {
                    "kind": "activity",
                    "metric": "open",
                    "operator": "ever",
                    "days_window": {"mode": "last", "days": 30},
                    "result": False,
                    "observed": {"count": 0, "from": "2026-11-05T01:30:00Z", "to": None},
                },
                "result": True,
            },
        ],
        "result": True,
    },
}


class ContactExplanation(BaseModel):
    """Why a contact is in a segment, or not: the rules evaluated now for that contact."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    segment_id: UUID
    contact_id: UUID
    member: bool = Field(description="In the segment's materialised membership now.")
    matches: bool = Field(
        description="The rules evaluated now, the universe included: what the next build or "
        "update of the contact will make `member`."
    )
    in_universe: bool = Field(
        description="On at least one of the segment's `contact_list_ids` (true when it has none)."
    )
    evaluated_at: datetime = Field(description="The `now` the rules were evaluated at.")
    fresh_as_of: datetime | None = Field(
        description="The segment's `fresh_as_of`: changes up to it are reflected in `member`."
    )
    tree: dict[str, Any] = Field(description=_TREE)


ContactRef = Annotated[
    str, Path(description="The contact's id, or its email (any case).", max_length=320)
]
_404 = ERROR_RESPONSES[400] | {"description": "No such segment or contact in this account"}
_409 = ERROR_RESPONSES[400] | {
    "description": "The segment's rules no longer fit the account's custom fields"
}


@router.get(
    "/{segment_id}/contacts/{contact_id}/explain/",
    response_model=ContactExplanation,
    responses={404: _404, 409: _409},
    summary="Why is this contact in the segment, or not",
)
async def explain(
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require(READ))],
    segment_id: UUID,
    contact_id: ContactRef,
) -> ContactExplanation:
    async with ctx.pool.acquire() as conn:
        try:
            got = await explain_contact(
                conn, who.account_id, segment_id, contact_id, datetime.now(UTC)
            )
        except SegmentNotFound:
            raise not_found("segment", "segment_id") from None
        except ContactNotFound:
            raise not_found("contact", "contact_id") from None
        except RulesInvalid as exc:
            msg = f"the segment's rules no longer fit the account's custom fields ({exc}); "
            msg += "change its rules_json with PATCH"
            raise ApiError.one(409, msg, "rules_invalid", "segment_id") from None
    return ContactExplanation.model_validate(explanation_json(got))
