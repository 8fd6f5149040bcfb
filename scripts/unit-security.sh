#!/usr/bin/env bash
# Rates the shipped systemd units with `systemd-analyze security --offline=true` (works on unit
# files; systemd need not be PID 1) and fails when one is more exposed than its ceiling.
# Ceilings are in systemd's internal tenths: 19 is "1.9". Installs Debian's systemd tools if
# systemd-analyze is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "unit-security: installing systemd (for systemd-analyze)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi

# unit file, ceiling (tenths): the server under 2.0; the agent (root, writable sysfs) at 2.1.
checks=(
    "server/ksmfleet-server.service 19"
    "agent/ksmfleet-agent.service 21"
)
failed=0
for check in "${checks[@]}"; do
    set -- $check
    unit=$1 ceiling=$2
    # --offline=true reads the file only; the directory it runs in does not matter.
    if out=$(systemd-analyze security --offline=true --threshold="$ceiling" "$unit" 2>&1); then
        echo "unit-security: ok   $(tail -n 1 <<<"$out" | sed 's/^→ //') (ceiling ${ceiling:0:-1}.${ceiling: -1})"
    else
        echo "unit-security: FAIL $unit is above ${ceiling:0:-1}.${ceiling: -1}:"
        grep '✗' <<<"$out" || true
        tail -n 1 <<<"$out"
        failed=1
    fi
done
exit $failed
