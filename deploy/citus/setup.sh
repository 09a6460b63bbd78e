#!/bin/sh
# One-shot setup of the Citus profile (deploy/compose.citus.yaml), run after `segments
# migrate`: register the workers, then, only the first time, keys.sql and distribute.sql.
set -eu
psql_() { psql -v ON_ERROR_STOP=1 -h postgres -U segments -d segments "$@"; }
psql_ -c "SELECT citus_set_coordinator_host('postgres', 5432)"
for worker in citus-worker-1 citus-worker-2; do
  psql_ -c "SELECT citus_add_node('$worker', 5432) WHERE NOT EXISTS (
              SELECT 1 FROM pg_dist_node WHERE nodename = '$worker')"
done
if [ "$(psql_ -Atc 'SELECT count(*) FROM pg_dist_partition')" = "0" ]; then
  psql_ -f /citus/keys.sql
  psql_ -f /citus/distribute.sql
fi
