#!/usr/bin/env bash
# Report benchmark: 1,000 nodes x one year of hourly history (plus raw samples for the last 24 h
# and per-day process savings); every report and history query shape must answer in < 100 ms.
# Builds the release server, fills a database, starts the server on a free loopback port and
# times every query shape over HTTP (first request, then median of REPS), with the server's own
# CPU time per query; prints a table.
# Usage: Benchmarks/report-bench.sh [NODES] [DAYS]
# env: SCRATCH (SwiftPM scratch path), RAW_NODES (nodes with raw samples for the last 24 h,
#      default all; 0 for none), RAW_INTERVAL (s; default 0 = 10..60 s by node), REPS (5),
#      DATA (a data dir to fill, or to reuse when it holds a filled database: its raw samples
#      then end where they ended when it was filled), KEEP=1 (keep the data dir), OUT (table file),
#      SERVER (a server binary to time instead of building this checkout's), ONCE (a regex: the
#      query shapes it matches are timed once, e.g. ONCE=24h where they take a minute),
#      POSTGRES (a PostgreSQL server URL, e.g. the one scripts/postgres-test-server.sh prints:
#      the filled SQLite database is copied with `ksmfleet-server migrate-data` into a new
#      database there, and the server is timed on it; the server's CPU column then leaves out
#      PostgreSQL's own). After the catch-up it waits (up to 15 min) until the rollup service has
#      stored the exact fleet peak and the raw sample pack of every hour the raw samples reach,
#      the label groups' sums of every hour, and folded the fleet day row (rollup_fleet_day) of
#      every day that is over again (sqlite3 or psql reads it).
set -euo pipefail
cd "$(dirname "$0")/.."
NODES="${1:-1000}"
DAYS="${2:-365}"
SCRATCH="${SCRATCH:-.build}"
RAW_NODES="${RAW_NODES:-$NODES}"
if [ -z "${SERVER:-}" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product ksmfleet-server >/dev/null
  SERVER="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/ksmfleet-server"
fi
if [ -n "${DATA:-}" ]; then mkdir -p "$DATA"; KEEP=1; else DATA="$(mktemp -d /tmp/ksmfleet-bench.XXXXXX)"; fi
TOKEN="ka_bench$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PID=""
DB_ARGS=()
start_server() {
  rm -f "$DATA/port"
  KSMFLEET_ADMIN_TOKEN="$TOKEN" "$SERVER" --host 127.0.0.1 --port 0 --data-dir "$DATA" "${DB_ARGS[@]}" \
    --port-file "$DATA/port" --log-level warning >"$DATA/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do [ -s "$DATA/port" ] && break; sleep 0.1; done
  PORT="$(cat "$DATA/port")"
}
stop_server() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null || true; if [ "${KEEP:-0}" = 1 ]; then echo "kept $DATA"; else rm -rf "$DATA"; fi' EXIT
if [ ! -e "$DATA/filled" ]; then
  start_server; stop_server   # creates the schema
  echo "filling $NODES nodes x $DAYS days of hourly rollups..."
  python3 Benchmarks/report_bench.py fill "$DATA/ksmfleet.sqlite" --nodes "$NODES" --days "$DAYS"
  if [ "$RAW_NODES" -gt 0 ]; then
    python3 Benchmarks/report_bench.py fill-raw "$DATA/ksmfleet.sqlite" --nodes "$RAW_NODES" \
      --interval "${RAW_INTERVAL:-0}"
  fi
  echo "$NODES nodes, $DAYS days, raw samples for $RAW_NODES nodes, filled $(date -u +%FT%TZ)" >"$DATA/filled"
fi
if [ -n "${POSTGRES:-}" ]; then
  db="ksmfleet_bench_$$"
  psql "$POSTGRES" -qc "CREATE DATABASE $db"
  # The database swapped in, the parameters (sslmode) kept.
  base="${POSTGRES%%\?*}"
  DB_URL="${base%/*}/$db${POSTGRES#"$base"}"
  echo "copying into PostgreSQL ($db)..."
  time "$SERVER" migrate-data --from "sqlite:$DATA/ksmfleet.sqlite" --to "$DB_URL"
  DB_ARGS=(--database "$DB_URL")
  trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null || true; psql "$POSTGRES" -qc "DROP DATABASE IF EXISTS $db" || true; if [ "${KEEP:-0}" = 1 ]; then echo "kept $DATA"; else rm -rf "$DATA"; fi' EXIT
fi
start_server
# The first request after the fill rolls the raw samples up (the rollup service's catch-up): timed
# apart, it is not a report's cost.
echo "catch-up (first request, rolls up raw samples): $(curl -s -o /dev/null -w '%{time_total}' \
  -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/reports/savings?since=-1h") s"
# A running server's rollup service stores the exact fleet peak of every hour that ended (a day of
# hours every 10 s) once it has been over for 300 s (maxGapSeconds: until then a live node's next
# sample still changes it), with the pack of the hour's raw samples (raw_hour_pack) from the same
# read, folds the fleet row of every day that is over, and stores the label groups' sums of every
# hour (rollup_label_sum; 1,000 hours every 10 s, newest first): wait for them, as a server that
# has been up a while has them, and time apart. A fill has none of them, and the shapes timed
# would otherwise share the CPU with their making: about 24 packs of 0.2-0.3 s of CPU each, and
# the label sums of a year of hours, about 90 s of work (what made the 365-day tables of
# 2026-12-03 slower than the 2-day ones: docs/benchmarks.md).
pending() {
  local sql="SELECT (SELECT COUNT(*) FROM rollup_fleet_hour f WHERE (peak_known = 0
      OR NOT EXISTS (SELECT 1 FROM raw_hour_pack p WHERE p.bucket_start = f.bucket_start
        AND p.peak_version = f.peak_version))
    AND bucket_start >= ((SELECT MIN(taken_at) FROM samples) / 1000 - 300) / 3600 * 3600
    AND bucket_start <= (SELECT MAX(taken_at) FROM samples) / 1000 - 3600 - 300
    AND bucket_start NOT IN (SELECT bucket_start FROM rollup_fleet_dirty))
    + (SELECT COUNT(*) FROM rollup_fleet_day_dirty WHERE bucket_start < $(( $(date +%s) / 86400 * 86400 )))
    + (SELECT COUNT(*) FROM rollup_fleet_hour WHERE label_sums_known = 0
        AND bucket_start < COALESCE((SELECT MAX(taken_at) FROM samples) / 1000 / 3600 * 3600,
          $(( $(date +%s) / 3600 * 3600 )))
        AND bucket_start NOT IN (SELECT bucket_start FROM rollup_fleet_dirty))"
  if [ -n "${POSTGRES:-}" ]; then psql "$DB_URL" -Atc "$sql"; else sqlite3 "$DATA/ksmfleet.sqlite" "$sql"; fi
}
t0=$(date +%s)
while [ "$(pending)" != 0 ] && [ $(( $(date +%s) - t0 )) -lt 900 ]; do sleep 5; done
echo "fleet hour peaks, hour packs, label sums and fleet day rows stored after $(( $(date +%s) - t0 )) s ($(pending) hours and days left)"
stop_server
start_server
echo "database: $(du -sh "$DATA/ksmfleet.sqlite" | cut -f1) ($(cat "$DATA/filled"))${POSTGRES:+, on PostgreSQL}; $(uptime)"
python3 Benchmarks/report_bench.py time "http://127.0.0.1:$PORT" "$TOKEN" "$PID" --reps "${REPS:-5}" \
  --days "$DAYS" ${OUT:+--out "$OUT"} ${ONCE:+--once "$ONCE"}
echo "after: $(uptime)"
stop_server
