#!/usr/bin/env bash
# The PostgreSQL pass of `make test`: the store and server suites (and the replica and failover
# tests) again, on PostgreSQL, in two halves at once, each half one test at a time against a
# throwaway PostgreSQL server of its own (scripts/postgres-test-server.sh), both stopped at the end
# whatever the result.
#
#   scripts/postgres-pass.sh BIN_DIR PG_DIR SUITES SKIP SECOND
#
# BIN_DIR holds the built ksmfleetPackageTests.xctest (`swift build --show-bin-path`); PG_DIR the
# two servers' directories (PG_DIR/a, PG_DIR/b). SUITES and SKIP are the regular expressions of
# the pass (`--filter`, `--skip`); SECOND picks the second half among them and must pick nothing
# SUITES does not (anchor it: `FleetStoreTests\.RollupPassTests/`, not `RollupPassTests`). The
# first half is SUITES without SKIP and without SECOND, the second SECOND without SKIP: between
# them every test of the pass runs once.
#
# Why halves: one test at a time, the pass kept 1.06 of this machine's 2 cores busy (the test
# process decoding rows in a debug build, then waiting on PostgreSQL; 483 core-seconds in
# 458 s). Why a server each: the outage tests freeze their server (SIGSTOP), which must not
# stall the other half's tests.
#
# The test binary is run directly, as `swift test --skip-build` runs it: two `swift test` at once
# wait for each other on the build directory's lock.
#
# Output: each line prefixed with its half ([pg-a], [pg-b]); the whole of each half in
# .build/swift-postgres-test-a.log and -b.log.
#
# A half that runs longer than PG_HALF_TIMEOUT seconds (default 1200; a half takes 5-6 minutes)
# is stopped and fails, rather than holding `make test` until CI's limit. Interrupted (Ctrl-C,
# SIGTERM, SIGHUP), the script stops both halves before their servers: background commands of
# a script ignore SIGINT, so the test processes would otherwise run on against stopped servers.
set -uo pipefail
cd "$(dirname "$0")/.."

[[ $# -eq 5 ]] || { echo "usage: $0 BIN_DIR PG_DIR SUITES SKIP SECOND" >&2; exit 2; }
bin=$1 pg_dir=$2 suites=$3 skip=$4 second=$5
tests=$bin/ksmfleetPackageTests.xctest
[[ -x $tests ]] || { echo "postgres-pass: $tests is not built (swift build --build-tests first)" >&2; exit 1; }

# Both at once: a stop removes its data directory (a database per test data directory). After a
# pass the two stops took 21-24 s one after the other, 18 s at once (2026-12-07): the removal is
# bound by the disk more than by the order.
stop_all() {
    ./scripts/postgres-test-server.sh stop "$pg_dir/a" &
    local stop_a=$!
    ./scripts/postgres-test-server.sh stop "$pg_dir/b" &
    local stop_b=$!
    wait "$stop_a" "$stop_b" || true
}
trap stop_all EXIT
url_a=$(./scripts/postgres-test-server.sh start "$pg_dir/a") || exit 1
url_b=$(./scripts/postgres-test-server.sh start "$pg_dir/b") || exit 1

# half NAME URL ARGS...: runs the tests ARGS pick against URL, its output prefixed and logged
# (without colours, as `swift test` writes them to a pipe).
half() {
    local name=$1 url=$2
    shift 2
    NO_COLOR=1 KSMFLEET_TEST_POSTGRES="$url" KSMFLEET_POSTGRES_PREPARE_AFTER=1 \
        timeout -k 30 "${PG_HALF_TIMEOUT:-1200}" "$tests" --testing-library swift-testing --no-parallel "$@" 2>&1 \
        | tee ".build/swift-postgres-test-$name.log" | sed -u "s/^/[pg-$name] /"
    local rc=${PIPESTATUS[0]}
    [[ $rc -ne 124 ]] || echo "postgres-pass: half $name stopped after ${PG_HALF_TIMEOUT:-1200} s" >&2
    return "$rc"
}
pid_a= pid_b=
interrupted() {
    echo "postgres-pass: interrupted; stopping both halves" >&2
    # The halves' own processes: timeout (which passes the signal on to the tests), tee, sed.
    for p in $pid_a $pid_b; do pkill -TERM -P "$p" 2>/dev/null; done
    wait
    exit 130
}
trap interrupted INT TERM HUP
half a "$url_a" --filter "$suites" --skip "$skip|$second" &
pid_a=$!
half b "$url_b" --filter "$second" --skip "$skip" &
pid_b=$!
wait "$pid_a"; rc_a=$?
wait "$pid_b"; rc_b=$?

status=0
for name in a b; do
    rc_var=rc_$name
    summary=$(grep -a "Test run with" ".build/swift-postgres-test-$name.log" | tail -1)
    echo "postgres-pass: half $name exited ${!rc_var}: ${summary:-no summary}"
    [[ ${!rc_var} -eq 0 ]] || status=1
    # A half that ran nothing means a regular expression that picks nothing: not a pass.
    if [[ $summary =~ "with 0 tests" || -z $summary ]]; then
        echo "postgres-pass: half $name ran no test" >&2
        status=1
    fi
done
exit "$status"
