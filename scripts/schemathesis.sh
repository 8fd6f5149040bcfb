#!/usr/bin/env bash
# Runs schemathesis against a live ksmfleet-server and its own /openapi.yaml: no 5xx, and every
# response (status, content type, headers, body) as the spec says. Four runs: the agent's own
# operations (enrollment and node tokens; some fuzzed samples must be stored), then with the
# admin token, then with an operator and a viewer credential at once (issue 14); in the
# viewer run a writing route (POST/PUT/PATCH/DELETE) must never answer 2xx (check
# `viewer_never_writes` in scripts/schemathesis_hooks.py). Bounded: a few examples per
# operation and a time budget per run.
#
#   BIN=$(swift build --show-bin-path) scripts/schemathesis.sh
#
# Env: BIN (directory holding ksmfleet-server; default: swift build --show-bin-path),
#      MAX_EXAMPLES (default 25), MAX_TIME (seconds of the admin run, default 60),
#      ROLE_MAX_TIME (seconds of each of the operator and viewer runs, default 40),
#      AGENT_MAX_TIME (seconds of the run of the agent's own operations, default 30),
#      KEEP=1 (keep the work directory with the server's log), LOG_LEVEL (the server's, default warning).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${BIN:-$(swift build --show-bin-path)}"
SERVER="$BIN/ksmfleet-server"
MAX_EXAMPLES="${MAX_EXAMPLES:-25}"
MAX_TIME="${MAX_TIME:-60}"
ROLE_MAX_TIME="${ROLE_MAX_TIME:-40}"
AGENT_MAX_TIME="${AGENT_MAX_TIME:-30}"
[ -x "$SERVER" ] || { echo "schemathesis.sh: $SERVER is not built (swift build first)" >&2; exit 1; }

if ! command -v schemathesis >/dev/null 2>&1; then
  echo "schemathesis.sh: installing schemathesis from PyPI"
  python3 -m pip install --quiet schemathesis
fi
ST="$(command -v schemathesis || echo "python3 -m schemathesis.cli")"
# Two workers are two threads calling ast.parse (hypothesis describes lambdas from their source).
# CPython 3.11 before 3.11.8 (and 3.12 before 3.12.2) shares the AST recursion counter between
# threads (gh-106905): a run then dies with "AST constructor recursion depth mismatch" in the
# tool, not in the server. Such an interpreter gets one worker.
WORKERS="$(python3 -c 'import sys; v=sys.version_info[:3]; print(1 if (3,11)<=v<(3,11,8) or (3,12)<=v<(3,12,2) else 2)')"
echo "schemathesis.sh: $(python3 --version 2>&1), $WORKERS worker(s)"

WORK="$(mktemp -d -t ksmfleet-schemathesis.XXXXXX)"
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  if [ -n "${KEEP:-}" ]; then echo "schemathesis.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# A free loopback port: the server binds port 0 and writes the port it got.
export KSMFLEET_ADMIN_TOKEN="ka_schemathesis_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
# Rate limits off: every request comes from 127.0.0.1 (RateLimitAPITests covers the 429s).
"$SERVER" --host 127.0.0.1 --port 0 --data-dir "$WORK/data" --port-file "$WORK/port" --log-level "${LOG_LEVEL:-warning}" \
  --registration-rate-limit 0 --failed-auth-rate-limit 0 \
  >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { echo "schemathesis.sh: the server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }
PORT="$(tr -d '[:space:]' < "$WORK/port")"
BASE="http://127.0.0.1:$PORT"
echo "schemathesis.sh: server on $BASE (data in $WORK/data)"

api() {  # api METHOD PATH [JSON] [TOKEN]
  curl -sS --fail-with-body -X "$1" "$BASE$2" -H "Authorization: Bearer ${4:-$KSMFLEET_ADMIN_TOKEN}" \
    -H 'Content-Type: application/json' ${3:+--data "$3"}
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# An enrollment token and two registered nodes: one the agent-side calls use (with its own
# token), one the admin-side calls change.
ENROLL="$(api POST /api/v1/enrollment-tokens '{"description":"schemathesis"}' | json '["token"]')"
register() {
  api POST /api/v1/register "{\"hostname\":\"$1\",\"machineId\":\"$1-machine\",\"kernel\":\"6.8\",\"memTotalBytes\":17179869184,\"numaNodes\":1,\"ksmFeatures\":[\"run\"],\"agentVersion\":\"st\",\"pageSize\":4096}" "$ENROLL"
}
REG="$(register st-agent)"
export NODE_ID="$(echo "$REG" | json '["nodeId"]')"
export NODE_TOKEN="$(echo "$REG" | json '["nodeToken"]')"
export ADMIN_NODE_ID="$(register st-admin | json '["nodeId"]')"
# Token rotation gets a node of its own: a rotation retires the token it was called with, and
# pushSamples and getConfig must keep a live one, or they are only ever answered 401.
REG="$(register st-rotate)"
export ROTATE_NODE_ID="$(echo "$REG" | json '["nodeId"]')"
export ROTATE_NODE_TOKEN="$(echo "$REG" | json '["nodeToken"]')"
export ENROLL_TOKEN="$ENROLL"

# Operation-specific auth and ids (schemathesis substitutes ${VAR} from the environment).
cat >"$WORK/schemathesis.toml" <<'TOML'
headers = { Authorization = "Bearer ${ST_TOKEN}" }

[[operations]]
include-operation-id = "register"
headers = { Authorization = "Bearer ${ENROLL_TOKEN}" }

# The client's timeout is the agent's own (30): a fuzzed one would be refused (422) before the
# batch is read, and the run must get some fuzzed batches stored (checked below). Its bad values
# have their own tests (SampleAndDeleteTests, ClientUnitTests).
[[operations]]
include-operation-id = "pushSamples"
headers = { Authorization = "Bearer ${NODE_TOKEN}", "KSMFleet-Timeout" = "30" }
parameters = { "path.id" = "${NODE_ID}" }

[[operations]]
include-operation-id = "rotateNodeToken"
headers = { Authorization = "Bearer ${ROTATE_NODE_TOKEN}" }
parameters = { "path.id" = "${ROTATE_NODE_ID}" }

[[operations]]
include-operation-id = "getConfig"
headers = { Authorization = "Bearer ${NODE_TOKEN}" }
# A matching If-None-Match would hold the request for `wait` seconds: keep it short.
parameters = { "path.id" = "${NODE_ID}", "query.wait" = 1 }

[[operations]]
include-operation-id-regex = "^(showNode|setLabels|replaceConfig|patchConfig|kick|requestTokenRotation)$"
parameters = { "path.id" = "${ADMIN_NODE_ID}" }
TOML

CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,refusals_are_401_or_403_json"
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks
status=0
run() {  # run LABEL TOKEN MAX_TIME EXTRA_CHECKS [schemathesis options...]; returns schemathesis's status
  local label="$1" token="$2" max_time="$3" extra="$4"
  shift 4
  echo "schemathesis.sh: run as $label"
  ST_TOKEN="$token" $ST --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.yaml" --url "$BASE" \
    --checks "$CHECKS$extra" --max-examples "$MAX_EXAMPLES" --max-time "$max_time" --mode all \
    --phases examples,coverage,fuzzing --request-timeout 10 --workers "$WORKERS" --seed 42 \
    --suppress-health-check all --report junit --report-dir "$WORK/report-$label" "$@"
}
# The agent's operations carry their own tokens (enrollment, node), so the role runs leave them out.
# The agent's operations first, in a run of their own: the admin run deletes and purges the
# nodes it finds (the node list links to them), after which a node token is only ever answered
# 401 and the push would never be fuzzed past its token.
AGENT_OPS="--include-operation-id register --include-operation-id pushSamples --include-operation-id getConfig --include-operation-id rotateNodeToken"
run agent "$KSMFLEET_ADMIN_TOKEN" "$AGENT_MAX_TIME" "" $AGENT_OPS || status=$?
# The push must have been exercised past validation: some fuzzed batches stored.
STORED="$(python3 -c 'import sqlite3,sys; db=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro", uri=True); print(db.execute("SELECT COUNT(*) FROM samples WHERE node_id=?", (sys.argv[2],)).fetchone()[0])' "$WORK/data/ksmfleet.sqlite" "$NODE_ID")"
echo "schemathesis.sh: $STORED fuzzed samples stored for $NODE_ID"
if [ "$STORED" -eq 0 ]; then
  echo "schemathesis.sh: no pushed sample was ever accepted: pushSamples was not tested past its token" >&2
  status=1
fi
run admin "$KSMFLEET_ADMIN_TOKEN" "$MAX_TIME" "" ${AGENT_OPS//--include/--exclude} || status=$?
# The role credentials are made after the admin run: it revokes credentials it finds (the
# list links to them), and theirs must stay live.
OPERATOR_TOKEN="$(api POST /api/v1/credentials '{"name":"st-operator","role":"operator"}' | json '["token"]')"
VIEWER_TOKEN="$(api POST /api/v1/credentials '{"name":"st-viewer","role":"viewer"}' | json '["token"]')"
# A node of their own too: the admin run may have deleted the first (and revoked the
# enrollment token it was registered with).
ENROLL="$(api POST /api/v1/enrollment-tokens '{"description":"schemathesis roles"}' | json '["token"]')"
ROLES_NODE_ID="$(register st-roles | json '["nodeId"]')"
[ -n "$ROLES_NODE_ID" ] || { echo "schemathesis.sh: could not register the role runs' node" >&2; exit 1; }
export ADMIN_NODE_ID="$ROLES_NODE_ID"
# The operator and viewer runs at the same time, each for its whole budget (each is one Python
# process; the server is not their bottleneck): neither can delete a node or revoke a credential,
# so neither takes the other's node or token away. Their output is shown one after the other.
ROLE_OPS="--exclude-operation-id register --exclude-operation-id pushSamples --exclude-operation-id getConfig"
run operator "$OPERATOR_TOKEN" "$ROLE_MAX_TIME" "" $ROLE_OPS >"$WORK/operator.out" 2>&1 &
OPERATOR_RUN=$!
run viewer "$VIEWER_TOKEN" "$ROLE_MAX_TIME" ",viewer_never_writes" $ROLE_OPS >"$WORK/viewer.out" 2>&1 &
VIEWER_RUN=$!
wait "$OPERATOR_RUN" || status=$?
wait "$VIEWER_RUN" || status=$?
cat "$WORK/operator.out" "$WORK/viewer.out"

if grep -qiE "fatal|panic" "$WORK/server.log"; then
  echo "schemathesis.sh: the server log shows a crash:" >&2
  cat "$WORK/server.log" >&2
  status=1
fi
if ! kill -0 "$PID" 2>/dev/null; then
  echo "schemathesis.sh: the server died during the run" >&2
  cat "$WORK/server.log" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "schemathesis.sh: passed" || echo "schemathesis.sh: FAILED ($status)" >&2
exit "$status"
