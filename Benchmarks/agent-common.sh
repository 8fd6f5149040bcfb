# Shared by Benchmarks/agent-footprint.sh and Benchmarks/agent-systemd.sh (sourced, not run):
# the static agent and the server built, a real server on loopback with enrollment tokens, a fake
# KSM directory, and the page cache of a binary and its libraries dropped.

# build_agent_and_server: sets `agent` (the static release binary; `$agent.stripped` beside it)
# and `server` (a debug server), built in $SCRATCH.
build_agent_and_server() {
    echo "building the static agent and the server ($SCRATCH)…" >&2
    swift build -c release --product ksmfleet-agent --static-swift-stdlib -Xlinker -lcurl --scratch-path "$SCRATCH" >/dev/null
    agent="$SCRATCH/release/ksmfleet-agent"
    strip -o "$agent.stripped" "$agent"
    swift build --product ksmfleet-server --scratch-path "$SCRATCH" >/dev/null
    server="$(swift build --scratch-path "$SCRATCH" --show-bin-path)/ksmfleet-server"
}

# start_server DIR: the server on 127.0.0.1 and a free port with its data under DIR; sets `admin`
# (its admin token) and `url`, and adds its pid to the `pids` array (the caller's cleanup kills it).
start_server() {
    admin=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
    KSMFLEET_ADMIN_TOKEN="$admin" "$server" --host 127.0.0.1 --port 0 --data-dir "$1/data" \
        --port-file "$1/port" --log-level error >"$1/server.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$1/port" ] && break; sleep 0.1; done
    url="http://127.0.0.1:$(cat "$1/port")"
}

# new_token DESCRIPTION: prints a new enrollment token.
new_token() {
    curl -sf -X POST -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
        -d "{\"description\":\"$1\"}" "$url/api/v1/enrollment-tokens" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

# fake_sysfs DIR: the KSM files as regular files, KSM stopped and nothing merged.
fake_sysfs() {
    mkdir -p "$1"
    for kv in run=0 pages_to_scan=100 sleep_millisecs=20 pages_shared=0 pages_sharing=0 pages_unshared=0 \
        pages_volatile=0 full_scans=0 merge_across_nodes=1 max_page_sharing=256 stable_node_chains=0 \
        stable_node_dups=0 use_zero_pages=0; do
        echo "${kv#*=}" >"$1/${kv%%=*}"
    done
}

# evict_page_cache BINARY: its pages and its libraries' written back and dropped from the page
# cache (fsync: a freshly stripped binary's pages are dirty, and stay otherwise), so the file pages
# an agent brings in are charged to it as on a freshly booted host. Pages other processes keep
# mapped (libc's, say) stay, charged where they were first read.
evict_page_cache() {
    python3 - "$1" $(ldd "$1" | awk '$3 ~ /^\// {print $3}') <<'PY'
import os, sys
for path in sys.argv[1:]:
    fd = os.open(os.path.realpath(path), os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
PY
}
