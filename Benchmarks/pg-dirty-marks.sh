#!/usr/bin/env bash
# The cost of the fleet-hour dirty marks on PostgreSQL: a transaction writing N rollup_hour-like
# rows of one hour, each firing a row trigger that marks the hour in a one-row-per-hour table, with
# the three marks the series has had (0001 DO NOTHING, 0007 DO UPDATE every time, 0008 DO UPDATE
# once per transaction). The mark row exists before, as it does once a fleet hour was written.
# Starts a throwaway server (scripts/postgres-test-server.sh, loopback) and stops it at the end.
#   Benchmarks/pg-dirty-marks.sh [N ...]     (default: 10000 40000)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$PWD/.build/postgres-bench-marks"
url=$(scripts/postgres-test-server.sh start "$dir")
trap 'scripts/postgres-test-server.sh stop "$dir" >/dev/null 2>&1 || true' EXIT
sizes=("$@"); [[ ${#sizes[@]} -gt 0 ]] || sizes=(10000 40000)
declare -A conflict=(
  [0001_do_nothing]="DO NOTHING"
  [0007_update_each]="DO UPDATE SET bucket_start = excluded.bucket_start"
  [0008_update_once]="DO UPDATE SET bucket_start = excluded.bucket_start WHERE d.xmin <> pg_current_xact_id()::xid"
)
printf '%-18s %8s %10s\n' mark rows seconds
for mark in 0001_do_nothing 0007_update_each 0008_update_once; do
  for n in "${sizes[@]}"; do
    ms=$(psql "$url" -qAt -v ON_ERROR_STOP=1 <<SQL | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_h, bench_d;
CREATE TABLE bench_d (bucket_start BIGINT PRIMARY KEY);
CREATE TABLE bench_h (node_id TEXT, bucket_start BIGINT, v DOUBLE PRECISION, PRIMARY KEY (node_id, bucket_start));
CREATE OR REPLACE FUNCTION bench_mark() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN INSERT INTO bench_d AS d (bucket_start) VALUES (NEW.bucket_start) ON CONFLICT (bucket_start) ${conflict[$mark]}; RETURN NULL; END; \$\$;
CREATE TRIGGER bench_t AFTER INSERT OR UPDATE ON bench_h FOR EACH ROW EXECUTE FUNCTION bench_mark();
INSERT INTO bench_d VALUES (3600);
\timing on
INSERT INTO bench_h SELECT 'n' || g, 3600, 1 FROM generate_series(1, $n) g;
SQL
)
    awk -v m="$mark" -v n="$n" -v ms="$ms" 'BEGIN { printf "%-18s %8s %10.3f\n", m, n, ms / 1000 }'
  done
done
