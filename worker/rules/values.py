"""Reading typed values: the one ISO 8601 dialect rules and stored custom fields accept.

Mirrors segments_parse_timestamptz in sql/002_value_functions.sql exactly; the property tests
check that Python and PostgreSQL agree.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_ISO_DATETIME = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>0[1-9]|1[0-2])-(?P<d>0[1-9]|[12][0-9]|3[01])"
    r"(?:[Tt ](?P<h>[01][0-9]|2[0-3]):(?P<mi>[0-5][0-9])"
    r"(?::(?P<s>[0-5][0-9])(?:\.(?P<f>[0-9]{1,6}))?)?"
    r"(?P<tz>[Zz]|(?P<sign>[+-])(?P<oh>0[0-9]|1[0-4])(?::?(?P<om>[0-5][0-9]))?)?)?"
)

ISO_DATETIME_HELP = (
    "an ISO 8601 date or date-time such as 2026-05-21, 2026-05-21T11:30:00Z or "
    "2026-05-21T11:30:00+02:00 (no offset means UTC)"
)


def parse_iso_datetime(text: str) -> datetime | None:
    """The instant `text` names, in UTC, or None if it is not in the accepted dialect."""
    m = _ISO_DATETIME.fullmatch(text)
    if m is None or m["y"] == "0000":
        return None
    try:
        moment = datetime(
            int(m["y"]),
            int(m["mo"]),
            int(m["d"]),
            int(m["h"] or 0),
            int(m["mi"] or 0),
            int(m["s"] or 0),
            int((m["f"] or "0").ljust(6, "0")),
            tzinfo=UTC,
        )
        if m["sign"]:
            offset = timedelta(hours=int(m["oh"]), minutes=int(m["om"] or 0))
            moment -= offset if m["sign"] == "+" else -offset
    except ValueError:  # a calendar date that does not exist, e.g. 2023-02-29
        return None
    except OverflowError:  # the offset moves it out of years 1..9999
        return None
    return moment
