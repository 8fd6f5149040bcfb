#!/usr/bin/env bash
# Savings-report benchmark: 1,000 nodes x one year of hourly history; the fleet report for a
# year must come back in under 0.5 s. Builds the release server, fills a database, starts the
# server on a free loopback port and times the report over HTTP (median of 5).
# Usage: Benchmarks/report-bench.sh [NODES] [DAYS]   (env SCRATCH: SwiftPM scratch path)
set -euo pipefail
cd "$(dirname "$0")/.."
NODES="${1:-1000}"
DAYS="${2:-365}"
SCRATCH="${SCRATCH:-.build}"
swift build -c release --scratch-path "$SCRATCH" --product ksmfleet-server >/dev/null
BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)"
DATA="$(mktemp -d /tmp/ksmfleet-bench.XXXXXX)"
TOKEN="ka_bench$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
start_server() {
  rm -f "$DATA/port"
  KSMFLEET_ADMIN_TOKEN="$TOKEN" "$BIN/ksmfleet-server" --host 127.0.0.1 --port 0 --data-dir "$DATA" \
    --port-file "$DATA/port" --log-level warning >"$DATA/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 200); do [ -s "$DATA/port" ] && break; sleep 0.1; done
  PORT="$(cat "$DATA/port")"
}
stop_server() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
# KEEP=1 keeps the filled data dir (printed) for profiling.
trap 'kill "$PID" 2>/dev/null || true; if [ "${KEEP:-0}" = 1 ]; then echo "kept $DATA"; else rm -rf "$DATA"; fi' EXIT
start_server; stop_server   # creates the schema
echo "filling $NODES nodes x $DAYS days of hourly rollups..."
python3 Benchmarks/report_bench.py fill "$DATA/ksmfleet.sqlite" --nodes "$NODES" --days "$DAYS"
SIZE="$(du -sh "$DATA/ksmfleet.sqlite" | cut -f1)"
start_server
time_query() {
  local times=()
  for _ in 1 2 3 4 5; do
    times+=("$(curl -s -o "$DATA/out" -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1")")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p
}
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/reports/savings?since=-${DAYS}d"  # warm-up
echo "database: $SIZE ($NODES nodes, $DAYS days hourly)"
echo "fleet report, by node, ${DAYS} d: $(time_query "/api/v1/reports/savings?since=-${DAYS}d&by=node") s (median of 5)"
echo "  rows: $(python3 -c "import json;d=json.load(open('$DATA/out'));print(len(d['rows']), 'nodes; fleet avg saved', round(d['total']['avgSavedBytes']/2**30,1), 'GiB; coverage', round(d['total']['coverage'],4))")"
echo "fleet report, by label, ${DAYS} d: $(time_query "/api/v1/reports/savings?since=-${DAYS}d&by=label&label=rack") s"
echo "fleet report, CSV, ${DAYS} d: $(time_query "/api/v1/reports/savings?since=-${DAYS}d&format=csv") s"
echo "fleet report, by node, 30 d: $(time_query "/api/v1/reports/savings?since=-30d&by=node") s"
stop_server
# RAW_NODES=N: also raw samples for the last 24 h on N nodes (every RAW_INTERVAL s, default 10),
# and the 24 h report that reads them for exact group peaks (docs/numbers.md, "Peak").
if [ "${RAW_NODES:-0}" -gt 0 ]; then
  python3 Benchmarks/report_bench.py fill-raw "$DATA/ksmfleet.sqlite" --nodes "$RAW_NODES" --interval "${RAW_INTERVAL:-10}"
  start_server
  FIRST="$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/reports/savings?since=-1h")"
  echo "rolling up the raw samples (first report): $FIRST s"
  echo "fleet report, by node, 24 h, exact peaks from $RAW_NODES nodes' raw samples: $(time_query "/api/v1/reports/savings?since=-24h&by=node") s"
  echo "  peak basis: $(python3 -c "import json;d=json.load(open('$DATA/out'));print(d['total'].get('peakBasis'), round(d['total']['peakSavedBytes']/2**30,2), 'GiB')")"
  echo "fleet report, by node, 25 h (rollup peaks): $(time_query "/api/v1/reports/savings?since=-25h&by=node") s"
  stop_server
fi
