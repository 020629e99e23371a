# Shell helpers for scripts that need throwaway PostgreSQL servers (demo, bench).
# Source it; call pg_setup once, then pg_start NAME for each server. Every server lives in
# $PG_WORK/NAME (socket there too) and is stopped and removed by the EXIT trap.

pg_find_bin() {
    for v in 17 16 15; do
        if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then echo "/usr/lib/postgresql/$v/bin"; return; fi
    done
    echo "PostgreSQL server binaries not found: run scripts/test.sh once (it installs them)" >&2
    exit 1
}

pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_setup() {
    PG_BIN="$(pg_find_bin)"
    PG_WORK="$(mktemp -d "${TMPDIR:-/tmp}/snapcopy-demo-XXXXXX")"
    chmod 755 "$PG_WORK"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$PG_WORK"
    PG_SERVERS=()
    trap pg_cleanup EXIT
}

pg_cleanup() {
    for name in "${PG_SERVERS[@]}"; do
        pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_WORK/$name/data" -m fast -w stop >/dev/null 2>&1 || true
    done
    rm -rf "$PG_WORK"
}

pg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# pg_start NAME [extra postgres -c settings...]: sets PORT_<NAME> and prints nothing.
pg_start() {
    local name="$1"; shift
    local dir="$PG_WORK/$name"
    mkdir -p "$dir"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
    pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 -N >/dev/null
    local port; port="$(pg_free_port)"
    local opts="-p $port -k $dir -c listen_addresses=127.0.0.1"
    for s in "$@"; do opts="$opts -c $s"; done
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "$opts" start >/dev/null
    PG_SERVERS+=("$name")
    printf -v "PORT_${name}" '%s' "$port"
}

# pg_conninfo NAME DB
pg_conninfo() {
    local port_var="PORT_$1"
    echo "host=$PG_WORK/$1 port=${!port_var} dbname=$2 user=postgres"
}

# pg_psql NAME DB [psql args...]
pg_psql() {
    local name="$1" db="$2"; shift 2
    local port_var="PORT_$name"
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_WORK/$name" -p "${!port_var}" -U postgres -d "$db" "$@"
}
