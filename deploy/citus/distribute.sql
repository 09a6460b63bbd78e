-- Citus profile, step 2 of 2: distribute the data by account (run after keys.sql).
--
-- Every table with an account_id is distributed by it, all co-located with accounts (by its
-- id), so one account's rows of every table live on one shard group and every statement the
-- service sends (each pinned to one account; tests/statement_capture.py checks that over the
-- whole test suite) is routed to that group alone. Tables without an account are reference
-- tables (copied to every node) or stay on the coordinator.
CREATE EXTENSION IF NOT EXISTS citus;

-- Reference tables: small, read by every node.
SELECT create_reference_table('isp_aliases');
SELECT create_reference_table('api_keys');

-- Distributed by account, co-located.
SELECT create_distributed_table('accounts', 'id');
SELECT create_distributed_table('contacts', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('contact_lists', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('contact_list_members', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('events', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('contact_fields', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('segments', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('segment_members', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('segment_pending_changes', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('segment_references', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('segment_change_feeds', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('segment_membership_changes', 'account_id', colocate_with => 'accounts');
SELECT create_distributed_table('segment_count_history', 'account_id', colocate_with => 'accounts');

-- Kept on the coordinator: the outbox (one relay scan, FOR UPDATE SKIP LOCKED, across
-- accounts, which Citus does not run on distributed tables) and the migrations' ledger.
SELECT citus_add_local_table_to_metadata('outbox');
SELECT citus_add_local_table_to_metadata('schema_migrations');
