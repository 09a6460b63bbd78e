-- Simple-API segment numbers are per account (DESIGN.md 10.6): an account's first segment is
-- 1 whichever other accounts exist, and no account learns how many segments others have.
-- Existing segments are renumbered once, per account, in creation order.

-- The last number given out in the account. Numbers are never reused: a client still holding
-- the number of a deleted segment gets a 404, never another segment.
ALTER TABLE accounts ADD COLUMN last_segment_number bigint NOT NULL DEFAULT 0;

ALTER TABLE segments ALTER COLUMN number DROP IDENTITY;
ALTER TABLE segments DROP CONSTRAINT segments_number_key;

UPDATE segments s SET number = r.n
FROM (
    SELECT id, row_number() OVER (PARTITION BY account_id ORDER BY created_at, number) AS n
    FROM segments
) r
WHERE s.id = r.id AND s.number IS DISTINCT FROM r.n;

UPDATE accounts a SET last_segment_number = m.n
FROM (SELECT account_id, max(number) AS n FROM segments GROUP BY account_id) m
WHERE a.id = m.account_id;

-- Serves: the simple API's lookups by number (WHERE account_id = $1 AND number = $2) and its
-- list in number order (WHERE account_id = $1 ORDER BY number).
ALTER TABLE segments ADD CONSTRAINT segments_account_number_key UNIQUE (account_id, number);

-- Every insert takes the account's next number, whoever writes the row (the APIs, the
-- dashboard's backing API, tests). The UPDATE locks the account's row until the inserting
-- transaction ends, so concurrent creates in one account take turns and never collide;
-- creates in different accounts do not wait for each other.
CREATE FUNCTION segments_assign_number() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET last_segment_number = last_segment_number + 1
    WHERE id = NEW.account_id
    RETURNING last_segment_number INTO NEW.number;
    RETURN NEW;
END
$$;

CREATE TRIGGER segments_assign_number
    BEFORE INSERT ON segments
    FOR EACH ROW EXECUTE FUNCTION segments_assign_number();
