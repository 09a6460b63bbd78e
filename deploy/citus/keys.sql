-- Citus profile, step 1 of 2: keys that include the distribution column.
--
-- Citus enforces a primary key, a unique constraint or a foreign key between distributed
-- tables only when it includes the distribution column (account_id; accounts.id). The
-- service's own migrations keep the narrower keys PostgreSQL alone serves best; a Citus
-- deployment runs this file once, after `segments migrate` and before distribute.sql, on a
-- database with no traffic. The service's statements work with either set of keys (they name
-- no constraint in ON CONFLICT), and tests/test_citus_profile.py applies this file to a
-- migrated database and checks the rules above, so a new table cannot miss it.
BEGIN;

ALTER TABLE contact_list_members
    DROP CONSTRAINT contact_list_members_list_id_fkey,
    DROP CONSTRAINT contact_list_members_contact_id_fkey,
    DROP CONSTRAINT contact_list_members_pkey;
ALTER TABLE segment_pending_changes DROP CONSTRAINT segment_pending_changes_segment_id_fkey;
ALTER TABLE segment_references
    DROP CONSTRAINT segment_references_segment_id_fkey,
    DROP CONSTRAINT segment_references_referenced_segment_id_fkey;

ALTER TABLE contacts DROP CONSTRAINT contacts_pkey, ADD PRIMARY KEY (account_id, id);
ALTER TABLE contact_lists DROP CONSTRAINT contact_lists_pkey, ADD PRIMARY KEY (account_id, id);
ALTER TABLE segments DROP CONSTRAINT segments_pkey, ADD PRIMARY KEY (account_id, id);

ALTER TABLE contact_list_members
    ADD PRIMARY KEY (account_id, list_id, contact_id),
    ADD FOREIGN KEY (account_id, list_id) REFERENCES contact_lists (account_id, id)
        ON DELETE CASCADE,
    ADD FOREIGN KEY (account_id, contact_id) REFERENCES contacts (account_id, id)
        ON DELETE CASCADE;
ALTER TABLE segment_members
    DROP CONSTRAINT segment_members_pkey,
    ADD PRIMARY KEY (account_id, segment_id, contact_id);
ALTER TABLE segment_pending_changes
    DROP CONSTRAINT segment_pending_changes_pkey,
    ADD PRIMARY KEY (account_id, segment_id, contact_id),
    ADD FOREIGN KEY (account_id, segment_id) REFERENCES segments (account_id, id)
        ON DELETE CASCADE;
ALTER TABLE segment_references
    DROP CONSTRAINT segment_references_pkey,
    ADD PRIMARY KEY (account_id, segment_id, referenced_segment_id),
    ADD FOREIGN KEY (account_id, segment_id) REFERENCES segments (account_id, id)
        ON DELETE CASCADE,
    ADD FOREIGN KEY (account_id, referenced_segment_id) REFERENCES segments (account_id, id)
        DEFERRABLE INITIALLY DEFERRED;

-- api_keys becomes a reference table (a key is looked up by its hash before its account is
-- known), and a reference table may not point at a distributed one: deleting an account
-- deletes its keys itself (worker/account_delete.py).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_account_id_fkey;

COMMIT;
