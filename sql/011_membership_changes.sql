-- Membership changes (docs/changes.md): who entered and left each segment, as a feed, as
-- membership.changed messages (the outbox) and as per-minute history. Written by
-- worker/membership_log.py in the transaction that changes the membership.

-- One row per segment whose first build was recorded: the last seq given. Writers hold the
-- segment's advisory lock (worker.builds, worker.changes), so they take seqs one transaction
-- after the other: `last_seq + 1 ..` is never given twice and seqs follow commit order. A
-- counter row rather than the log's max(seq): retention may delete every item of a quiet
-- segment, and seqs must never start again. Kept apart from `segments` so a build that
-- records does not hold the segment row (which the API updates) for the rest of its
-- transaction. Keys lead with account_id, the distribution column on Citus
-- (docs/scaling.md); the trigger below deletes a segment's rows of all three tables.
CREATE TABLE segment_change_feeds (
    account_id uuid NOT NULL,
    segment_id uuid NOT NULL,
    last_seq   bigint NOT NULL,
    PRIMARY KEY (account_id, segment_id)
);

-- The feed. One row per transaction and segment holds up to 1,000 changes (the items
-- seq_first .. seq_last: `entered` take the first seqs in array order, then `left_ids`), the
-- rows of the membership.changed messages: a rules change that moves 200,000 contacts writes
-- 200 rows, not 200,000 index entries. The initial item is a row of its own with total_count
-- and no ids. The API unnests rows into per-contact items (worker/membership_feed.py).
-- Seqs of a segment are contiguous, so a reader can tell a hole. No foreign key, as for
-- segment_members (sql/006): the trigger below deletes a segment's rows.
CREATE TABLE segment_membership_changes (
    account_id  uuid NOT NULL,
    segment_id  uuid NOT NULL,
    seq_first   bigint NOT NULL,
    seq_last    bigint NOT NULL,
    -- Set on the initial row alone (the members its first build found).
    total_count bigint,
    entered     uuid[] NOT NULL DEFAULT '{}',
    left_ids    uuid[] NOT NULL DEFAULT '{}',
    -- Null on the initial row.
    cause       text CHECK (cause IN ('rules', 'data', 'refresh', 'cascade', 'rebuild')),
    generation  bigint NOT NULL,
    at          timestamptz NOT NULL,
    CHECK (seq_last - seq_first + 1
           = greatest(cardinality(entered) + cardinality(left_ids), 1)),
    -- Serves: the feed's cursor reads (WHERE account_id = $2 AND segment_id = $1 AND
    -- seq_last > $3 ORDER BY seq_last LIMIT n). Rows come in seq order, so inserts go to the
    -- right edge of the index.
    PRIMARY KEY (account_id, segment_id, seq_last)
);
-- Serves: the retention cleanup (WHERE at < now() - retention). Rows arrive in time order,
-- so a BRIN index (a few pages whatever the size) finds the old ones, and costs inserts next
-- to nothing.
CREATE INDEX segment_membership_changes_at_idx ON segment_membership_changes USING brin (at);

-- History: one point per segment and minute in which the count changed: the count at the
-- end of that minute, the sums of entered and left. Kept 400 days.
CREATE TABLE segment_count_history (
    account_id  uuid NOT NULL,
    segment_id  uuid NOT NULL,
    minute      timestamptz NOT NULL,
    total_count bigint NOT NULL,
    entered     bigint NOT NULL,
    left_count  bigint NOT NULL,
    -- Serves: the history read (WHERE account_id = $2 AND segment_id = $1 AND minute
    -- BETWEEN ...) and the upsert of the current minute.
    PRIMARY KEY (account_id, segment_id, minute)
);
-- Serves: the retention cleanup (WHERE minute < now() - 400 days).
CREATE INDEX segment_count_history_minute_idx ON segment_count_history USING brin (minute);

-- A segment's feed and history go with it, once per statement (as its members: sql/006).
CREATE FUNCTION segments_delete_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM segment_change_feeds
    WHERE segment_id IN (SELECT id FROM deleted_segments);
    DELETE FROM segment_membership_changes
    WHERE segment_id IN (SELECT id FROM deleted_segments);
    DELETE FROM segment_count_history
    WHERE segment_id IN (SELECT id FROM deleted_segments);
    RETURN NULL;
END
$$;

CREATE TRIGGER segments_delete_changes
    AFTER DELETE ON segments
    REFERENCING OLD TABLE AS deleted_segments
    FOR EACH STATEMENT EXECUTE FUNCTION segments_delete_changes();

-- Why a queued contact is re-evaluated: a data change that waited for a build ('data') or a
-- referenced segment's change flowing on ('cascade', worker/propagation.py). It becomes the
-- cause of what the re-evaluation moves.
ALTER TABLE segment_pending_changes
    ADD COLUMN cause text NOT NULL DEFAULT 'data' CHECK (cause IN ('data', 'cascade'));

-- Segments built before this migration start their feed here: an initial item with the
-- count they have, as their first build would have recorded.
WITH built AS (
    SELECT id, account_id, coalesce(built_generation, generation) AS generation,
           coalesce(total_count, 0) AS total_count
    FROM segments WHERE status = 'DONE'
), feeds AS (
    INSERT INTO segment_change_feeds (account_id, segment_id, last_seq)
    SELECT account_id, id, 1 FROM built
)
INSERT INTO segment_membership_changes
    (account_id, segment_id, seq_first, seq_last, total_count, generation, at)
SELECT account_id, id, 1, 1, total_count, generation, now() FROM built;
