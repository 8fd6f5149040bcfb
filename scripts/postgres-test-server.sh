#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL server for the test suites.
#
#   scripts/postgres-test-server.sh start DIR   # prints postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
#   scripts/postgres-test-server.sh stop DIR    # stops it and removes its data
#
# DIR is e.g. "$(pwd)/.build/postgres". The server's data lives in DIR/data, its unix socket in
# DIR/socket, its log in DIR/postgres.log and its URL in DIR/url (the one line `start` prints).
# `start` is idempotent: with a server from DIR already running it prints that server's URL.
# `stop` only ever stops the server of DIR's data directory (pg_ctl stop), nothing else.
#
# The server also speaks TLS, with certificates made at start by a CA of its own (DATA/tls:
# ca.crt; the server's certificate names localhost only, not 127.0.0.1; client.crt and client.key
# are a client certificate for the role ksmfleet_tls_cert, which may only log in with it (and
# the role ksmfleet_password only with a password);
# other-ca.crt is a CA that signed nothing here). The printed URL asks for a plain connection
# (sslmode=disable), as every suite and benchmark connects; PostgresTLSTests finds the files
# through `SHOW ssl_ca_file`.
#
# Uses the Debian package `postgresql` (the newest /usr/lib/postgresql/*/bin), never whatever
# `pg_ctl` happens to be first on PATH.
set -euo pipefail

PG_USER=ksmfleet-pg

die() { echo "postgres-test-server: $*" >&2; exit 1; }
say() { echo "postgres-test-server: $*" >&2; }

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2
[[ -n $dir && ( $cmd == start || $cmd == stop ) ]] || usage

# The server binaries of the newest installed major version.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ -z $PG_BIN || ! -x $PG_BIN/initdb || ! -x $PG_BIN/pg_ctl || ! -x $PG_BIN/postgres ]]; then
    die "the PostgreSQL server is not installed (no /usr/lib/postgresql/*/bin/initdb); install it with: apt-get install postgresql"
fi
for tool in pg_isready; do
    [[ -x $PG_BIN/$tool ]] || command -v "$tool" >/dev/null || die "$tool is missing; install it with: apt-get install postgresql"
done
PG_ISREADY=$PG_BIN/pg_isready
[[ -x $PG_ISREADY ]] || PG_ISREADY=$(command -v pg_isready)

# PostgreSQL refuses to run as root ("root" execution of the PostgreSQL server is not
# permitted), and the machines that run the tests usually are root: there, the server runs as an
# unprivileged system user that owns the data directory. Run as anyone else, it runs as that user.
if [[ $EUID -eq 0 ]]; then
    as_pg() { runuser -u "$PG_USER" -- "$@"; }
else
    as_pg() { "$@"; }
fi

ensure_user() {
    [[ $EUID -eq 0 ]] || return 0
    if ! id -u "$PG_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER" \
            || die "could not create the system user $PG_USER"
        say "created system user $PG_USER"
    fi
}

# Absolute paths: the server is started with / as its working directory (the unprivileged user
# may not be able to enter the caller's one).
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
cd /

url_file=$dir/url
log_file=$dir/postgres.log
# Where the data directory and the socket directory really are (DIR/data and DIR/socket, or a
# directory under /tmp when the server user cannot reach DIR): written by start, read by stop.
where_file=$dir/location

read_location() {
    data=$dir/data
    sock=$dir/socket
    tmp_root=
    if [[ -f $where_file ]]; then
        # shellcheck disable=SC1090
        source "$where_file"
    fi
}

# Whether the postmaster of $data is alive: the pid in its postmaster.pid exists and is not a
# zombie (a killed postmaster can stay a zombie for a while where init reaps lazily, and
# `pg_ctl status` would still call it running).
is_running() {
    [[ -f $data/postmaster.pid ]] || return 1
    local pid stat
    pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    [[ -n $stat && $stat != Z* ]]
}

# make_tls DIR: a CA, the server's certificate (for localhost only), a client certificate for
# the role ksmfleet_tls_cert, and a second CA that signed none of them. P-256 keys: made in
# milliseconds. The server's files belong to the server user (PostgreSQL refuses a key others
# may read); the client's key stays the caller's, mode 0600.
make_tls() {
    local t=$1
    # Keys are never readable by others, not even between their writing and the chmod below.
    local old_umask
    old_umask=$(umask)
    umask 077
    command -v openssl >/dev/null || die "openssl is missing; install it with: apt-get install openssl"
    mkdir -p "$t"
    ossl() { openssl "$@" >>"$t/openssl.log" 2>&1 || { cat "$t/openssl.log" >&2; die "openssl $1 failed"; }; }
    local key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
    local ca_ext=(-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign")
    ossl req -x509 "${key[@]}" -days 30 -subj "/CN=ksmfleet test CA" "${ca_ext[@]}" -keyout "$t/ca.key" -out "$t/ca.crt"
    ossl req -x509 "${key[@]}" -days 30 -subj "/CN=ksmfleet other test CA" "${ca_ext[@]}" -keyout "$t/other-ca.key" -out "$t/other-ca.crt"
    ossl req -new "${key[@]}" -subj "/CN=localhost" -keyout "$t/server.key" -out "$t/server.csr"
    printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$t/server.ext"
    ossl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial -days 30 -extfile "$t/server.ext" -out "$t/server.crt"
    ossl req -new "${key[@]}" -subj "/CN=ksmfleet_tls_cert" -keyout "$t/client.key" -out "$t/client.csr"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$t/client.ext"
    ossl x509 -req -in "$t/client.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial -days 30 -extfile "$t/client.ext" -out "$t/client.crt"
    rm -f -- "$t"/*.csr "$t"/*.ext "$t"/*.srl "$t/ca.key" "$t/other-ca.key"
    umask "$old_umask"
    chmod 600 "$t/server.key" "$t/client.key"
    chmod 755 "$t"
    chmod 644 "$t"/*.crt
    if [[ $EUID -eq 0 ]]; then
        chown "$PG_USER:" "$t" "$t/server.key" "$t/server.crt" "$t/ca.crt"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

remove_data() {
    # Only the paths this script created: DIR/data, DIR/socket, and its own mktemp directory.
    rm -rf -- "$data" "$sock"
    if [[ -n ${tmp_root:-} && -d $tmp_root && $tmp_root == /tmp/ksmfleet-pg.* ]]; then
        rm -rf -- "$tmp_root"
    fi
    rm -f -- "$url_file" "$where_file"
}

start() {
    ensure_user
    read_location
    if is_running && [[ -s $url_file ]]; then
        local old_port
        old_port=$(sed -n 's|^postgres://postgres@127.0.0.1:\([0-9]*\)/postgres?sslmode=disable$|\1|p' "$url_file")
        if [[ -n $old_port ]] && "$PG_ISREADY" -q -h 127.0.0.1 -p "$old_port" -t 10; then
            cat "$url_file"
            return 0
        fi
        # Running but not answering: it is ours (DIR's data directory), so stop it and start over.
        say "the server of $data does not answer; stopping it"
        stop_server
    fi
    # A data directory left behind by a server that is gone (killed, machine restarted): it is a
    # throwaway, so start over with a fresh one.
    if [[ -e $data || -e $sock || -e $where_file ]]; then
        say "removing the data of a server from $dir that is not running"
        remove_data
    fi

    data=$dir/data
    sock=$dir/socket
    tmp_root=
    # The server user must be able to reach DIR (every parent traversable). When it cannot (e.g.
    # DIR under /root, mode 700), the data and socket go to a fresh directory under /tmp instead.
    if [[ $EUID -eq 0 ]] && ! runuser -u "$PG_USER" -- test -x "$dir"; then
        tmp_root=$(mktemp -d /tmp/ksmfleet-pg.XXXXXX)
        chmod 755 "$tmp_root"
        data=$tmp_root/data
        sock=$tmp_root/socket
        say "$PG_USER cannot traverse $dir: using $tmp_root for the data and socket directories"
    fi
    # A unix socket path is limited to 107 bytes; a deep DIR puts the socket under /tmp.
    if (( ${#sock} + 20 > 100 )); then
        [[ -n $tmp_root ]] || { tmp_root=$(mktemp -d /tmp/ksmfleet-pg.XXXXXX); chmod 755 "$tmp_root"; }
        sock=$tmp_root/socket
        say "the socket path under $dir is too long: using $sock"
    fi
    printf 'data=%q\nsock=%q\ntmp_root=%q\n' "$data" "$sock" "$tmp_root" >"$where_file"

    mkdir -p "$data" "$sock"
    chmod 700 "$data"
    : >"$log_file"
    if [[ $EUID -eq 0 ]]; then
        chown "$PG_USER:" "$data" "$sock" "$log_file"
    fi
    if [[ -n $tmp_root ]]; then
        # The log must be written by the server user, who cannot reach DIR: keep it beside the
        # data and leave a link to it at DIR/postgres.log.
        rm -f -- "$log_file"
        : >"$tmp_root/postgres.log"
        [[ $EUID -ne 0 ]] || chown "$PG_USER:" "$tmp_root/postgres.log"
        ln -s "$tmp_root/postgres.log" "$log_file"
        log_file=$tmp_root/postgres.log
    fi

    # Locale C (byte order): ORDER BY on text then sorts like SQLite's default BINARY collation,
    # so both engines return rows in the same order. Trust authentication is only acceptable
    # because the server listens on the unix socket in DIR and on 127.0.0.1 only (below), and its
    # data is thrown away.
    if ! as_pg "$PG_BIN/initdb" -D "$data" --no-sync -A trust -U postgres --locale=C -E UTF8 >>"$log_file" 2>&1; then
        cat "$log_file" >&2
        die "initdb failed (log: $log_file)"
    fi
    make_tls "$data/tls"
    cat >"$data/pg_hba.conf" <<'EOF'
# Throwaway test server: trust, but only over the unix socket and loopback. The role
# ksmfleet_tls_cert logs in over TLS with its client certificate only, ksmfleet_password with
# its password.
local   all all               trust
hostssl all ksmfleet_tls_cert 127.0.0.1/32 cert
host    all ksmfleet_tls_cert 127.0.0.1/32 reject
host    all ksmfleet_password 127.0.0.1/32 scram-sha-256
host    all all               127.0.0.1/32 trust
EOF
    echo "include 'ksmfleet-test.conf'" >>"$data/postgresql.conf"
    [[ $EUID -ne 0 ]] || chown "$PG_USER:" "$data/pg_hba.conf" "$data/postgresql.conf"

    local attempt port started=
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        # Loopback only, on an ephemeral port nobody else uses. fsync off: a crash loses a
        # throwaway database, nothing more, and the tests run much faster.
        cat >"$data/ksmfleet-test.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
fsync = off
synchronous_commit = on
full_page_writes = off
max_connections = 300
shared_buffers = 128MB
ssl = on
ssl_cert_file = '$data/tls/server.crt'
ssl_key_file = '$data/tls/server.key'
ssl_ca_file = '$data/tls/ca.crt'
EOF
        [[ $EUID -ne 0 ]] || chown "$PG_USER:" "$data/ksmfleet-test.conf"
        if as_pg "$PG_BIN/pg_ctl" start -D "$data" -l "$log_file" -w -t 30 >&2; then
            started=1
            break
        fi
        # Another process may have taken the port between picking and binding it: try another.
        if grep -q "could not bind\|Address already in use" "$log_file"; then
            say "port $port was taken, trying another one"
            continue
        fi
        break
    done
    if [[ -z $started ]]; then
        tail -n 30 "$log_file" >&2 || true
        die "the server did not start (log: $log_file)"
    fi

    local deadline=$((SECONDS + 30))
    until "$PG_ISREADY" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2; do
        if (( SECONDS >= deadline )); then
            tail -n 30 "$log_file" >&2 || true
            die "the server did not answer on 127.0.0.1:$port within 30 s (log: $log_file)"
        fi
        sleep 0.2
    done

    local url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
    echo "$url" >"$url_file"
    echo "$url"
}

# Sends SIGCONT to the server of $data and its processes. The outage tests freeze the
# postmaster or backends with SIGSTOP and let them go on themselves; a test process killed in
# between (a timeout, ^C) left them frozen, and a frozen process handles no shutdown signal: the
# stop below then waited out both its timeouts and failed, and the server stayed, frozen.
thaw_server() {
    local pid
    pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    kill -CONT "$pid" 2>/dev/null || true
    pkill -CONT -P "$pid" 2>/dev/null || true
}

# Stops the server of $data (and only it: pg_ctl signals the pid in that directory's
# postmaster.pid). Fast shutdown first, immediate if that does not finish in 30 s.
stop_server() {
    is_running || return 0
    thaw_server
    if as_pg "$PG_BIN/pg_ctl" stop -D "$data" -m fast -w -t 30 >&2 || ! is_running; then
        return 0
    fi
    say "fast shutdown did not finish in 30 s, using immediate shutdown"
    as_pg "$PG_BIN/pg_ctl" stop -D "$data" -m immediate -w -t 30 >&2 || true
    ! is_running || die "could not stop the server of $data"
}

stop() {
    read_location
    stop_server
    remove_data
    if [[ -L $dir/postgres.log ]]; then rm -f -- "$dir/postgres.log"; fi
}

case $cmd in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
