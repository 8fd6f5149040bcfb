#!/usr/bin/env bash
# Server benchmarks (ingest rate, long-poll capacity) on a release build. Results: docs/benchmarks.md.
#   Benchmarks/server-bench.sh [--only ingest|longpoll] [--waiters N]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product ksmfleet-server >/dev/null
exec python3 Benchmarks/server_bench.py --server "$(swift build -c release --show-bin-path)/ksmfleet-server" "$@"
