#!/usr/bin/env bash
# ksmfleet-agent footprint: static release build, stripped size, RSS and anonymous memory
# (/proc/PID/smaps_rollup) over an hour of simulated operation, CPU-seconds per hour.
# Results go in docs/benchmarks.md ("Agent footprint").
#
#   Benchmarks/agent-footprint.sh                 # 1 simulated hour + 300 s at the default intervals
#   SIM_HOURS=3 REAL_SECONDS=900 Benchmarks/agent-footprint.sh
#   SCRATCH=.build-agent Benchmarks/agent-footprint.sh   # another build directory
#
# "Simulated hour": the agent does one hour's work at the defaults (360 samples every 10 s,
# 60 tuning steps every 60 s, each sample pushed to a real server) with the intervals divided
# by 100, so an hour takes 36 s. Memory is read at every quarter to see whether it grows.
# "Real time": the agent at its defaults (10 s / 60 s, 30-55 s long-polls) for REAL_SECONDS;
# its CPU time is scaled to an hour. The agent runs against a fake sysfs directory (regular
# files), so the benchmark never touches the real KSM.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH=${SCRATCH:-.build}
SIM_HOURS=${SIM_HOURS:-1}
REAL_SECONDS=${REAL_SECONDS:-300}
SPEEDUP=100

echo "building the static agent and the server ($SCRATCH)…" >&2
swift build -c release --product ksmfleet-agent --static-swift-stdlib -Xlinker -lcurl --scratch-path "$SCRATCH" >/dev/null
agent="$SCRATCH/release/ksmfleet-agent"
strip -o "$agent.stripped" "$agent"
swift build --product ksmfleet-server --scratch-path "$SCRATCH" >/dev/null
server="$(swift build --scratch-path "$SCRATCH" --show-bin-path)/ksmfleet-server"

work=$(mktemp -d /tmp/ksmfleet-footprint.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

admin=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
KSMFLEET_ADMIN_TOKEN="$admin" "$server" --host 127.0.0.1 --port 0 --data-dir "$work/data" \
    --port-file "$work/port" --log-level error >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
url="http://127.0.0.1:$port"

new_token() {
    curl -sf -X POST -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
        -d '{"description":"footprint"}' "$url/api/v1/enrollment-tokens" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

fake_sysfs() {
    mkdir -p "$1"
    for kv in run=0 pages_to_scan=100 sleep_millisecs=20 pages_shared=0 pages_sharing=0 pages_unshared=0 \
        pages_volatile=0 full_scans=0 merge_across_nodes=1 max_page_sharing=256 stable_node_chains=0 \
        stable_node_dups=0 use_zero_pages=0; do
        echo "${kv#*=}" >"$1/${kv%%=*}"
    done
}

tck=$(getconf CLK_TCK)
# "rss_kb anon_kb cpu_seconds" of a process
measure() {
    local pid=$1 rss anon ticks
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "the agent (pid $pid) is gone; its log:" >&2
        tail -20 "$work"/*.log >&2
        exit 1
    fi
    rss=$(awk '/^Rss:/ {print $2}' "/proc/$pid/smaps_rollup")
    anon=$(awk '/^Anonymous:/ {print $2}' "/proc/$pid/smaps_rollup")
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    echo "$rss $anon $(awk -v t="$ticks" -v h="$tck" 'BEGIN {printf "%.2f", t / h}')"
}

# Rss per mapped object (all segments of a file summed), largest first, as Markdown rows.
smaps_breakdown() {
    awk '
        /^[0-9a-f]+-[0-9a-f]+ / { n = (NF >= 6) ? $6 : "[anon]"; sub(/.*\//, "", n); if (n ~ /\.stripped$/) n = "ksmfleet-agent (binary)"; next }
        /^Rss:/ { rss[n] += $2; tot["rss"] += $2 }
        /^Shared_Clean:/ { sc[n] += $2; tot["sc"] += $2 }
        /^Private_(Clean|Dirty):/ { pr[n] += $2; tot["pr"] += $2 }
        /^Anonymous:/ { an[n] += $2; tot["an"] += $2 }
        END {
            for (k in rss) if (rss[k] >= 64) printf "| %s | %d | %d | %d | %d |\n", k, rss[k], sc[k], pr[k], an[k] | "sort -t\"|\" -k3 -n -r"
            close("sort -t\"|\" -k3 -n -r")
            printf "| **total** | %d | %d | %d | %d |\n", tot["rss"], tot["sc"], tot["pr"], tot["an"]
        }' "/proc/$1/smaps"
}

start_agent() {  # start_agent NAME SAMPLE TUNE
    local name=$1
    fake_sysfs "$work/$name/ksm"
    mkdir -p "$work/$name/watch"
    "$agent.stripped" run --server "$url" --enroll-token "$(new_token)" --state-dir "$work/$name/state" \
        --sysfs "$work/$name/ksm" --sample-interval "$2" --tune-interval "$3" --watch "$work/$name/watch" \
        --node-name "$name" --log-level warning >"$work/$name.log" 2>&1 &
    echo $!
}

size_bytes=$(stat -c %s "$agent.stripped")
echo "## Agent footprint ($(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs)"
echo
echo "Command: \`SIM_HOURS=$SIM_HOURS REAL_SECONDS=$REAL_SECONDS Benchmarks/agent-footprint.sh\`"
echo
echo "- static release binary, stripped: $((size_bytes / 1024 / 1024)) MiB ($size_bytes bytes); unstripped $(($(stat -c %s "$agent") / 1024 / 1024)) MiB"
echo "- dynamic libraries: $(ldd "$agent.stripped" | awk '{print $1}' | grep -E 'curl|Foundation|swift' | tr '\n' ' ')"
echo

# Simulated hours: intervals divided by SPEEDUP.
sim_sample=$(awk -v s=$SPEEDUP 'BEGIN {print 10 / s}')
sim_tune=$(awk -v s=$SPEEDUP 'BEGIN {print 60 / s}')
sim_total=$(awk -v s=$SPEEDUP -v h="$SIM_HOURS" 'BEGIN {print int(3600 * h / s)}')
pid=$(start_agent sim "$sim_sample" "$sim_tune")
pids+=("$pid")
echo "### $SIM_HOURS simulated hour(s) (samples every ${sim_sample} s, tuning every ${sim_tune} s: $((360 * SIM_HOURS)) samples, $((60 * SIM_HOURS)) tuning steps)"
echo
echo "| simulated time | RSS (MiB) | anonymous (MiB) | CPU-seconds so far |"
echo "|---|---|---|---|"
quarter=$((sim_total / 4))
for q in 1 2 3 4; do
    sleep "$quarter"
    read -r rss anon cpu < <(measure "$pid")
    printf '| %s min | %.1f | %.2f | %s |\n' "$((q * 15 * SIM_HOURS))" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" \
        "$(awk -v k="$anon" 'BEGIN {print k / 1024}')" "$cpu"
done
echo
echo "Where the RSS is at the end (/proc/PID/smaps, kB, all segments of a file summed; \"private\" = mapped by this process only, for a file still page-cache pages; only \"anonymous\" is the agent's own memory):"
echo
echo "| mapping | Rss | Shared_Clean | Private (clean+dirty) | Anonymous |"
echo "|---|---|---|---|---|"
smaps_breakdown "$pid"
samples=$(curl -sf -H "Authorization: Bearer $admin" "$url/api/v1/nodes" |
    python3 -c 'import json,sys; n=[x for x in json.load(sys.stdin)["nodes"] if x["name"]=="sim"][0]; print((n.get("lastSample") or {}).get("seq", 0))')
echo
echo "Last sequence number the server holds for the simulated agent: $samples (expected about $((360 * SIM_HOURS)))."
kill -TERM "$pid"
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
echo

# Real time at the defaults.
pid=$(start_agent real 10 60)
pids+=("$pid")
sleep 15
read -r rss0 anon0 cpu0 < <(measure "$pid")
sleep "$REAL_SECONDS"
read -r rss1 anon1 cpu1 < <(measure "$pid")
per_hour=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$REAL_SECONDS" 'BEGIN {printf "%.2f", (b - a) * 3600 / s}')
echo "### ${REAL_SECONDS} s at the default intervals (10 s samples, 60 s tuning)"
echo
echo "| | RSS (MiB) | anonymous (MiB) | CPU-seconds |"
echo "|---|---|---|---|"
printf '| after 15 s | %.1f | %.2f | %s |\n' "$(awk -v k="$rss0" 'BEGIN {print k/1024}')" "$(awk -v k="$anon0" 'BEGIN {print k/1024}')" "$cpu0"
printf '| after %s s | %.1f | %.2f | %s |\n' "$((REAL_SECONDS + 15))" "$(awk -v k="$rss1" 'BEGIN {print k/1024}')" "$(awk -v k="$anon1" 'BEGIN {print k/1024}')" "$cpu1"
echo
echo "CPU-seconds per hour at the defaults (scaled from ${REAL_SECONDS} s): **$per_hour** (target < 2)."
kill -TERM "$pid"
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
