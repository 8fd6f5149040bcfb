#!/usr/bin/env bash
# Runs a command (the real-kernel test suites) with the host's KSM settings saved before and put
# back after, whatever becomes of the command: a failure, Ctrl-C, SIGTERM, a test process killed
# by a timeout. Each real-kernel test restores what it changed itself; this covers the process
# that never got to (it was killed mid-test and left ksmd merging with the test's settings —
# run=1, pages_to_scan 20000, sleep 0 — seen once when a stray kill hit the kernel suite).
# Says what it had to put back: a difference means a test did not clean up after itself.
#
#   scripts/ksm-guard.sh COMMAND [ARG...]     exit status: COMMAND's (or 128+signal)
#
# Where /sys/kernel/mm/ksm is not writable it just runs the command (the suites skip there).
set -uo pipefail

KSM=${KSM_SYSFS:-/sys/kernel/mm/ksm}
# Tunables in the order they are put back (after advisor_mode); `run` last, unmerging meanwhile.
TUNABLES=(merge_across_nodes max_page_sharing pages_to_scan sleep_millisecs use_zero_pages smart_scan
    stable_node_chains_prune_millisecs advisor_max_cpu advisor_target_scan_time
    advisor_min_pages_to_scan advisor_max_pages_to_scan)

if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi
if [ ! -w "$KSM/run" ]; then
    echo "ksm-guard: $KSM/run is not writable; running without saving KSM settings"
    exec "$@"
fi

declare -A saved
for t in "${TUNABLES[@]}" run; do
    [ -r "$KSM/$t" ] && saved[$t]=$(<"$KSM/$t")
done
# advisor_mode reads "[none] scan-time": the bracketed word is the one in force.
if [ -r "$KSM/advisor_mode" ]; then
    saved[advisor_mode]=$(sed -n 's/.*\[\([^]]*\)\].*/\1/p' "$KSM/advisor_mode")
fi

restore() {
    local changed=()
    for t in "${TUNABLES[@]}" advisor_mode run; do
        [ -n "${saved[$t]+x}" ] || continue
        local now
        if [ "$t" = advisor_mode ]; then
            now=$(sed -n 's/.*\[\([^]]*\)\].*/\1/p' "$KSM/$t")
        else
            now=$(<"$KSM/$t")
        fi
        [ "$now" = "${saved[$t]}" ] || changed+=("$t $now → ${saved[$t]}")
    done
    if [ ${#changed[@]} -eq 0 ]; then
        echo "ksm-guard: KSM settings as they were before the run"
        return 0
    fi
    echo "ksm-guard: the run left KSM changed; putting back: $(IFS=,; echo "${changed[*]}" | sed 's/,/, /g')"
    # Unmerge first: merge_across_nodes can change only with no shared pages, and the pages the
    # run merged belong to processes that are gone or about to be.
    echo 2 > "$KSM/run"
    local waited=0
    while [ "$(<"$KSM/pages_shared")" != 0 ] && [ $waited -lt 600 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    [ "$(<"$KSM/pages_shared")" = 0 ] || echo "ksm-guard: pages_shared still $(<"$KSM/pages_shared") after 60 s of unmerging"
    local failed=0
    # advisor_mode first: while the advisor is in charge the kernel refuses pages_to_scan.
    for t in advisor_mode "${TUNABLES[@]}"; do
        [ -n "${saved[$t]+x}" ] || continue
        echo "${saved[$t]}" > "$KSM/$t" 2>/dev/null || { echo "ksm-guard: could not write $t=${saved[$t]}"; failed=1; }
    done
    echo "${saved[run]}" > "$KSM/run" || failed=1
    [ $failed = 0 ] && echo "ksm-guard: KSM settings put back (run=${saved[run]})"
}

# The command and everything it started (`swift test` runs the test binary as its child).
tree() {
    local p
    for p in $(pgrep -P "$1"); do tree "$p"; done
    echo "$1"
}

child=
on_signal() {
    local sig=$1
    # SIGTERM, not the signal received: a background job of a script ignores SIGINT.
    if [ -n "$child" ]; then
        kill -TERM $(tree "$child") 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    restore
    trap - "$sig"
    case $sig in INT) exit 130 ;; TERM) exit 143 ;; HUP) exit 129 ;; esac
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

"$@" &
child=$!
wait "$child"
rc=$?
# A trapped signal interrupts `wait` with 128+n; the handler has already restored and exited.
child=
restore
exit $rc
