#!/usr/bin/env bash
# Started by `make run`: the server on an embedded SQLite file plus a local agent.
# Prints the dashboard URL and the admin token; Ctrl-C stops both (the agent puts the
# KSM settings it found at start back on exit).
set -euo pipefail
BIN=${BIN:?BIN must point at the directory of the built binaries}
DATA_DIR=${DATA_DIR:-$PWD/data}
PORT=${PORT:-8080}
HOST=${HOST:-127.0.0.1}
URL="http://$HOST:$PORT"
mkdir -p "$DATA_DIR/server" "$DATA_DIR/agent"
chmod 700 "$DATA_DIR"

pids=()
cleanup() {
  # The agent first, so that its goodbye sample (what it left in the kernel) reaches the server
  # before the server stops; then the server.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$BIN/ksmfleet-server" --host "$HOST" --port "$PORT" --data-dir "$DATA_DIR/server" \
  >>"$DATA_DIR/server.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "the server did not start; its log:" >&2; tail -n 30 "$DATA_DIR/server.log" >&2; exit 1
  fi
  sleep 0.2
done
curl -fsS "$URL/healthz" >/dev/null || { echo "the server did not answer on $URL" >&2; exit 1; }

ADMIN_TOKEN=${KSMFLEET_ADMIN_TOKEN:-$(cat "$DATA_DIR/server/admin-token")}
export KSMFLEET_SERVER="$URL" KSMFLEET_TOKEN="$ADMIN_TOKEN"

# The local agent enrolls once; later runs reuse the node id and token in its state dir.
agent_args=(--server "$URL" --state-dir "$DATA_DIR/agent" --restore-on-exit)
if [ ! -s "$DATA_DIR/agent/node.json" ]; then
  "$BIN/ksmfleet" tokens create --description "make run local agent" --expires 1h --output json \
    >"$DATA_DIR/.enroll.json"
  ENROLL=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['token'])" "$DATA_DIR/.enroll.json")
  rm -f "$DATA_DIR/.enroll.json"
  agent_args+=(--enroll-token "$ENROLL")
fi
"$BIN/ksmfleet-agent" run "${agent_args[@]}" >>"$DATA_DIR/agent.log" 2>&1 &
pids+=($!)

cat <<MSG

  ksmfleet is running.
  Dashboard:    $URL/
  Admin token:  $ADMIN_TOKEN   (also in $DATA_DIR/server/admin-token, mode 0600)
  CLI:          export KSMFLEET_SERVER=$URL KSMFLEET_TOKEN=<admin token>; $BIN/ksmfleet status
  Logs:         $DATA_DIR/server.log, $DATA_DIR/agent.log

  The local node starts with run: stop (KSM off) until you turn it on; see README "Why KSM is off by default".
  Ctrl-C stops the server and the agent.

MSG
wait -n "${pids[@]}"
echo "a process exited; stopping (see the logs in $DATA_DIR)" >&2
