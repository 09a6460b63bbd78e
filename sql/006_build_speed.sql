-- Two changes for build speed, both measured in docs/benchmarks.md ("Worker").

-- 1. segment_members without a per-row foreign key check. The check locks the segment row
-- once per inserted member: 5 of the 9 seconds of a first build of 335,000 members. Members
-- are only ever written by builds and incremental updates, which hold their segment: a build
-- ends by updating the segment row for its generation (and rolls back if it is gone), an
-- incremental update locks the segment rows FOR KEY SHARE first. So a segment deleted at the
-- same time either waits for them and then takes their rows with it (the trigger below), or
-- is gone before they write. The trigger replaces ON DELETE CASCADE, once per statement.
ALTER TABLE segment_members DROP CONSTRAINT segment_members_segment_id_fkey;

CREATE FUNCTION segments_delete_members() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM segment_members
    WHERE segment_id IN (SELECT id FROM deleted_segments);
    RETURN NULL;
END
$$;

CREATE TRIGGER segments_delete_members
    AFTER DELETE ON segments
    REFERENCING OLD TABLE AS deleted_segments
    FOR EACH STATEMENT EXECUTE FUNCTION segments_delete_members();

-- 2. Statistics on the lower-cased text columns rules compare (`lower(c.status) = lower($n)`,
-- worker/compiler.py). Without them the planner takes any such condition to keep 0.5% of the
-- contacts: "subscribed" (85% of them) was estimated at 5,000 of 1,000,000 rows and the build
-- probed the events index 850,000 times instead of hashing (11.2 s against 2.1 s).
CREATE STATISTICS contacts_lower_status ON (lower(status)) FROM contacts;
CREATE STATISTICS contacts_lower_country ON (lower(country)) FROM contacts;
CREATE STATISTICS contacts_lower_city ON (lower(city)) FROM contacts;
CREATE STATISTICS contacts_lower_language ON (lower(language)) FROM contacts;
