#!/usr/bin/env bash
# Server benchmarks (ingest rate, long-poll capacity, /metrics scrapes, an operator's pages, registrations as the fleet grows) on a release build. Results: docs/benchmarks.md.
#   Benchmarks/server-bench.sh [--only ingest|push|longpoll|scrape|pages|register] [--waiters N] [--scrape-nodes N] [--batches 1,10,100,1000]
#                              [--register-nodes 20000] [--register-block 2500]
#                              [--seconds 10] [--connections 16] [--driver wrk|python]
# The ingest load comes from wrk (Debian package `wrk`; `make bench-server` installs it) when it is
# installed, else from the Python asyncio client.
# SCRATCH_PATH=.build-x builds into that scratch directory instead of .build (parallel builds).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=(--scratch-path "${SCRATCH_PATH:-.build}")
swift build -c release "${scratch[@]}" --product ksmfleet-server >/dev/null
exec python3 Benchmarks/server_bench.py --server "$(swift build -c release "${scratch[@]}" --show-bin-path)/ksmfleet-server" "$@"
