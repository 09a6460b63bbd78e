-- Membership changes (docs/changes.md): who entered and left each segment, as a feed, as
-- membership.changed messages (the outbox) and as per-minute history. Written by
-- worker/membership_log.py in the transaction that changes the membership.

-- One row per segment whose first build was recorded: the last seq given. Writers hold the
-- segment's advisory lock (worker.builds, worker.changes), so they take seqs one transaction
-- after the other: `last_seq + 1 ..` is never given twice and seqs follow commit order. A
-- counter row rather than max(seq) of the log: retention may delete every item of a quiet
-- segment, and seqs must never start again. Kept apart from `segments` so a build that
-- records does not hold the segment row (which the API updates) for the rest of its
-- transaction.
CREATE TABLE segment_change_feeds (
    segment_id uuid PRIMARY KEY REFERENCES segments (id) ON DELETE CASCADE,
    account_id uuid NOT NULL,
    last_seq   bigint NOT NULL
);

-- The feed itself. Seqs of a segment are contiguous (1, 2, 3, ...: one per item), so a
-- reader can tell a hole, and the oldest seq kept is min(seq) (the primary key's first
-- entry). No foreign key, as for segment_members (sql/006): a per-row check would lock the
-- segment row once per item of a rebuild; the trigger below deletes a segment's items.
CREATE TABLE segment_membership_changes (
    segment_id  uuid NOT NULL,
    seq         bigint NOT NULL,
    account_id  uuid NOT NULL,
    change      text NOT NULL CHECK (change IN ('initial', 'entered', 'left')),
    -- Null for the initial item, which carries total_count instead.
    contact_id  uuid,
    total_count bigint,
    -- Null for the initial item.
    cause       text CHECK (cause IN ('rules', 'data', 'refresh', 'cascade', 'rebuild')),
    generation  bigint NOT NULL,
    at          timestamptz NOT NULL,
    -- Serves: the feed's cursor reads (WHERE segment_id = $1 AND seq > $2 ORDER BY seq
    -- LIMIT n) and the oldest seq kept (min(seq)). Items are appended in seq order, so
    -- inserts go to the right edge of the index.
    PRIMARY KEY (segment_id, seq)
);
-- Serves: the retention cleanup (WHERE at < now() - retention, in bounded batches). Items
-- arrive in time order, so a BRIN index (a few pages whatever the size) finds the old ones,
-- and costs inserts next to nothing.
CREATE INDEX segment_membership_changes_at_idx ON segment_membership_changes USING brin (at);

-- History: one point per segment and minute in which the count changed: the count at the
-- end of that minute, the sums of entered and left. Kept 400 days.
CREATE TABLE segment_count_history (
    segment_id  uuid NOT NULL,
    minute      timestamptz NOT NULL,
    account_id  uuid NOT NULL,
    total_count bigint NOT NULL,
    entered     bigint NOT NULL,
    left_count  bigint NOT NULL,
    -- Serves: the history read (WHERE segment_id = $1 AND minute BETWEEN ...) and the
    -- upsert of the current minute.
    PRIMARY KEY (segment_id, minute)
);
-- Serves: the retention cleanup (WHERE minute < now() - 400 days).
CREATE INDEX segment_count_history_minute_idx ON segment_count_history USING brin (minute);

-- A segment's items and history go with it, once per statement (as its members: sql/006).
CREATE FUNCTION segments_delete_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
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
    INSERT INTO segment_change_feeds (segment_id, account_id, last_seq)
    SELECT id, account_id, 1 FROM built
)
INSERT INTO segment_membership_changes
    (segment_id, seq, account_id, change, total_count, generation, at)
SELECT id, 1, account_id, 'initial', total_count, generation, now() FROM built;
