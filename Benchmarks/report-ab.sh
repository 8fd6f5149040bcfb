#!/usr/bin/env bash
# A/B timing of report queries: two release servers, each on its own copy of one filled data dir
# (e.g. Benchmarks/report-bench.sh's DATA, copied with `sqlite3 SRC ".backup DST/ksmfleet.sqlite"`),
# started together on loopback, requests alternating between them, so that the machine's drift
# hits both alike. Prints, per query, each server's median curl time_total over the last REPS of
# REPS+2 requests.
# Usage: Benchmarks/report-ab.sh SERVER_A DATA_A SERVER_B DATA_B 'by=node&since=-7d' ...
#   (a query is the savings report's; one that starts with / is a whole path, e.g.
#   '/api/v1/nodes/bench-00050/history?since=-365d&resolution=hour')
# env: REPS (10), DATABASE (a postgres:// URL both servers use, e.g. a database `migrate-data`
#      filled; each still needs a data dir of its own), DATABASE_A / DATABASE_B (one server's
#      own database instead, e.g. when B's migrations would change the schema A runs on: a copy
#      made with `CREATE DATABASE b TEMPLATE a`).
set -euo pipefail
[ $# -ge 5 ] || { sed -n 2,8p "$0"; exit 2; }
SA="$1" DA="$2" SB="$3" DB="$4"
shift 4
REPS="${REPS:-10}"
TOKEN="ka_ab$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
start() {
  rm -f "$2/port"
  KSMFLEET_ADMIN_TOKEN="$TOKEN" "$1" --host 127.0.0.1 --port 0 --data-dir "$2" --port-file "$2/port" \
    ${3:+--database "$3"} --log-level warning >"$2/server.log" 2>&1 &
  PIDS+=($!)
}
start "$SA" "$DA" "${DATABASE_A:-${DATABASE:-}}"
start "$SB" "$DB" "${DATABASE_B:-${DATABASE:-}}"
for d in "$DA" "$DB"; do for _ in $(seq 1 600); do [ -s "$d/port" ] && break; sleep 0.1; done; done
PA="$(cat "$DA/port")" PB="$(cat "$DB/port")"
# The rollup services' first passes (catch-up, peaks) run right after the start: let them settle.
sleep "${SETTLE:-20}"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_once() {
  local path="/api/v1/reports/savings?$2"
  [ "${2:0:1}" = / ] && path="$2"
  curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1$path"
}
echo "| query | A: $SA | B: $SB |"
echo "|---|---|---|"
for q in "$@"; do
  ta=() tb=()
  for i in $(seq 1 $((REPS + 2))); do
    ta+=("$(time_once "$PA" "$q")")
    tb+=("$(time_once "$PB" "$q")")
  done
  echo "| $q | $(printf '%s\n' "${ta[@]:2}" | median) | $(printf '%s\n' "${tb[@]:2}" | median) |"
done
