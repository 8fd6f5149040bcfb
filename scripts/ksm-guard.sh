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

# A tunable's value now (advisor_mode: the bracketed word of "[none] scan-time").
current() {
    if [ "$1" = advisor_mode ]; then
        sed -n 's/.*\[\([^]]*\)\].*/\1/p' "$KSM/$1"
    else
        cat "$KSM/$1"
    fi
}

# Puts back what differs from the saved settings, and only that.
restore() {
    # Ctrl-C ends `tee` in `make test`'s pipe too: the messages below must not kill the restore
    # with SIGPIPE. (Set here, not for the command: an ignored signal is inherited.)
    trap '' PIPE
    local changed=() names=() t now
    for t in advisor_mode "${TUNABLES[@]}" run; do
        [ -n "${saved[$t]+x}" ] || continue
        now=$(current "$t")
        if [ "$now" != "${saved[$t]}" ]; then
            changed+=("$t $now → ${saved[$t]}")
            names+=("$t")
        fi
    done
    if [ ${#names[@]} -eq 0 ]; then
        echo "ksm-guard: KSM settings as they were before the run"
        return 0
    fi
    echo "ksm-guard: the run left KSM changed; putting back: $(IFS=,; echo "${changed[*]}" | sed 's/,/, /g')"
    # merge_across_nodes and max_page_sharing change only with no page shared: unmerge for
    # them alone (it unmerges every process's pages on the host, not only the run's).
    if [[ " ${names[*]} " == *" merge_across_nodes "* || " ${names[*]} " == *" max_page_sharing "* ]]; then
        echo 2 > "$KSM/run"
        local waited=0
        while [ "$(<"$KSM/pages_shared")" != 0 ] && [ $waited -lt 600 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        [ "$(<"$KSM/pages_shared")" = 0 ] || echo "ksm-guard: pages_shared still $(<"$KSM/pages_shared") after 60 s of unmerging"
    fi
    local failed=0
    # In the order of `names`: advisor_mode first, `run` last.
    for t in "${names[@]}"; do
        # While the advisor is in charge it sets pages_to_scan, and the kernel refuses a write.
        [ "$t" = pages_to_scan ] && [ "${saved[advisor_mode]:-none}" = scan-time ] && continue
        echo "${saved[$t]}" > "$KSM/$t" 2>/dev/null || { echo "ksm-guard: could not write $t=${saved[$t]}"; failed=1; }
    done
    # Unmerging above left run at 2 when run itself was as saved.
    [ "$(<"$KSM/run")" = "${saved[run]}" ] || echo "${saved[run]}" > "$KSM/run" || failed=1
    [ $failed = 0 ] && echo "ksm-guard: KSM settings put back (run=${saved[run]})"
}

# The command and everything it started (`swift test` runs the test binary as its child).
tree() {
    local p
    for p in $(pgrep -P "$1"); do tree "$p"; done
    echo "$1"
}

# Whether any of the pids still runs.
alive() {
    local p
    for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done
    return 1
}

on_signal() {
    local sig=$1 pids child
    # Once: a second Ctrl-C while the first is handled (an unmerge can take a while) is ignored.
    trap '' INT TERM HUP
    # The command, from the shell's job table rather than a variable set after it started: a
    # signal in the instant between the start and `child=$!` must stop it too.
    child=$(jobs -p)
    if [ -n "$child" ]; then
        # SIGTERM, not the signal received: a background job of a script ignores SIGINT.
        pids=$(for c in $child; do tree "$c"; done)
        kill -TERM $pids 2>/dev/null
        wait $child 2>/dev/null
        # The test binary under `swift test` too, for up to 10 s.
        for _ in $(seq 100); do
            alive $pids || break
            sleep 0.1
        done
    fi
    restore
    case $sig in INT) exit 130 ;; TERM) exit 143 ;; HUP) exit 129 ;; esac
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

"$@" &
wait $!
rc=$?
# A trapped signal interrupts `wait` with 128+n; the handler has already restored and exited.
# The command ended by itself: the restore runs to its end and the command's status is kept. A
# Ctrl-C now (during an unmerge, say) would otherwise run the restore a second time and exit 130.
trap 'echo "ksm-guard: putting the KSM settings back first; the exit status stays the command'"'"'s ($rc)" >&2' INT TERM HUP
restore
exit $rc
