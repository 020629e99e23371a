#!/usr/bin/env bash
# Runs everything CI runs: installs what is missing (PostgreSQL 15 server, contrib with dblink,
# PostGIS), then cargo fmt --check, clippy with warnings as errors, and every test.
# Tests start their own throwaway servers; nothing here needs a running PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin=""
for v in 17 16 15; do
    if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then pg_bin="/usr/lib/postgresql/$v/bin"; break; fi
done
pg_version="${pg_bin#/usr/lib/postgresql/}"; pg_version="${pg_version%/bin}"

need_install=()
[ -n "$pg_bin" ] || need_install+=(postgresql postgresql-contrib)
[ -z "$pg_bin" ] || [ -f "/usr/share/postgresql/$pg_version/extension/dblink.control" ] \
    || need_install+=(postgresql-contrib)
[ -z "$pg_bin" ] || [ -f "/usr/share/postgresql/$pg_version/extension/postgis.control" ] \
    || need_install+=("postgresql-${pg_version}-postgis-3")
[ -n "$pg_bin" ] || need_install+=(postgresql-15-postgis-3)
# The TLS tests make their own CA with the openssl command.
command -v openssl >/dev/null || need_install+=(openssl)

if [ ${#need_install[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing: ${need_install[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need_install[@]}" >/dev/null
    else
        echo "missing: ${need_install[*]}; install them (as root: apt-get install ${need_install[*]})" >&2
        exit 1
    fi
fi

# Debian's package starts a cluster on install; the tests use their own servers only.
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _ status _; do
        if [ "$status" = online ]; then pg_ctlcluster "$ver" "$name" stop || true; fi
    done
fi

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets 2>&1
