-- Core tables of the database contract (DESIGN.md section 3).
-- The backing API writes accounts, lists, contacts, members, events and fields directly;
-- column names and meanings are the contract, indexes are ours.

CREATE TABLE accounts (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contact_lists (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Serves: validation that list ids in a rule belong to the account
-- (SELECT id FROM contact_lists WHERE account_id = $1 AND id = ANY($2)).
CREATE INDEX contact_lists_account_idx ON contact_lists (account_id, id);

CREATE TABLE contacts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email       text NOT NULL,
    name        text,
    first_name  text,
    last_name   text,
    company     text,
    status      text NOT NULL,
    country     text,
    city        text,
    language    text,
    tags        text[] NOT NULL DEFAULT '{}',
    isp_id      int,
    attributes  jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz DEFAULT now(),
    updated_at  timestamptz DEFAULT now()
);
-- Serves: contact upsert by email per account (INSERT ... ON CONFLICT (account_id, email)),
-- and every compiled segment query's account scan (WHERE c.account_id = $1).
CREATE UNIQUE INDEX contacts_account_email_key ON contacts (account_id, email);

CREATE TABLE contact_list_members (
    list_id    uuid NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    account_id uuid NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (list_id, contact_id)
);
-- Serves: per-contact membership probes of compiled queries (membership not_in anti-join,
-- incremental updates: m.contact_id = ANY($ids) AND m.account_id = $1) and the
-- ON DELETE CASCADE from contacts, which looks rows up by contact_id alone.
CREATE INDEX contact_list_members_contact_idx
    ON contact_list_members (contact_id, list_id) INCLUDE (account_id);

CREATE TABLE events (
    account_id  uuid NOT NULL,
    contact_id  uuid NOT NULL,
    type        text NOT NULL,
    campaign_id uuid,
    occurred_at timestamptz NOT NULL
);
-- Serves: windowed activity conditions scanned by metric and time
-- (e.account_id = $1 AND e.type = $2 AND e.occurred_at >= $3), index-only with contact and
-- campaign included, e.g. "opened in the last 30 days".
CREATE INDEX events_account_type_time_idx
    ON events (account_id, type, occurred_at) INCLUDE (contact_id, campaign_id);
-- Serves: per-contact event probes (never/count_lte anti-joins, derived fields like
-- last_open_at, incremental updates with e.contact_id = ANY($ids)).
CREATE INDEX events_account_contact_type_idx
    ON events (account_id, contact_id, type, occurred_at) INCLUDE (campaign_id);

CREATE TABLE isp_aliases (
    id      int PRIMARY KEY,
    name    text NOT NULL,
    domains text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE contact_fields (
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key        text NOT NULL,
    data_type  text NOT NULL
        CHECK (data_type IN ('text', 'number', 'datetime', 'boolean', 'list')),
    PRIMARY KEY (account_id, key)
);
