-- The service's own tables: segments, their materialised membership, API keys, the outbox.

CREATE TABLE segments (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The stable integer id of the simple API (/api/segments).
    number           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    account_id       uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name             text NOT NULL,
    color            text,
    description      text,
    -- The dialect the rules were written in ('v2', 'v1', 'simple') and the rules as written:
    -- the canonical tree is derived from them at every build, against the account's fields.
    dialect          text NOT NULL DEFAULT 'v2' CHECK (dialect IN ('v2', 'v1', 'simple')),
    rules            jsonb NOT NULL,
    contact_list_ids uuid[] NOT NULL DEFAULT '{}',
    display_fields   jsonb NOT NULL DEFAULT '[]',
    status           text NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'RUNNING', 'DONE', 'FAILED')),
    total_count      bigint,
    -- Bumped by every rules or list change; a build for an older generation must not write.
    generation       bigint NOT NULL DEFAULT 1,
    -- The generation whose membership is materialised (null before the first build).
    built_generation bigint,
    -- True when the rules depend on the clock (refreshed on a schedule).
    time_relative    boolean NOT NULL DEFAULT false,
    error_reason     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    build_started_at timestamptz,
    last_built_at    timestamptz,
    -- When the scheduler last asked for a refresh: it asks again only after an interval,
    -- so refreshes never pile up behind a slow queue.
    refresh_requested_at timestamptz
);
-- Serves: the v2 list ordered by updated_at (default) and the v1/simple lists per account.
CREATE INDEX segments_account_updated_idx ON segments (account_id, updated_at DESC, id);
-- Serves: the scheduler's scan of clock-dependent segments due for a refresh
-- (WHERE time_relative AND status = 'DONE' AND refresh_requested_at < ...).
CREATE INDEX segments_refresh_idx ON segments (refresh_requested_at) WHERE time_relative;
-- Serves: the scheduler's sweep for builds nobody is running
-- (WHERE status IN ('PENDING', 'RUNNING') AND updated_at < ...).
CREATE INDEX segments_unfinished_idx ON segments (updated_at)
    WHERE status IN ('PENDING', 'RUNNING');
-- Serves: incremental updates' list of an account's live segments
-- (WHERE account_id = $1 AND status IN ('DONE', 'RUNNING')).
CREATE INDEX segments_account_status_idx ON segments (account_id, status);

-- No foreign key to contacts, on purpose: a build inserts up to millions of rows and a
-- per-row FK check would dominate it, and a cascade would change membership behind
-- total_count's back. A deleted contact leaves its segments through the diff of the next
-- contact.changed or build; every reader joins contacts, so it never shows meanwhile.
CREATE TABLE segment_members (
    segment_id uuid NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL,
    account_id uuid NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, contact_id)
);
-- Serves: "which segments is this contact in" (support, and cleanup of deleted contacts).
CREATE INDEX segment_members_contact_idx ON segment_members (contact_id, segment_id);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- sha256 of the key; the key itself is shown once, at creation, and never stored.
    key_hash    bytea NOT NULL UNIQUE,
    -- The first characters of the key, so an operator can tell keys apart.
    key_prefix  text NOT NULL,
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    routing_key  text NOT NULL,
    body         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    attempts     int NOT NULL DEFAULT 0,
    last_error   text,
    sent_at      timestamptz
);
-- Serves: the relay's claim of unsent rows in order
-- (WHERE sent_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED).
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
