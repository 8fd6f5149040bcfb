#!/bin/sh
# Installs ksmfleet-agent: binary, systemd unit, config (0600). Run as root.
#   agent/install.sh [--binary PATH] [--server URL[,URL…]] [--enroll-token TOKEN | --enroll-token-file FILE] [--no-start]
# The binary defaults to the static release build (`make agent-static`).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
binary="$here/../.build/release/ksmfleet-agent.stripped"
[ -f "$binary" ] || binary="$here/../.build/release/ksmfleet-agent"
server=""
token=""
token_file=""
start=yes
prefix="${DESTDIR:-}"

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --server) server="$2"; shift 2 ;;
        --enroll-token) token="$2"; shift 2 ;;
        --enroll-token-file) token_file="$2"; shift 2 ;;
        --no-start) start=no; shift ;;
        -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ -z "$prefix" ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (the agent writes /sys/kernel/mm/ksm)" >&2
    exit 1
fi
if [ ! -f "$binary" ]; then
    echo "install.sh: no agent binary at $binary; build it with 'make agent-static' or pass --binary" >&2
    exit 1
fi

install -d -m 0755 "$prefix/usr/local/bin" "$prefix/etc/systemd/system" "$prefix/usr/share/doc/ksmfleet-agent"
install -d -m 0700 "$prefix/etc/ksmfleet" "$prefix/var/lib/ksmfleet-agent"
install -m 0755 "$binary" "$prefix/usr/local/bin/ksmfleet-agent"
install -m 0644 "$here/ksmfleet-agent.service" "$prefix/etc/systemd/system/ksmfleet-agent.service"
install -m 0644 "$here/README.md" "$prefix/usr/share/doc/ksmfleet-agent/README.md"

conf="$prefix/etc/ksmfleet/agent.conf"
umask 077
if [ ! -f "$conf" ]; then
    install -m 0600 "$here/agent.conf.example" "$conf"
    echo "installed $conf (edit it: server and enrollment token)"
fi
chmod 0600 "$conf"
set_key() {  # set_key KEY VALUE: replaces or appends KEY=VALUE in the config
    tmp="$conf.tmp.$$"
    grep -v "^$1=" "$conf" > "$tmp" || true
    printf '%s=%s\n' "$1" "$2" >> "$tmp"
    chmod 0600 "$tmp"
    mv "$tmp" "$conf"
}
[ -n "$server" ] && set_key server "$server"
drop_key() {  # drop_key KEY: removes KEY's lines from the config
    tmp="$conf.tmp.$$"
    grep -v "^$1=" "$conf" > "$tmp" || true
    chmod 0600 "$tmp"
    mv "$tmp" "$conf"
}
# The token and its file are one setting: a new one replaces the other kind, else an old token
# left in the file would win over a new token file given here.
if [ -n "$token" ]; then set_key enroll-token "$token"; drop_key enroll-token-file; fi
if [ -n "$token_file" ]; then set_key enroll-token-file "$token_file"; drop_key enroll-token; fi

if [ -z "$prefix" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$start" = yes ]; then
        systemctl enable --now ksmfleet-agent.service
        systemctl --no-pager status ksmfleet-agent.service || true
    else
        systemctl enable ksmfleet-agent.service
    fi
else
    echo "systemd not running here: start it with /usr/local/bin/ksmfleet-agent run --config-file /etc/ksmfleet/agent.conf"
fi
echo "ksmfleet-agent installed"
