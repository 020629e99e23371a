#!/usr/bin/env bash
# Benchmark: snapcopy against the ways people copy tables today, on the same servers with the
# same settings, each method ending with the tables' primary keys and indexes in place.
#   1. binary COPY TO STDOUT | COPY FROM STDIN through psql, then keys and indexes (baseline)
#   2. pg_dump -Fc, then pg_restore -j 2
#   3. pgcopydb clone (Debian package pgcopydb; installed when we are root)
#   4. snapcopy full, --jobs 1 and the default, through dblink and through postgres_fdw
#   5. snapcopy --mode incremental after 1% new rows on the source, through each link
#   6. snapcopy verify of the large table
#   7. snapcopy with a subset: 1% of the customers and the events that reference them
# Prints seconds per run, the median, MB/s and each method's ratio to method 1.
# Environment: SIZE_MB (default 1000, the large table's heap size), RUNS (default 3), ONLY (a
# grep -E pattern: run only the methods whose name matches; the baseline always runs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh

SIZE_MB="${SIZE_MB:-1000}"
RUNS="${RUNS:-3}"

if ! command -v pgcopydb >/dev/null && [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgcopydb >/dev/null 2>&1 || true
fi

echo "== building snapcopy (release)" >&2
cargo build --release -q
snapcopy="$PWD/target/release/snapcopy"

pg_setup
settings=(shared_buffers=512MB maintenance_work_mem=512MB work_mem=64MB max_wal_size=8GB
          checkpoint_timeout=30min max_connections=50)
pg_start source "${settings[@]}"
pg_start target "${settings[@]}"
chmod 777 "$PG_WORK"
pg_psql source postgres -c "CREATE DATABASE bench"

# About 210 bytes of heap per row of the large table.
rows=$(( SIZE_MB * 1024 * 1024 / 210 ))
echo "== creating the source: events ($rows rows, ~${SIZE_MB} MB) and related tables" >&2
pg_psql source bench <<SQL
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, created timestamptz NOT NULL);
INSERT INTO customers SELECT g, 'customer ' || g, timestamptz '2020-01-01' + g * interval '1 minute'
FROM generate_series(1, 20000) g;
CREATE TABLE kinds (id integer PRIMARY KEY, label text NOT NULL);
INSERT INTO kinds SELECT g, 'kind ' || g FROM generate_series(1, 20) g;
CREATE TABLE events (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    kind_id integer NOT NULL REFERENCES kinds (id),
    note text,
    amount numeric(12,2),
    payload jsonb,
    at timestamptz NOT NULL,
    tags text[]
);
INSERT INTO events
SELECT g, 1 + g % 20000, 1 + g % 20, md5(g::text) || ' ' || repeat('x', g % 40),
       (g % 100000) / 100.0,
       jsonb_build_object('n', g, 'ok', g % 2 = 0, 'src', 'web'),
       timestamptz '2024-01-01' + g * interval '1 second',
       ARRAY['t' || g % 7, 't' || g % 11]
FROM generate_series(1, $rows) g;
CREATE INDEX events_at_idx ON events (at);
-- Foreign-key columns are usually indexed; a subset follows the key through it.
CREATE INDEX events_customer_idx ON events (customer_id);
VACUUM ANALYZE;
SQL
mb=$(pg_psql source bench -At -c "SELECT round(sum(pg_table_size(oid)) / 1048576.0) FROM pg_class WHERE relname IN ('events', 'customers', 'kinds')")
echo "== source tables: ${mb} MB of heap and TOAST" >&2

S="$(pg_conninfo source bench)"
T="$(pg_conninfo target bench)"
tables=(public.customers public.kinds public.events)

reset_target() {
    pg_psql target postgres -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench" >/dev/null
}

now() { date +%s.%N; }

m1_copy_pipe() {
    "$PG_BIN/pg_dump" -d "$S" --section=pre-data -t 'public.*' | pg_psql target bench >/dev/null
    for t in "${tables[@]}"; do
        "$PG_BIN/psql" -X -q -d "$S" -c "COPY $t TO STDOUT (FORMAT binary)" \
            | "$PG_BIN/psql" -X -q -d "$T" -c "COPY $t FROM STDIN (FORMAT binary)"
    done
    "$PG_BIN/pg_dump" -d "$S" --section=post-data -t 'public.*' | pg_psql target bench >/dev/null
}

m2_dump_restore() {
    local f="$PG_WORK/bench.dump"
    "$PG_BIN/pg_dump" -Fc -d "$S" -t 'public.*' -f "$f"
    "$PG_BIN/pg_restore" -j 2 -d "$T" "$f"
    rm -f "$f"
}

m3_pgcopydb() {
    local dir="$PG_WORK/pgcopydb"
    rm -rf "$dir"
    pgcopydb clone --source "postgresql:///bench?host=$PG_WORK/source&port=$PORT_source&user=postgres" \
        --target "postgresql:///bench?host=$PG_WORK/target&port=$PORT_target&user=postgres" \
        --table-jobs 2 --index-jobs 2 --dir "$dir" --no-owner --no-acl >/dev/null 2>&1
}

m4_snapcopy_1() { "$snapcopy" -q --source "$S" --target "$T" --jobs 1 'public.*' >/dev/null; }
m4_snapcopy_default() { "$snapcopy" -q --source "$S" --target "$T" 'public.*' >"$PG_WORK/summary"; }
m4_snapcopy_one_statement() { SNAPCOPY_BATCH_MB=0 m4_snapcopy_default; }
m4_snapcopy_fdw() { "$snapcopy" -q --source "$S" --target "$T" --link postgres_fdw 'public.*' >/dev/null; }
m7_subset() { "$snapcopy" -q --source "$S" --target "$T" --where 'customers=id <= 200' 'public.*' >/dev/null; }

# Whether ONLY lets a method run (the baseline always does).
wanted() {
    [ -z "${ONLY:-}" ] || [[ "$1" == 1* ]] || echo "$1" | grep -Eq "$ONLY"
}

declare -A times
run() {
    local name="$1" fn="$2" prepare="${3:-reset_target}"
    local i
    wanted "$name" || return 0
    for i in $(seq 1 "$RUNS"); do
        $prepare
        local t0 t1
        t0=$(now)
        if $fn; then
            t1=$(now)
            times[$name]+="$(echo "$t1 - $t0" | bc) "
        else
            times[$name]+="failed "
        fi
        echo "   $name run $i: $(echo "${times[$name]}" | awk '{print $NF}') s" >&2
    done
}

echo "== running each method $RUNS times" >&2
run "1 binary COPY pipe + keys" m1_copy_pipe
run "2 pg_dump -Fc + pg_restore -j 2" m2_dump_restore
if command -v pgcopydb >/dev/null; then
    run "3 pgcopydb clone" m3_pgcopydb
fi
run "4 snapcopy full --jobs 1" m4_snapcopy_1
run "4 snapcopy full (default jobs)" m4_snapcopy_default
run "4 snapcopy full, no batches" m4_snapcopy_one_statement
run "4 snapcopy full, postgres_fdw" m4_snapcopy_fdw

# Incremental: a full copy first (not timed), then 1% new rows on the source each run.
add_rows() {
    pg_psql source bench -q -c "INSERT INTO events SELECT id + $rows * 10, customer_id, kind_id, note, amount, payload, at, tags FROM events WHERE id > (SELECT max(id) FROM events) - $((rows / 100))" >/dev/null
}
m5_incremental() { "$snapcopy" -q --source "$S" --target "$T" --mode incremental >/dev/null; }
if wanted "5 snapcopy incremental (+1% rows)"; then
    reset_target
    m4_snapcopy_default
    run "5 snapcopy incremental (+1% rows)" m5_incremental add_rows
fi
m5_incremental_fdw() { "$snapcopy" -q --source "$S" --target "$T" --link postgres_fdw --mode incremental >/dev/null; }
if wanted "5 snapcopy incremental, postgres_fdw"; then
    reset_target
    m4_snapcopy_fdw
    run "5 snapcopy incremental, postgres_fdw" m5_incremental_fdw add_rows
fi
m6_verify() { "$snapcopy" verify --source "$S" --target "$T" public.events >/dev/null; }
run "6 snapcopy verify (events)" m6_verify true
run "7 snapcopy subset (1% of customers)" m7_subset
# A full reload of tables snapcopy manages (a full copy first, not timed): keys and indexes of
# large tables are built after their rows, as in a first copy.
m8_reload() { "$snapcopy" -q --source "$S" --target "$T" 'public.*' >/dev/null; }
copied_target() { reset_target; m4_snapcopy_default; }
run "8 snapcopy full reload (managed)" m8_reload copied_target

median() { tr ' ' '\n' | grep -v '^$' | grep -v failed | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "failed"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2}'; }

base=$(echo "${times["1 binary COPY pipe + keys"]}" | median)
echo
echo "snapcopy's summary of its last full copy with the default jobs:"
cat "$PG_WORK/summary"
echo
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), $(nproc) cores, ${mb} MB source tables, $RUNS runs, median seconds"
printf "%-36s %10s %8s %7s   %s\n" method median MB/s ratio runs
for name in "1 binary COPY pipe + keys" "2 pg_dump -Fc + pg_restore -j 2" "3 pgcopydb clone" \
            "4 snapcopy full --jobs 1" "4 snapcopy full (default jobs)" "4 snapcopy full, no batches" \
            "4 snapcopy full, postgres_fdw" "5 snapcopy incremental (+1% rows)" \
            "5 snapcopy incremental, postgres_fdw" "6 snapcopy verify (events)" \
            "7 snapcopy subset (1% of customers)" "8 snapcopy full reload (managed)"; do
    [ -n "${times[$name]:-}" ] || continue
    m=$(echo "${times[$name]}" | median)
    if [ "$m" = failed ]; then
        printf "%-36s %10s\n" "$name" failed
        continue
    fi
    printf "%-36s %10.2f %8.1f %7.2f   %s\n" "$name" "$m" "$(echo "$mb / $m" | bc -l)" "$(echo "$m / $base" | bc -l)" "${times[$name]}"
done
