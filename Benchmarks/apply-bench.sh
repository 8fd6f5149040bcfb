#!/usr/bin/env bash
# A fleet-wide change alone, on PostgreSQL: N nodes inserted by SQL, all with one config (as a
# fleet made with the standard config is), then ROUNDS changes of `thresCoef` to all of them
# (`POST /api/v1/config/apply {"all": true}`, alternating values), each timed from the request to
# its answer. Prints for each: the request's seconds, the server's CPU seconds for it, and what the
# audit trail grew by (rows of audit_log and audit_nodes, and bytes of both tables with their
# indexes). No node holds a long-poll: the apply's own cost, not the wake-up's.
# With several server binaries (for example the build before a change and after it), each round
# runs every binary in turn, each on a fresh database.
# Starts a throwaway PostgreSQL (scripts/postgres-test-server.sh, loopback) and stops it at the end.
# APPLY_BENCH_PERF=DIR records each apply's server with `perf record -g` (DIR/<binary>-<round>.data).
# APPLY_BENCH_STATEMENTS=1 prints PostgreSQL's time for each kind of statement of each apply
# (log_min_duration_statement = 0 on the bench's database; parse, bind and execute added up).
# APPLY_BENCH_SETTLE=S keeps counting the server's CPU (and recording it) for S seconds after the
# answer: the apply's notifications come back to the server from LISTEN after its commit, and are
# heard then (default 0: the request alone).
#   Benchmarks/apply-bench.sh [--nodes N] [--rounds R] SERVER_BINARY...   (default: 30000 nodes, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=30000
rounds=3
servers=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) servers+=("$1"); shift ;;
  esac
done
[ ${#servers[@]} -gt 0 ] || { echo "usage: $0 [--nodes N] [--rounds R] SERVER_BINARY..." >&2; exit 2; }

dir="$PWD/.build/postgres-bench-apply"
url=$(scripts/postgres-test-server.sh start "$dir")
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
  scripts/postgres-test-server.sh stop "$dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT
# The database swapped in, the parameters (sslmode) kept.
base="${url%%\?*}"
db="${base%/*}/bench_apply${url#"$base"}"
token="ka_bench_apply_$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"

# The server's CPU seconds (user + system, from /proc; clock ticks of 1/100 s).
cpu() { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"; }
sql() { psql "$db" -qAt -v ON_ERROR_STOP=1 -c "$1"; }

cpu_head="server CPU s"
[ "${APPLY_BENCH_SETTLE:-0}" = 0 ] || cpu_head="CPU s (+${APPLY_BENCH_SETTLE} s)"
printf '%-40s %5s %7s %9s %8s %11s %12s %10s\n' server round nodes changed "apply s" "$cpu_head" "audit rows" "audit KiB"
for round in $(seq 1 "$rounds"); do
  for bin in "${servers[@]}"; do
    PGOPTIONS="-c client_min_messages=warning" psql "$url" -qAt -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS bench_apply" -c "CREATE DATABASE bench_apply" >/dev/null
    rm -rf "$work/data" && mkdir -p "$work/data"
    [ -z "${APPLY_BENCH_STATEMENTS:-}" ] || psql "$url" -qAt -c "ALTER DATABASE bench_apply SET log_min_duration_statement = 0" >/dev/null
    KSMFLEET_ADMIN_TOKEN=$token "$bin" serve --data-dir "$work/data" --database "$db" --port 0 --log-level warning \
      > "$work/server.log" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 1 300); do
      port=$(ss -Htlnp 2>/dev/null | awk -v p="pid=$pid," '$0 ~ p { n = split($4, a, ":"); print a[n]; exit }')
      [ -n "$port" ] && curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
      port=
      sleep 0.2
    done
    [ -n "$port" ] || { echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
    sql "INSERT INTO nodes (id, name, machine_id, kernel, mem_total_bytes, numa_nodes, agent_version, registered_at, ksm_features)
           SELECT 'n-' || lpad(to_hex(i), 12, '0'), 'node-' || i, 'm-' || i, '6.1.0', 8589934592, 1, 'bench', 0,
                  '[\"run\",\"pages_to_scan\",\"advisor_mode\"]'
           FROM generate_series(1, $nodes) i;
         INSERT INTO node_configs (node_id, generation, config_json, updated_at, updated_by)
           SELECT 'n-' || lpad(to_hex(i), 12, '0'), 1, '{\"mode\":\"standard\",\"run\":\"stop\",\"thresCoef\":20}', 0, 'bench'
           FROM generate_series(1, $nodes) i;
         ANALYZE;" >/dev/null
    rows_before=$(sql "SELECT (SELECT COUNT(*) FROM audit_log) + COALESCE((SELECT COUNT(*) FROM audit_nodes), 0)" 2>/dev/null \
      || sql "SELECT COUNT(*) FROM audit_log")
    size() {
      sql "SELECT pg_total_relation_size('audit_log') + COALESCE(pg_total_relation_size(to_regclass('audit_nodes')), 0)"
    }
    bytes_before=$(size)
    perf_pid=
    if [ -n "${APPLY_BENCH_PERF:-}" ]; then
      mkdir -p "$APPLY_BENCH_PERF"
      perf record -q -F 1999 -g -p "$pid" -o "$APPLY_BENCH_PERF/$(basename "$bin")-$round.data" 2>/dev/null &
      perf_pid=$!
      sleep 1
    fi
    log_from=$(stat -L -c %s "$dir/postgres.log")
    cpu_before=$(cpu "$pid")
    start=$(date +%s.%N)
    curl -fsS -o "$work/answer.json" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d "{\"all\":true,\"change\":{\"thresCoef\":$((20 + round))}}" "http://127.0.0.1:$port/api/v1/config/apply"
    end=$(date +%s.%N)
    sleep "${APPLY_BENCH_SETTLE:-0}"
    cpu_after=$(cpu "$pid")
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; fi
    changed=$(grep -o '"status":"changed"' "$work/answer.json" | wc -l)
    rows_after=$(sql "SELECT (SELECT COUNT(*) FROM audit_log) + COALESCE((SELECT COUNT(*) FROM audit_nodes), 0)" 2>/dev/null \
      || sql "SELECT COUNT(*) FROM audit_log")
    bytes_after=$(size)
    if [ -n "${APPLY_BENCH_STATEMENTS:-}" ]; then
      # The apply's statements: what the log grew by during the request.
      tail -c +"$((log_from + 1))" "$dir/postgres.log" | python3 -c '
import re, sys
kinds = {}
for line in sys.stdin:
    m = re.search(r"duration: ([0-9.]+) ms\s+(?:parse|bind|execute|statement)[^:]*: (.*)", line)
    if not m:
        continue
    words = re.sub(r"\s+", " ", m.group(2)).split(" ")
    key = " ".join(words[:4])[:48]
    n, ms = kinds.get(key, (0, 0.0))
    kinds[key] = (n + 1, ms + float(m.group(1)))
for key, (n, ms) in sorted(kinds.items(), key=lambda kv: -kv[1][1])[:12]:
    print(f"    {ms:9.1f} ms {n:6d} log entries (parse, bind, execute)  {key}")
'
    fi
    printf '%-40s %5s %7s %9s %8.3f %11.2f %12s %10s\n' "$(basename "$bin")" "$round" "$nodes" "$changed" \
      "$(echo "$end - $start" | bc)" "$(echo "$cpu_after - $cpu_before" | bc)" "$((rows_after - rows_before))" \
      "$(((bytes_after - bytes_before) / 1024))"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
  done
done
