-- Indexes on the lower-cased text columns that rules compare (text compares ignoring case,
-- docs/rules.md), in the very form the compiler writes them (worker/compiler/operators.py).
-- Custom plans fold the lowered values to constants, so a selective condition reads its
-- contacts through the index instead of lower-casing two columns of every contact of the
-- account. Measured in docs/benchmarks.md ("Compiled SQL at the limit", shapes a and s).
-- Statistics on these expressions already exist (006); an index brings the same ones.

-- Serves: country conditions of compiled queries, e.g. "country in [de, at, ch]"
-- (c.account_id = $1 AND lower(c.country) = ANY(segments_lower_array($n))).
CREATE INDEX contacts_account_lower_country_idx ON contacts (account_id, lower(country));

-- Serves: status conditions of compiled queries, e.g. "status equals bounced"
-- (c.account_id = $1 AND lower(c.status) = lower($n)).
CREATE INDEX contacts_account_lower_status_idx ON contacts (account_id, lower(status));
