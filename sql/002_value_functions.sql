-- Readers of typed values, shared by every compiled segment query.
-- DESIGN.md 4.3: bad stored data never fails a build; a value that cannot be read as its
-- declared type is null. Python mirrors these rules in worker/rules/values.py and the
-- property tests check the two agree.

-- Lower-cased elements of a text array, nulls dropped; '{}' for null. List comparisons
-- ignore case. IMMUTABLE so the GIN index on contacts.tags can use it.
CREATE FUNCTION segments_lower_array(a text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(lower(e)) FILTER (WHERE e IS NOT NULL), '{}')
    FROM unnest(a) AS e
$$;

-- A custom text field: JSON strings only; '' is null.
CREATE FUNCTION segments_jsonb_text(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'string' THEN nullif(v #>> '{}', '') END
$$;

-- A custom number field: JSON numbers only (a string such as "42" is not a number).
CREATE FUNCTION segments_jsonb_number(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN v::numeric END
$$;

-- A custom boolean field: JSON true/false only.
CREATE FUNCTION segments_jsonb_boolean(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'boolean' THEN v::boolean END
$$;

-- A custom list field: the lower-cased string elements of a JSON array; other elements are
-- ignored; anything that is not an array reads as the empty list (= null).
CREATE FUNCTION segments_jsonb_list(v jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'array' THEN
        ARRAY(SELECT lower(e #>> '{}') FROM jsonb_array_elements(v) AS e
              WHERE jsonb_typeof(e) = 'string')
    ELSE '{}'::text[] END
$$;

-- An ISO 8601 date or date-time: YYYY-MM-DD, optionally [T ]HH:MM[:SS[.ffffff]] and an offset
-- (Z, +HH, +HHMM, +HH:MM). No offset means UTC; a bare date is midnight UTC. Anything else,
-- or an impossible calendar date, is null. Computed explicitly (not with a ::timestamptz
-- cast) so the session's TimeZone and DateStyle can never change the answer.
CREATE FUNCTION segments_parse_timestamptz(s text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    m text[];
    stamp timestamp;
    offset_minutes int := 0;
BEGIN
    m := regexp_match(s,
        '^([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])'
        '(?:[Tt ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(\.[0-9]{1,6})?)?'
        '(Z|z|([+-])(0[0-9]|1[0-4])(?::?([0-5][0-9]))?)?)?$');
    IF m IS NULL OR m[1] = '0000' THEN
        RETURN NULL;
    END IF;
    IF m[3]::int > extract(day FROM make_date(m[1]::int, m[2]::int, 1)
                                      + interval '1 month - 1 day') THEN
        RETURN NULL;
    END IF;
    stamp := make_timestamp(m[1]::int, m[2]::int, m[3]::int,
                            coalesce(m[4], '0')::int, coalesce(m[5], '0')::int, 0)
             + make_interval(secs => coalesce(m[6], '0')::int)
             + coalesce(('0' || m[7])::numeric, 0) * interval '1 second';
    IF m[9] IS NOT NULL THEN
        offset_minutes := (m[10]::int * 60 + coalesce(m[11], '0')::int)
                          * CASE m[9] WHEN '-' THEN -1 ELSE 1 END;
    END IF;
    stamp := stamp - make_interval(mins => offset_minutes);
    -- Years 1..9999 in UTC, as in Python (worker/rules/values.py): the two must agree.
    IF stamp < '0001-01-01 00:00:00' OR stamp >= '10000-01-01 00:00:00' THEN
        RETURN NULL;
    END IF;
    RETURN stamp AT TIME ZONE 'UTC';
END
$$;

-- A custom datetime field: a JSON string that parses as above; anything else is null.
CREATE FUNCTION segments_jsonb_timestamptz(v jsonb) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'string'
                THEN segments_parse_timestamptz(v #>> '{}') END
$$;

-- Serves: tags has_any / has_all (segments_lower_array(c.tags) && / @> $n).
CREATE INDEX contacts_tags_lower_idx ON contacts USING gin (segments_lower_array(tags));
