-- Segments built from other segments (docs/rules.md, "segment"): which segment references
-- which, kept in the transaction that saves the rules (worker/references.py, called by
-- api_shim/segments.py), so that both directions are one indexed lookup: what a segment reads
-- (validation: cycles, chain depth) and who reads a segment (propagation of its membership
-- changes, worker/propagation.py; the 409 of deleting a referenced segment).
CREATE TABLE segment_references (
    account_id            uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    segment_id            uuid NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    -- No cascade: a referenced segment cannot be deleted (the API answers 409 first, under
    -- the account's references lock; this is the last line). Checked at commit, so deleting
    -- a whole account's segments at once is fine: by then their references are gone too.
    referenced_segment_id uuid NOT NULL REFERENCES segments (id) DEFERRABLE INITIALLY DEFERRED,
    -- Serves: what a segment references (WHERE segment_id = $1), and its replacement.
    PRIMARY KEY (segment_id, referenced_segment_id)
);
-- Serves: who references a segment (WHERE referenced_segment_id = $1): propagation and the
-- 409 of a delete.
CREATE INDEX segment_references_referenced_idx
    ON segment_references (referenced_segment_id, segment_id);
-- Serves: an account's whole reference graph (validation of a save: cycles and depth).
CREATE INDEX segment_references_account_idx ON segment_references (account_id);
