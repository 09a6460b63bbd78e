-- Contact changes that arrived while a build held their segment (worker/changes.py).
-- Rather than wait for the build (minutes on a large account), the change batch updates every
-- other segment at once and queues the contacts here; once the build has finished, a sweep
-- re-evaluates them under the segment's lock, on the data as it is then, and deletes the rows.
CREATE TABLE segment_pending_changes (
    segment_id uuid NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL,
    account_id uuid NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now(),
    -- Also serves the sweep: the segments with queued contacts, and the delete of one's rows.
    PRIMARY KEY (segment_id, contact_id)
);
