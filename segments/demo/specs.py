"""The demo's segments: one per rule kind and dialect, written against the generated data
(its lists, campaigns and custom fields), each with a summary of what its rules use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from segments.demo.data import DemoData

V2 = "/api/v2/segments/"
SIMPLE = "/api/segments"


@dataclass(frozen=True)
class SegmentSpec:
    key: str
    path: str  # the API it is created through
    summary: str  # what its rules use
    body: dict[str, Any]

    @property
    def name(self) -> str:
        name: str = self.body["name"]
        return name


def _field(name: str, operator: str, value: Any = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"kind": "field", "field": name, "operator": operator}
    if value is not None:
        condition["value"] = value
    return condition


def _v2(data: DemoData, name: str, colour: str, lists: list[str], groups: list[Any]) -> Any:
    return {
        "name": name,
        "color": colour,
        "contact_list_ids": [str(data.lists[key]) for key in lists],
        "rules_json": {"any": [{"all": group} for group in groups]},
    }


def segment_specs(data: DemoData) -> list[SegmentSpec]:
    """Six segments: every rule kind, custom and derived fields, both writable dialects."""
    recent = [str(data.campaign(n)) for n in (1, 2, 3)]
    since = (data.now - timedelta(days=730)).date().isoformat()
    return [
        SegmentSpec(
            "engaged",
            V2,
            "field, activity (2+ opens in 30 days), isp",
            _v2(
                data,
                "Engaged Gmail & Outlook",
                "#7cb7de",
                ["all"],
                [
                    [
                        _field("status", "equals", "subscribed"),
                        {
                            "kind": "activity",
                            "metric": "open",
                            "operator": "count_gte",
                            "value": 2,
                            "days_window": {"mode": "last", "days": 30},
                        },
                        {"kind": "isp", "operator": "in", "values": [1, 2]},
                    ]
                ],
            ),
        ),
        SegmentSpec(
            "vip",
            V2,
            "custom fields of all five types, two groups",
            _v2(
                data,
                "VIP customers",
                "#944c6d",
                ["customers", "newsletter"],
                [
                    [
                        _field("plan", "in", ["pro", "enterprise"]),
                        _field("score", "gte", 70),
                        _field("interests", "has_any", ["tech", "gaming"]),
                    ],
                    [_field("vip", "equals", True), _field("birthday", "lt", "1975-01-01")],
                ],
            ),
        ),
        SegmentSpec(
            "clickers",
            V2,
            "activity in campaigns, membership, derived fields",
            _v2(
                data,
                "Campaign clickers",
                "#f0f080",
                ["all"],
                [
                    [
                        {
                            "kind": "activity",
                            "metric": "click",
                            "operator": "ever",
                            "include_campaign_ids": recent,
                        },
                        {
                            "kind": "membership",
                            "operator": "not_in",
                            "list_ids": [str(data.lists["blocklist"])],
                        },
                        _field("clicks_count", "gte", 2),
                        _field("last_open_at", "within_days", 30),
                    ]
                ],
            ),
        ),
        SegmentSpec(
            "risk",
            V2,
            "deliverability (bounce, complaint) or status",
            _v2(
                data,
                "Deliverability risk",
                "#f7819b",
                ["all", "newsletter"],
                [
                    [
                        {
                            "kind": "deliverability",
                            "metric": "bounce",
                            "operator": "count_gte",
                            "value": 1,
                            "days_window": {"mode": "last", "days": 90},
                        }
                    ],
                    [{"kind": "deliverability", "metric": "complaint", "operator": "ever"}],
                    [_field("status", "in", ["bounced", "complained"])],
                ],
            ),
        ),
        SegmentSpec(
            "dormant",
            V2,
            "activity windows (last, more_than), deliverability",
            _v2(
                data,
                "Dormant newsletter readers",
                "#065358",
                ["newsletter"],
                [
                    [
                        {
                            "kind": "activity",
                            "metric": "open",
                            "operator": "never",
                            "days_window": {"mode": "last", "days": 90},
                            "exclude_campaign_ids": [str(data.campaign(1))],
                        },
                        {
                            "kind": "activity",
                            "metric": "open",
                            "operator": "ever",
                            "days_window": {"mode": "more_than", "days": 90},
                        },
                        {
                            "kind": "deliverability",
                            "metric": "unsubscribe",
                            "operator": "count_eq",
                            "value": 0,
                        },
                        _field("status", "equals", "subscribed"),
                    ]
                ],
            ),
        ),
        SegmentSpec(
            "simple",
            SIMPLE,
            "AND-ed text, custom and datetime fields",
            {
                "name": "German paid-plan companies",
                "rules": [
                    {"field": "country", "operator": "equals", "value": "de"},
                    {"field": "company", "operator": "contains", "value": "gmbh"},
                    {"field": "plan", "operator": "not_equals", "value": "free"},
                    {"field": "created_at", "operator": "after", "value": since},
                ],
            },
        ),
    ]
