"""Streaming a segment's members out in bulk (CSV or NDJSON), for `GET .../contacts/export/`
and `segments export`: one query, read through a server-side cursor in batches, so memory
stays flat whatever the segment's size."""
