-- segment_members is read index-only (015), but an index-only read visits the heap for every
-- entry on a page that the visibility map does not mark all-visible, and for every entry of
-- a dead row; only a vacuum sets the map and removes the dead. Change batches move members
-- of random contacts all over the table. By default autovacuum waits until 20% of the table
-- is dead rows (or inserted rows): on a table of 24 million members, about 5 million. Until
-- then the change statement reads more and more through the heap: a batch of 1,000 changed
-- contacts in 1,000 segments executed in 3.05 s after 40 s of changes at 300 contacts/s
-- (192,000 dead rows), 2.83 s after an ANALYZE, 1.36 s after a VACUUM (docs/benchmarks.md,
-- "Vacuuming segment_members sooner"). With these settings autovacuum comes after 10,000
-- rows plus 1% of the table, checked every minute (its naptime); a vacuum reads only the
-- pages not all-visible.
ALTER TABLE segment_members SET (
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0.01
);
