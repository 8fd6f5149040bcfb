#!/usr/bin/env bash
# ksmfleet-agent under the shipped systemd unit (agent/ksmfleet-agent.service), on a host where
# systemd is not PID 1: the host's own systemd booted as PID 1 of a throwaway systemd-nspawn
# container (`--volatile=yes -D /`: the host's /usr read-only, everything else a tmpfs), the
# unit file installed unchanged, the agent connected to a real server on the host's loopback.
# Prints what systemd says the unit costs (MemoryCurrent: the cgroup's charge), the split of that
# charge, the agent's anonymous memory, PSS and RSS, its CPU time, whether every hardening
# setting was applied, and what the unit wrote to the journal. Results go in docs/benchmarks.md
# ("Agent footprint").
#
#   Benchmarks/agent-systemd.sh                 # 5 minutes at the unit's defaults (10 s / 60 s)
#   MINUTES=2 Benchmarks/agent-systemd.sh
#   UNIT=/tmp/old.service Benchmarks/agent-systemd.sh   # another version of the unit file
#
# Real parts and nothing else touched:
# - the KSM directory the agent sees is a fake one (regular files) bound over /sys/kernel/mm/ksm
#   inside the container, so the unit's own ReadWritePaths= and the agent's default path are
#   used and the real KSM is never written;
# - the container shares the host's network (the agent reaches the server on 127.0.0.1) and
#   boots only basic.target (nothing of the host's own services starts in it); the network
#   wait-online services are masked in it, or network-online.target (which the unit wants)
#   waits 2 minutes for a network manager that does not run;
# - nspawn gives the container the cgroup v1 controllers read-only, and systemd then makes no
#   memory cgroup for the unit (MemoryCurrent "[not set]", MemoryMax not enforced): they are
#   remounted read-write inside the container's mount namespace and systemd re-executed;
# - at the end the unit is stopped (the agent says goodbye), the container powered off and the
#   empty cgroups it left are removed.
# Needs root; installs Debian's systemd-container (systemd-nspawn) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH=${SCRATCH:-.build}
MINUTES=${MINUTES:-5}
UNIT=$(realpath "${UNIT:-agent/ksmfleet-agent.service}")

if [ "$(id -u)" != 0 ]; then echo "agent-systemd: needs root (systemd-nspawn)" >&2; exit 1; fi
if ! command -v systemd-nspawn >/dev/null; then
    echo "agent-systemd: installing systemd-container (systemd-nspawn)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd-container >/dev/null
fi
[ -x /lib/systemd/systemd ] || { echo "agent-systemd: no /lib/systemd/systemd on this host" >&2; exit 1; }

source Benchmarks/agent-common.sh
build_agent_and_server

machine="ksmfleet-sd-$$"
pids=()
nspawn_pid=""
leader=""
work=""
# A cgroup of the container's own below this shell's, in every hierarchy it is in: nspawn starts
# in them (--keep-unit), so the container's systemd sees and writes only that subtree (here the
# shell sits at the root of most v1 hierarchies), and the end removes only it.
own_cgroups=()
while IFS=: read -r _ ctrl path; do
    case $ctrl in
        "") if [ -f /sys/fs/cgroup/cgroup.controllers ]; then root=/sys/fs/cgroup; else root=/sys/fs/cgroup/unified; fi ;;
        name=systemd) root=/sys/fs/cgroup/systemd ;;
        *) root=/sys/fs/cgroup/${ctrl%%,*} ;;
    esac
    [ -d "$root$path" ] || continue
    own_cgroups+=("${root%/}${path%/}/$machine")
done </proc/self/cgroup

cleanup() {
    set +e
    if [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
        nsenter -t "$leader" -a systemctl stop ksmfleet-agent >/dev/null 2>&1
    fi
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid"
        for _ in $(seq 300); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$nspawn_pid" 2>/dev/null && { echo "agent-systemd: the container did not stop; killing it" >&2; kill -KILL "$nspawn_pid"; }
    fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    # The container's cgroups, deepest first (rmdir removes only empty ones); nspawn removes some
    # itself as it exits, so a few rounds before anything left is reported.
    for round in 1 2 3 4 5; do
        left=0
        for c in "${own_cgroups[@]}"; do
            [ -d "$c" ] || continue
            find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
            [ -d "$c" ] && left=1
        done
        [ $left = 0 ] && break
        sleep 1
    done
    for c in "${own_cgroups[@]}"; do [ -d "$c" ] && echo "agent-systemd: could not remove cgroup $c" >&2; done
    rmdir /run/systemd/nspawn/propagate/"$machine" /run/systemd/nspawn/propagate /run/systemd/nspawn 2>/dev/null
    [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
work=$(mktemp -d /tmp/ksmfleet-systemd.XXXXXX)
for c in "${own_cgroups[@]}"; do
    mkdir "$c"
    # a new cpuset cgroup has no CPUs and no memory nodes: no process may join it until set
    for f in cpuset.cpus cpuset.mems; do [ -f "$c/$f" ] && cat "$(dirname "$c")/$f" >"$c/$f"; done
done

# --- the server on the host's loopback ------------------------------------------------------
start_server "$work"
token=$(new_token agent-systemd)

# --- what the container sees ----------------------------------------------------------------
mkdir -p "$work/bin" "$work/etc"
fake_sysfs "$work/ksm"
cp "$agent.stripped" "$work/bin/ksmfleet-agent"
printf 'server=%s\nenroll-token=%s\n' "$url" "$token" >"$work/etc/agent.conf"
chmod 600 "$work/etc/agent.conf"

# --- boot -----------------------------------------------------------------------------------
# In its own cgroups first (the subshell moves itself, then becomes nspawn).
(
    for c in "${own_cgroups[@]}"; do echo "$BASHPID" >"$c/cgroup.procs"; done
    exec setsid systemd-nspawn --quiet --volatile=yes -D / -b --register=no --keep-unit -M "$machine" \
    --bind="$work/ksm:/sys/kernel/mm/ksm" \
    --bind-ro="$work/bin:/usr/local/bin" \
    --bind-ro="$UNIT:/etc/systemd/system/ksmfleet-agent.service" \
    --bind-ro="$work/etc:/etc/ksmfleet" \
    --bind-ro=/dev/null:/etc/systemd/system/systemd-networkd-wait-online.service \
    --bind-ro=/dev/null:/etc/systemd/system/ifupdown-wait-online.service \
    --console=read-only systemd.firstboot=off systemd.unit=basic.target
) >"$work/nspawn.log" 2>&1 </dev/null &
nspawn_pid=$!
for _ in $(seq 300); do
    leader=$(pgrep -P "$nspawn_pid" | head -1 || true)
    [ -n "$leader" ] && nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded' && break
    sleep 0.2
done
E=(nsenter -t "$leader" -a)
state=$("${E[@]}" systemctl is-system-running 2>/dev/null || true)
case $state in running | degraded) ;; *)
    echo "agent-systemd: the container's systemd did not come up (state '$state'):" >&2
    tail -30 "$work/nspawn.log" >&2
    exit 1
    ;;
esac
for c in memory cpu cpuacct pids devices; do
    [ -d "/sys/fs/cgroup/$c" ] && nsenter -t "$leader" -m mount -o remount,bind,rw "/sys/fs/cgroup/$c"
done
"${E[@]}" systemctl daemon-reexec
sleep 1
"${E[@]}" systemctl daemon-reload
evict_page_cache "$work/bin/ksmfleet-agent"
"${E[@]}" systemctl start ksmfleet-agent
start=$(date +%s)

show() { "${E[@]}" systemctl show -p "$1" --value ksmfleet-agent; }
cpid=$(show MainPID)
cg=/sys/fs/cgroup/memory$(show ControlGroup)
tck=$(getconf CLK_TCK)
mib() { awk -v b="$1" 'BEGIN {printf "%.2f", b / 1048576}'; }
reading() {
    local t=$1 current stat anon file rollup cpu
    if [ "$(show ActiveState)" != active ]; then
        echo "agent-systemd: the unit is $(show ActiveState) ($(show Result)); its journal:" >&2
        "${E[@]}" journalctl -u ksmfleet-agent --no-pager -o cat | tail -20 >&2
        exit 1
    fi
    current=$(show MemoryCurrent)
    stat=$("${E[@]}" cat "$cg/memory.stat")
    anon=$(awk '$1 == "rss" {print $2}' <<<"$stat")
    file=$(awk '$1 == "cache" {print $2}' <<<"$stat")
    rollup=$("${E[@]}" cat "/proc/$cpid/smaps_rollup")
    # (awk runs on the host: the container's /etc, and so /etc/alternatives/awk, is empty)
    cpu=$("${E[@]}" cat "/proc/$cpid/stat" | awk -v h="$tck" '{printf "%.2f", ($14 + $15) / h}')
    printf '| %s | %s (%s B) | %s / %s | %s | %s | %s | %s |\n' "$t" "$(mib "$current")" "$current" "$(mib "$anon")" \
        "$(mib "$file")" "$(awk '/^Anonymous:/ {printf "%.2f", $2 / 1024}' <<<"$rollup")" \
        "$(awk '/^Pss:/ {printf "%.2f", $2 / 1024}' <<<"$rollup")" "$(awk '/^Rss:/ {printf "%.2f", $2 / 1024}' <<<"$rollup")" "$cpu"
}

echo "## Agent under the shipped systemd unit ($(date -u '+%Y-%m-%d %H:%M') UTC, $(uname -r), $(nproc) CPUs, systemd $("${E[@]}" systemctl --version | awk 'NR == 1 {print $2}'))"
echo
echo "Command: \`MINUTES=$MINUTES$([ "$UNIT" = "$(realpath agent/ksmfleet-agent.service)" ] || echo " UNIT=$UNIT") Benchmarks/agent-systemd.sh\`"
echo
echo "- unit: $([ "$UNIT" = "$(realpath agent/ksmfleet-agent.service)" ] && echo "agent/ksmfleet-agent.service as shipped" || echo "$UNIT"); ExecStart runs the static release binary ($(stat -c %s "$work/bin/ksmfleet-agent") bytes stripped) connected to a server on the host's loopback, at the default intervals (samples 10 s, tuning 60 s)"
echo "- MemoryCurrent: \`systemctl show -p MemoryCurrent ksmfleet-agent\` (here cgroup v1 memory.usage_in_bytes); limit in force: memory.limit_in_bytes $("${E[@]}" cat "$cg/memory.limit_in_bytes") (MemoryMax=$(show MemoryMax)), TasksMax $(show TasksMax)"
echo "- anon / file: the cgroup's memory.stat rss / cache; anonymous, PSS, RSS: the agent's /proc/PID/smaps_rollup; CPU: utime+stime since start"
echo
echo "| since start | MemoryCurrent (MiB) | of which anon / file (MiB) | anonymous (MiB) | PSS (MiB) | RSS (MiB) | CPU-seconds |"
echo "|---|---|---|---|---|---|---|"
sleep 15
reading "15 s"
for m in $(seq "$MINUTES"); do
    wait_s=$((start + 60 * m - $(date +%s)))
    [ "$wait_s" -gt 0 ] && sleep "$wait_s"
    reading "$m min"
done
echo
echo "Hardening in force on the running agent (/proc/PID/status):"
echo
"${E[@]}" grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp|Seccomp_filters|Umask):' "/proc/$cpid/status" | sed 's/^/    /'
echo
echo "Nice values of its threads (count×nice): $("${E[@]}" sh -c "cat /proc/$cpid/task/*/stat" | awk '{print $19}' | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')"
echo
samples=$(curl -sf -H "Authorization: Bearer $admin" "$url/api/v1/nodes" |
    python3 -c 'import json,sys; n=json.load(sys.stdin)["nodes"]; print(len(n), (n[0].get("lastSample") or {}).get("seq", 0) if n else 0)')
echo "Server: nodes and the last sequence number it holds: $samples (a sample every 10 s)."
"${E[@]}" journalctl -u ksmfleet-agent --no-pager -o cat >"$work/journal.txt"
echo
echo "The unit's journal: $(wc -l <"$work/journal.txt") lines; warnings and errors of systemd or the agent, and libdispatch's messages:"
echo
grep -vE ' (info|debug|notice) ksmfleet-agent:|^(Started|Starting|Stopping|Stopped) |^ksmfleet-agent.service: (Deactivated|Consumed)' "$work/journal.txt" |
    sort | uniq -c | sed 's/^/    /' || true
echo "    (end)"
