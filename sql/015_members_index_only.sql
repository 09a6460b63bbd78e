-- Every statement reads segment_members pinned to one account (`account_id = $1`, so that it
-- stays on one shard when the data is distributed: docs/scaling.md). Neither index held
-- account_id, so each such read visited the table's heap to check it, row by row: the
-- current membership of a change batch's contacts (a quarter of a million rows for 1,000
-- contacts in 1,000 segments) came from random heap pages instead of the index alone, and
-- so did a rebuild's comparison with the membership it replaces (docs/benchmarks.md,
-- "Index-only membership reads"). Carrying account_id in both indexes makes those reads
-- index-only again; the keys, and so what each index serves, do not change.

-- Serves: a segment's members in order (builds' comparison with the membership they
-- replace, the members API's pages: sm.account_id = $1 AND sm.segment_id = $2).
ALTER TABLE segment_members
    DROP CONSTRAINT segment_members_pkey,
    ADD PRIMARY KEY (segment_id, contact_id) INCLUDE (account_id);

-- Serves: the current membership of a change batch's contacts (sm.account_id = $1 AND
-- sm.contact_id = ANY($ids) AND sm.segment_id = ANY($segments)), and "which segments is
-- this contact in".
DROP INDEX segment_members_contact_idx;
CREATE INDEX segment_members_contact_idx
    ON segment_members (contact_id, segment_id) INCLUDE (account_id);
