#!/usr/bin/env bash
# Server benchmarks (ingest rate, long-poll capacity) on a release build. Results: docs/benchmarks.md.
#   Benchmarks/server-bench.sh [--only ingest|longpoll] [--waiters N]
# SCRATCH_PATH=.build-x builds into that scratch directory instead of .build (parallel builds).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=(--scratch-path "${SCRATCH_PATH:-.build}")
swift build -c release "${scratch[@]}" --product ksmfleet-server >/dev/null
exec python3 Benchmarks/server_bench.py --server "$(swift build -c release "${scratch[@]}" --show-bin-path)/ksmfleet-server" "$@"
