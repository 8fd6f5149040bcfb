#!/usr/bin/env bash
# Fleet simulator (a benchmark, not a test): N simulated agents register, hold config long-polls
# and push a sample every --interval s (60 by default) against a release ksmfleet-server on a
# fresh data dir, loopback only; prints nodes, pushes, errors, lost samples, push latency, the
# spread of one fleet-wide config change, and the server's CPU and RSS per 10,000 nodes.
# Results: docs/benchmarks.md, "Fleet simulator".
#   Benchmarks/fleet-sim.sh [--nodes 1000] [--interval 60] [--steady 75] [--after 20]
#   Benchmarks/fleet-sim.sh --find-max [--start 2500] [--step 2500] [--max-steps 6]
#   Benchmarks/fleet-sim.sh --postgres postgres://postgres@127.0.0.1:PORT/postgres --replicas 2 --nodes 10000
#     (PostgreSQL: a fresh database per run, dropped after, R replicas on it, node i on replica
#     i % R; also measures the PostgreSQL server's processes; R ≥ nodes / 9,000, the file limit)
#   --no-metrics: count the held long-polls in the simulator instead of scraping /metrics (a first
#     scrape of a 10,000-node fleet kept a server busy for ~50 s until the per-node series were
#     written straight into the text; ~1 s a scrape since: docs/benchmarks.md)
#   (python3 Benchmarks/fleet_sim.py --help for the rest)
# SCRATCH_PATH=.build-x builds into that scratch directory instead of .build (parallel builds).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=(--scratch-path "${SCRATCH_PATH:-.build}")
swift build -c release "${scratch[@]}" --product ksmfleet-server >/dev/null
echo "uptime before: $(uptime)" >&2
status=0
python3 Benchmarks/fleet_sim.py --server "$(swift build -c release "${scratch[@]}" --show-bin-path)/ksmfleet-server" "$@" || status=$?
echo "uptime after: $(uptime)" >&2
exit $status
