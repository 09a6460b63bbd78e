-- Time in a segment's timezone (docs/rules.md, timezones): calendar periods and anniversaries are
-- local to `timezone` (an IANA name, checked by the API against Python's zoneinfo).
ALTER TABLE segments ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';
-- True when the rules use calendar periods or anniversaries: the scheduler refreshes these
-- segments after each local midnight, besides the regular interval.
ALTER TABLE segments ADD COLUMN local_calendar boolean NOT NULL DEFAULT false;
-- Serves: the scheduler's scan for calendar segments whose local day has turned
-- (WHERE local_calendar AND status = 'DONE').
CREATE INDEX segments_local_calendar_idx ON segments (id) WHERE local_calendar AND status = 'DONE';
