-- Managing keys without SQL (`segments key ...`, /api/v2/keys): a key may carry a name, so
-- that a listing tells keys apart without showing them.
ALTER TABLE api_keys ADD COLUMN name text;
-- Serves: an account's keys, listed and revoked by account (WHERE account_id = $1), and the
-- account delete's removal of them.
CREATE INDEX api_keys_account_idx ON api_keys (account_id, created_at);
