#!/usr/bin/env bash
# Runs schemathesis against a live ksmfleet-server and its own /openapi.yaml: no 5xx, and every
# response (status, content type, headers, body) as the spec says. Bounded: a few examples per
# operation and a time budget, so it finishes in a few minutes.
#
#   BIN=$(swift build --show-bin-path) scripts/schemathesis.sh
#
# Env: BIN (directory holding ksmfleet-server; default: swift build --show-bin-path),
#      MAX_EXAMPLES (default 25), MAX_TIME (seconds per run, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${BIN:-$(swift build --show-bin-path)}"
SERVER="$BIN/ksmfleet-server"
MAX_EXAMPLES="${MAX_EXAMPLES:-25}"
MAX_TIME="${MAX_TIME:-60}"
[ -x "$SERVER" ] || { echo "schemathesis.sh: $SERVER is not built (swift build first)" >&2; exit 1; }

if ! command -v schemathesis >/dev/null 2>&1; then
  echo "schemathesis.sh: installing schemathesis from PyPI"
  python3 -m pip install --quiet schemathesis
fi
ST="$(command -v schemathesis || echo "python3 -m schemathesis.cli")"

WORK="$(mktemp -d -t ksmfleet-schemathesis.XXXXXX)"
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# A free loopback port: the server binds port 0 and writes the port it got.
export KSMFLEET_ADMIN_TOKEN="ka_schemathesis_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
# Rate limits off: every request comes from 127.0.0.1 (RateLimitAPITests covers the 429s).
"$SERVER" --host 127.0.0.1 --port 0 --data-dir "$WORK/data" --port-file "$WORK/port" --log-level warning \
  --registration-rate-limit 0 --failed-auth-rate-limit 0 --login-rate-limit 0 \
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
export ENROLL_TOKEN="$ENROLL"

# Operation-specific auth and ids (schemathesis substitutes ${VAR} from the environment).
cat >"$WORK/schemathesis.toml" <<'TOML'
headers = { Authorization = "Bearer ${KSMFLEET_ADMIN_TOKEN}" }

[[operations]]
include-operation-id = "register"
headers = { Authorization = "Bearer ${ENROLL_TOKEN}" }

[[operations]]
include-operation-id = "pushSamples"
headers = { Authorization = "Bearer ${NODE_TOKEN}" }
parameters = { "path.id" = "${NODE_ID}" }

[[operations]]
include-operation-id = "rotateNodeToken"
headers = { Authorization = "Bearer ${NODE_TOKEN}" }
parameters = { "path.id" = "${NODE_ID}" }

[[operations]]
include-operation-id = "getConfig"
headers = { Authorization = "Bearer ${NODE_TOKEN}" }
# A matching If-None-Match would hold the request for `wait` seconds: keep it short.
parameters = { "path.id" = "${NODE_ID}", "query.wait" = 1 }

[[operations]]
include-operation-id-regex = "^(showNode|setLabels|replaceConfig|patchConfig|kick|requestTokenRotation)$"
parameters = { "path.id" = "${ADMIN_NODE_ID}" }
TOML

CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method"
status=0
$ST --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.yaml" --url "$BASE" \
  --checks "$CHECKS" --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --mode all \
  --phases examples,coverage,fuzzing --request-timeout 10 --workers 2 --seed 42 \
  --suppress-health-check all --report junit --report-dir "$WORK/report" || status=$?

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
