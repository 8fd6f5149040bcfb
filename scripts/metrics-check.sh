#!/usr/bin/env bash
# Checks /metrics with `promtool check metrics` (Debian's prometheus package; installed when
# missing): the exposition parses and follows Prometheus's naming rules (counters end in _total,
# base units, help text). Starts the BUILT server on a free loopback port with a temporary data
# dir, registers two nodes (one with a pushed sample, one without), makes a failing request too,
# then scrapes once and fails on any problem promtool reports. The page scraped is kept in
# .build/metrics-check.txt.
#
#   BIN=$(swift build --show-bin-path) scripts/metrics-check.sh
#
# Env: BIN (directory holding ksmfleet-server; default: swift build --show-bin-path), TRACE=1 (set -x).
set -euo pipefail
[ -n "${TRACE:-}" ] && set -x
cd "$(dirname "$0")/.."

BIN="${BIN:-$(swift build --show-bin-path)}"
SERVER="$BIN/ksmfleet-server"
[ -x "$SERVER" ] || { echo "metrics-check: $SERVER is not built (swift build first)" >&2; exit 1; }

if ! command -v promtool >/dev/null 2>&1; then
  echo "metrics-check: installing Debian's prometheus package (for promtool)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a Prometheus server of its own where systemd runs; it is not needed here.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

WORK="$(mktemp -d -t ksmfleet-metrics.XXXXXX)"
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

export KSMFLEET_ADMIN_TOKEN="ka_metrics_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
"$SERVER" --host 127.0.0.1 --port 0 --data-dir "$WORK/data" --port-file "$WORK/port" --log-level warning \
  >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { echo "metrics-check: the server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }
BASE="http://127.0.0.1:$(tr -d '[:space:]' < "$WORK/port")"

api() {  # api METHOD PATH [JSON] [TOKEN]
  curl -sS --fail-with-body -X "$1" "$BASE$2" -H "Authorization: Bearer ${4:-$KSMFLEET_ADMIN_TOKEN}" \
    -H 'Content-Type: application/json' ${3:+--data "$3"}
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# /metrics needs no credential today. If it gets one (issue 14), send it here, e.g.
#   curl ... -H "Authorization: Bearer $KSMFLEET_ADMIN_TOKEN"
scrape() { curl -sS --fail-with-body "$BASE/metrics"; }

ENROLL="$(api POST /api/v1/enrollment-tokens '{"description":"metrics-check"}' | json '["token"]')"
register() {
  api POST /api/v1/register "{\"hostname\":\"$1\",\"machineId\":\"$1-machine\",\"kernel\":\"6.8\",\"memTotalBytes\":17179869184,\"numaNodes\":1,\"ksmFeatures\":[\"run\"],\"agentVersion\":\"metrics-check\",\"pageSize\":4096}" "$ENROLL"
}
REG="$(register sampled)"
NODE_ID="$(echo "$REG" | json '["nodeId"]')"
NODE_TOKEN="$(echo "$REG" | json '["nodeToken"]')"
register silent >/dev/null
NOW="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
api POST "/api/v1/nodes/$NODE_ID/samples" "{\"samples\":[{\"seq\":1,\"takenAt\":\"$NOW\",
  \"status\":{\"run\":1,\"pagesToScan\":100,\"sleepMillisecs\":20,\"pagesShared\":100,\"pagesSharing\":1000,
  \"pagesUnshared\":5000,\"pagesVolatile\":100,\"fullScans\":7},
  \"memory\":{\"memTotalKB\":16777216,\"memAvailableKB\":8388608,\"memFreeKB\":4194304,\"buffersKB\":0,
  \"cachedKB\":0,\"anonPagesKB\":4194304},
  \"pageSize\":4096,\"ksmdCPUPercent\":2.5,\"ksmdCPUSeconds\":12.25,\"phase\":\"Running\",
  \"phaseReason\":\"metrics-check\",\"appliedGeneration\":1}]}" "$NODE_TOKEN" >"$WORK/push.json" \
  || { echo "metrics-check: the sample push failed: $(cat "$WORK/push.json")" >&2; exit 1; }
curl -sS -o /dev/null "$BASE/api/v1/nodes" || true  # a 401, so a non-200 status is in the counters

scrape >"$WORK/metrics.txt"
mkdir -p .build && cp "$WORK/metrics.txt" .build/metrics-check.txt  # kept for a look afterwards
status=0
# promtool prints nothing and exits 0 when every family is fine.
if ! promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1 || [ -s "$WORK/promtool.out" ]; then
  echo "metrics-check: promtool check metrics found problems:" >&2
  cat "$WORK/promtool.out" >&2
  status=1
fi
# Guard against checking an empty or partial page: the series this check is about are there.
for series in ksmfleet_node_full_scans_total ksmfleet_node_ksmd_cpu_seconds_total ksmfleet_node_saved_bytes \
  ksmfleet_node_online ksmfleet_nodes ksmfleet_http_requests_total ksmfleet_samples_stored_total; do
  if ! grep -q "^$series[{ ]" "$WORK/metrics.txt"; then
    echo "metrics-check: /metrics has no $series series" >&2
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "--- /metrics as scraped:" >&2
  cat "$WORK/metrics.txt" >&2
  echo "metrics-check: FAILED" >&2
else
  echo "metrics-check: passed ($(grep -vc '^#' "$WORK/metrics.txt") series, promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}'))"
fi
exit "$status"
