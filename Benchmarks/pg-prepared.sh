#!/usr/bin/env bash
# What PostgreSQL spends on the server's hot statements sent unnamed (parsed, analysed and planned
# on every call: what postgres-nio does with a plain query) against prepared (`PreparedStatements`):
# pgbench's `-M extended` and `-M prepared` on
#   push: an agent's lone sample push as the server writes it on PostgreSQL (BEGIN … REPEATABLE
#         READ, the node's last seq, the 29-column INSERT, the node's UPDATE … RETURNING, COMMIT:
#         the text of SampleSQL.lastSeq / insert / updateNodeReturning);
#   poll: a long-poll's config read (FleetDatabase.config, one statement outside a transaction).
# over 10,000 nodes with 5 samples each, on the schema of migrations/postgres/. Prints
# transactions per second and PostgreSQL's CPU per transaction (its processes' user + system
# time, exited backends included, over the run). 4 clients, 2 pgbench threads.
# Starts a throwaway server (scripts/postgres-test-server.sh, loopback) and stops it at the end.
#   Benchmarks/pg-prepared.sh [SECONDS [ROUNDS]]     (default: 10 3)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-3}
dir="$PWD/.build/postgres-bench-prepared"
url=$(scripts/postgres-test-server.sh start "$dir")
trap 'scripts/postgres-test-server.sh stop "$dir" >/dev/null 2>&1 || true' EXIT
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d)
trap 'rm -rf "$work"; scripts/postgres-test-server.sh stop "$dir" >/dev/null 2>&1 || true' EXIT

# The database swapped in, the parameters (sslmode) kept.
base="${url%%\?*}"
db="${base%/*}/bench_prepared${url#"$base"}"
psql "$url" -qAt -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS bench_prepared" -c "CREATE DATABASE bench_prepared" >/dev/null
for f in migrations/postgres/*.sql; do psql "$db" -qAt -v ON_ERROR_STOP=1 -f "$f" >/dev/null; done
psql "$db" -qAt -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
INSERT INTO nodes (id, name, machine_id, kernel, mem_total_bytes, numa_nodes, agent_version, registered_at, last_seq)
  SELECT i::text, 'n' || i, 'm' || i, '6.1', 1, 1, '1', 0, 5 FROM generate_series(1, 10000) i;
INSERT INTO node_configs (node_id, generation, config_json, updated_at, updated_by)
  SELECT i::text, 1, '{"run":"stop","sleepMillisecs":20,"thresCoef":20}', 0, 'bench' FROM generate_series(1, 10000) i;
INSERT INTO samples (node_id, seq, taken_at, received_at, phase, page_size, saved_bytes, sample_json)
  SELECT i::text, s, s * 1000, s * 1000, 'running', 4096, 0, '{}' FROM generate_series(1, 10000) i, generate_series(1, 5) s;
ANALYZE;
SQL

# pgbench passes :variables as parameters of unspecified type (the server infers them from the
# columns, as it does for the store's declared ones); seqs are random, so a few pushes are
# duplicates (ON CONFLICT DO NOTHING), as a retried push is.
cat > "$work/push.sql" <<'SQL'
\set n random(1, 10000)
\set seq random(6, 1000000000000)
\set t random(1, 1000000000000)
\set v random(0, 100000)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT last_seq FROM nodes WHERE id = :n AND deleted_at IS NULL;
INSERT INTO samples (node_id, seq, taken_at, received_at, phase, phase_reason, run, pages_to_scan, sleep_millisecs, pages_shared, pages_sharing, pages_unshared, pages_volatile, full_scans, stable_node_chains, stable_node_dups, ksm_zero_pages, general_profit, mem_total_kb, mem_available_kb, anon_pages_kb, page_size, saved_bytes, ksmd_cpu_percent, ksmd_cpu_seconds, applied_generation, apply_error, sample_json, ends_data) VALUES (:n, :seq, :t, :t, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v, :v) ON CONFLICT DO NOTHING;
UPDATE nodes SET last_seen_at = :t, phase = :v, phase_reason = :v, applied_generation = :v, apply_error = :v, last_seq = (SELECT MAX(seq) FROM samples WHERE node_id = :n), last_sample_json = :v, page_size = :v WHERE id = :n RETURNING last_seq;
COMMIT;
SQL
cat > "$work/poll.sql" <<'SQL'
\set n random(1, 10000)
SELECT c.generation, c.kick_counter, c.config_json FROM node_configs c JOIN nodes n ON n.id = c.node_id WHERE c.node_id = :n AND n.deleted_at IS NULL;
SQL

# CPU ticks of the server: the postmaster's own and its reaped children's, and its live children's.
pg_ticks() {
  local pm sum=0 f
  pm=$(head -1 "$(data="$dir/data"; source "$dir/location" 2>/dev/null; echo "$data")/postmaster.pid")
  read -r -a f < <(cut -d' ' -f14-17 "/proc/$pm/stat")
  sum=$((f[0] + f[1] + f[2] + f[3]))
  for p in $(pgrep -P "$pm"); do
    read -r -a f < <(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null || echo "0 0")
    sum=$((sum + f[0] + f[1]))
  done
  echo "$sum"
}
hz=$(getconf CLK_TCK)

printf '%-5s %-9s %5s %10s %8s %18s\n' what mode round txns tps "pg_cpu_ms_per_txn"
for round in $(seq 1 "$rounds"); do
  for what in push poll; do
    for mode in extended prepared; do
      before=$(pg_ticks)
      out=$("$PG_BIN/pgbench" -n -c 4 -j 2 -T "$seconds" -M "$mode" -f "$work/$what.sql" -d "$db" 2>&1)
      after=$(pg_ticks)
      txns=$(awk '/number of transactions actually processed/ { split($NF, a, "/"); print a[1] }' <<<"$out")
      tps=$(awk '/^tps/ { printf "%.0f", $3 }' <<<"$out")
      awk -v w="$what" -v m="$mode" -v r="$round" -v n="$txns" -v t="$tps" -v d="$((after - before))" -v hz="$hz" \
        'BEGIN { printf "%-5s %-9s %5d %10d %8d %18.3f\n", w, m, r, n, t, d * 1000 / hz / n }'
    done
  done
done
