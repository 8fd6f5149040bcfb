#!/usr/bin/env bash
# ksmfleet-agent footprint: what the agent alone costs the host. Static release build and its
# stripped size; over SIM_HOURS simulated hours its anonymous memory (its own: heap, stacks,
# relocated data), PSS, RSS (/proc/PID/smaps_rollup) and the memory charged to its cgroup; CPU
# seconds per hour at the default intervals in real time. Results go in docs/benchmarks.md
# ("Agent footprint").
#
#   Benchmarks/agent-footprint.sh                   # 8 simulated hours + 300 s at the defaults
#   SIM_HOURS=1 REAL_SECONDS=60 Benchmarks/agent-footprint.sh
#   SCRATCH=.build-agent Benchmarks/agent-footprint.sh   # another build directory
#
# "Simulated hour": the agent does one hour's work at the defaults (360 samples every 10 s,
# 60 tuning steps every 60 s, each sample pushed to a real server) with the intervals divided
# by 100, so an hour takes 36 s. Memory is read 8 times over the run to see whether it grows.
# "Real time": the agent at its defaults (10 s / 60 s, 30-55 s long-polls) for REAL_SECONDS;
# its CPU time is scaled to an hour. The agent runs against a fake sysfs directory (regular
# files), so the benchmark never touches the real KSM.
#
# The cgroup: agent/ksmfleet-agent.service gives the agent a cgroup of its own with
# MemoryMax=64M, and the host pays that cgroup's memory (memory.current). Where systemd does
# not run the host this script makes the equivalent by hand: a child memory cgroup (cgroup v2
# at /sys/fs/cgroup when it has the memory controller, else the v1 memory hierarchy, under this
# shell's own cgroup), its limit set to 64M, the agent started inside it (so everything it
# faults in is charged there), and its figure read: memory.current (v2) or
# memory.usage_in_bytes (v1), with the anonymous/file split from memory.stat. Before the start
# the binary's and its libraries' pages are written back and dropped from the page cache (fsync,
# posix_fadvise DONTNEED; pages mapped by other processes, libc's say, stay and are charged
# where they were first read), so the file pages the agent brings in are counted as on a
# freshly booted host. CGROUP=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH=${SCRATCH:-.build}
SIM_HOURS=${SIM_HOURS:-8}
REAL_SECONDS=${REAL_SECONDS:-300}
CGROUP=${CGROUP:-1}
SPEEDUP=100

source Benchmarks/agent-common.sh
build_agent_and_server

work=$(mktemp -d /tmp/ksmfleet-footprint.XXXXXX)
pids=()
cgroups=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # The agents are not this shell's children (started from $(start_agent)): wait until they
    # are gone, or their cgroups cannot be removed.
    for p in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    for c in "${cgroups[@]}"; do rmdir "$c" 2>/dev/null || echo "could not remove $c" >&2; done
    rm -rf "$work"
}
trap cleanup EXIT

# --- the cgroup -----------------------------------------------------------------------------
cg_kind=none
cg_base=""
if [ "$CGROUP" = 1 ]; then
    if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
        cg_kind=v2
        cg_base=/sys/fs/cgroup
        grep -qw memory "$cg_base/cgroup.subtree_control" 2>/dev/null || echo +memory >"$cg_base/cgroup.subtree_control" || cg_kind=none
    elif [ -d /sys/fs/cgroup/memory ]; then
        cg_kind=v1
        cg_base="/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)"
    fi
fi
# make_cgroup NAME: prints the path of a new child memory cgroup limited like the unit (64M).
make_cgroup() {
    local c="$cg_base/ksmfleet-footprint-$$-$1"
    mkdir "$c"
    if [ $cg_kind = v2 ]; then echo 64M >"$c/memory.max"; else echo 64M >"$c/memory.limit_in_bytes"; fi
    echo "$c"
}
# "charged_kb anon_kb file_kb" of a cgroup
cg_measure() {
    local c=$1
    if [ $cg_kind = v2 ]; then
        echo "$(($(cat "$c/memory.current") / 1024)) $(awk '$1 == "anon" {print int($2 / 1024)}' "$c/memory.stat") $(awk '$1 == "file" {print int($2 / 1024)}' "$c/memory.stat")"
    else
        echo "$(($(cat "$c/memory.usage_in_bytes") / 1024)) $(awk '$1 == "rss" {print int($2 / 1024)}' "$c/memory.stat") $(awk '$1 == "cache" {print int($2 / 1024)}' "$c/memory.stat")"
    fi
}
# --- the server -----------------------------------------------------------------------------
start_server "$work"

tck=$(getconf CLK_TCK)
# "rss_kb pss_kb anon_kb cpu_seconds" of a process
measure() {
    local pid=$1 ticks
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "the agent (pid $pid) is gone; its log:" >&2
        tail -20 "$work"/*.log >&2
        exit 1
    fi
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    echo "$(awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} /^Anonymous:/ {a = $2} END {print r, p, a}' "/proc/$pid/smaps_rollup") $(awk -v t="$ticks" -v h="$tck" 'BEGIN {printf "%.2f", t / h}')"
}
mib() { awk -v k="$1" 'BEGIN {printf "%.2f", k / 1024}'; }

# Rss per mapped object (all segments of a file summed), largest first, as Markdown rows.
smaps_breakdown() {
    awk '
        /^[0-9a-f]+-[0-9a-f]+ / { n = (NF >= 6) ? $6 : "[anon]"; sub(/.*\//, "", n); if (n ~ /\.stripped$/) n = "ksmfleet-agent (binary)"; next }
        /^Rss:/ { rss[n] += $2; tot["rss"] += $2 }
        /^Pss:/ { pss[n] += $2; tot["pss"] += $2 }
        /^Shared_Clean:/ { sc[n] += $2; tot["sc"] += $2 }
        /^Anonymous:/ { an[n] += $2; tot["an"] += $2 }
        END {
            for (k in rss) if (rss[k] >= 64) printf "| %s | %d | %d | %d | %d |\n", k, rss[k], pss[k], sc[k], an[k] | "sort -t\"|\" -k3 -n -r"
            close("sort -t\"|\" -k3 -n -r")
            printf "| **total** | %d | %d | %d | %d |\n", tot["rss"], tot["pss"], tot["sc"], tot["an"]
        }' "/proc/$1/smaps"
}

# start_agent NAME SAMPLE TUNE [CGROUP]: prints the agent's pid (started inside CGROUP if given).
start_agent() {
    local name=$1 cg=${4:-} token
    fake_sysfs "$work/$name/ksm"
    mkdir -p "$work/$name/watch"
    token=$(new_token footprint)
    (
        if [ -n "$cg" ]; then echo "$BASHPID" >"$cg/cgroup.procs"; fi
        exec "$agent.stripped" run --server "$url" --enroll-token "$token" --state-dir "$work/$name/state" \
            --sysfs "$work/$name/ksm" --sample-interval "$2" --tune-interval "$3" --watch "$work/$name/watch" \
            --node-name "$name" --log-level warning
    ) >"$work/$name.log" 2>&1 &
    echo $!
}

size_bytes=$(stat -c %s "$agent.stripped")
echo "## Agent footprint ($(date -u '+%Y-%m-%d %H:%M') UTC, $(uname -r), $(nproc) CPUs)"
echo
echo "Command: \`SIM_HOURS=$SIM_HOURS REAL_SECONDS=$REAL_SECONDS CGROUP=$CGROUP Benchmarks/agent-footprint.sh\`"
echo
echo "- static release binary, stripped: $(mib $((size_bytes / 1024))) MiB ($size_bytes bytes); unstripped $(($(stat -c %s "$agent") / 1024 / 1024)) MiB"
echo "- dynamic libraries: $(ldd "$agent.stripped" | awk '{print $1}' | grep -E 'curl|Foundation|swift' | tr '\n' ' ')"
case $cg_kind in
    v2) echo "- cgroup: a cgroup v2 child of /sys/fs/cgroup, memory.max 64M; \"charged\" = memory.current, split by memory.stat anon/file" ;;
    v1) echo "- cgroup: no systemd and no cgroup v2 memory controller here: a cgroup v1 memory child of this shell's cgroup, memory.limit_in_bytes 64M; \"charged\" = memory.usage_in_bytes, split by memory.stat rss/cache" ;;
    *) echo "- cgroup: none (CGROUP=0, or no memory cgroup to use)" ;;
esac
echo

# --- simulated hours: intervals divided by SPEEDUP --------------------------------------------
sim_sample=$(awk -v s=$SPEEDUP 'BEGIN {print 10 / s}')
sim_tune=$(awk -v s=$SPEEDUP 'BEGIN {print 60 / s}')
sim_total=$(awk -v s=$SPEEDUP -v h="$SIM_HOURS" 'BEGIN {print int(3600 * h / s)}')
cg=""
if [ $cg_kind != none ]; then
    cg=$(make_cgroup sim)
    cgroups+=("$cg")
    evict_page_cache "$agent.stripped"
fi
pid=$(start_agent sim "$sim_sample" "$sim_tune" "$cg")
pids+=("$pid")
echo "### $SIM_HOURS simulated hour(s) (samples every ${sim_sample} s, tuning every ${sim_tune} s: $((360 * SIM_HOURS)) samples, $((60 * SIM_HOURS)) tuning steps)"
echo
echo "| simulated time | anonymous (MiB) | PSS (MiB) | RSS (MiB) | cgroup charged (MiB) | of which anon / file | CPU-seconds so far |"
echo "|---|---|---|---|---|---|---|"
step=$((sim_total / 8))
for q in 1 2 3 4 5 6 7 8; do
    sleep "$step"
    read -r rss pss anon cpu < <(measure "$pid")
    charged="-"
    split="-"
    if [ -n "$cg" ]; then
        read -r c ca cf < <(cg_measure "$cg")
        charged=$(mib "$c")
        split="$(mib "$ca") / $(mib "$cf")"
    fi
    printf '| %s min | %s | %s | %s | %s | %s | %s |\n' "$((q * 60 * SIM_HOURS / 8))" "$(mib "$anon")" "$(mib "$pss")" \
        "$(mib "$rss")" "$charged" "$split" "$cpu"
done
echo
echo "Where the memory is at the end (/proc/PID/smaps, kB, all segments of a file summed; only \"anonymous\" is the agent's own memory, the rest are page-cache pages of the files):"
echo
echo "| mapping | Rss | Pss | Shared_Clean | Anonymous |"
echo "|---|---|---|---|---|"
smaps_breakdown "$pid"
samples=$(curl -sf -H "Authorization: Bearer $admin" "$url/api/v1/nodes" |
    python3 -c 'import json,sys; n=[x for x in json.load(sys.stdin)["nodes"] if x["name"]=="sim"][0]; print((n.get("lastSample") or {}).get("seq", 0))')
echo
echo "Last sequence number the server holds for the simulated agent: $samples (expected about $((360 * SIM_HOURS)))."
kill -TERM "$pid"
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
echo

# --- real time at the defaults ----------------------------------------------------------------
cg=""
if [ $cg_kind != none ]; then
    cg=$(make_cgroup real)
    cgroups+=("$cg")
fi
pid=$(start_agent real 10 60 "$cg")
pids+=("$pid")
sleep 15
read -r rss0 pss0 anon0 cpu0 < <(measure "$pid")
sleep "$REAL_SECONDS"
read -r rss1 pss1 anon1 cpu1 < <(measure "$pid")
c1="-"
if [ -n "$cg" ]; then read -r c1 _ _ < <(cg_measure "$cg"); c1=$(mib "$c1"); fi
per_hour=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$REAL_SECONDS" 'BEGIN {printf "%.2f", (b - a) * 3600 / s}')
echo "### ${REAL_SECONDS} s at the default intervals (10 s samples, 60 s tuning)"
echo
echo "| | anonymous (MiB) | PSS (MiB) | RSS (MiB) | CPU-seconds |"
echo "|---|---|---|---|---|"
printf '| after 15 s | %s | %s | %s | %s |\n' "$(mib "$anon0")" "$(mib "$pss0")" "$(mib "$rss0")" "$cpu0"
printf '| after %s s | %s | %s | %s | %s |\n' "$((REAL_SECONDS + 15))" "$(mib "$anon1")" "$(mib "$pss1")" "$(mib "$rss1")" "$cpu1"
echo
echo "cgroup charged at the end: $c1 MiB (no page-cache eviction before this run: the file pages were charged to the simulated run's cgroup)."
echo
echo "CPU-seconds per hour at the defaults (scaled from ${REAL_SECONDS} s): **$per_hour** (target < 2)."
kill -TERM "$pid"
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
