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
#   8. snapcopy full reload of the tables it manages
# Two more workloads, each against its own baseline in the same run:
#   many: 401 tables of 1,000 rows, each with a foreign key to one hub table: pg_dump | psql
#         (the baseline), snapcopy's first copy, a full re-run, an incremental run with nothing new
#   uuid: one table with a uuid primary key, 1M rows (~220 MB): snapcopy's first copy (the
#         baseline), a full reload, incremental after 1% new rows, incremental with nothing new,
#         and --mode sync after 10,000 inserts, 5,000 updates of recent rows and 2,000 deletes
#         (with the share of the table's rows it wrote)
# The many and uuid workloads run in rounds: each round runs every method once, baseline first,
# so that a ratio compares runs minutes apart (the machine's speed drifts within an invocation).
# Prints seconds per run, the median, MB/s, each method's ratio to its baseline, snapcopy's peak
# RSS (it must not grow with the size of the tables), and each goal of issue 16, met or not.
# Environment: SIZE_MB (default 1000, the large table's heap size), RUNS (default 3), ONLY (a
# grep -E pattern: run only the methods whose name matches; baselines always run), WORKLOADS
# (default "large many uuid").
set -euo pipefail
trap 'echo "bench.sh: failed at line $LINENO" >&2' ERR
cd "$(dirname "$0")/.."
source scripts/pg.sh

SIZE_MB="${SIZE_MB:-1000}"
RUNS="${RUNS:-3}"

if ! command -v pgcopydb >/dev/null && [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgcopydb >/dev/null 2>&1 || true
fi

echo "== building snapcopy (release)" >&2
cargo build --release -q
snapcopy_bin="$PWD/target/release/snapcopy"
WORKLOADS="${WORKLOADS:-large many uuid}"
has_workload() { [[ " $WORKLOADS " == *" $1 "* ]]; }

# snapcopy, its peak RSS (KB) kept per method: the highest of its runs.
declare -A rss
current=""
snap() {
    local status=0
    if command -v /usr/bin/time >/dev/null; then
        /usr/bin/time -f %M -o "$PG_WORK/rss" "$snapcopy_bin" "$@" || status=$?
        if [ -n "$current" ] && [ -s "$PG_WORK/rss" ]; then
            local kb; kb=$(tail -1 "$PG_WORK/rss")
            if [ "$kb" -gt "${rss[$current]:-0}" ] 2>/dev/null; then rss[$current]=$kb; fi
        fi
    else
        "$snapcopy_bin" "$@" || status=$?
    fi
    return $status
}

pg_setup
settings=(shared_buffers=512MB maintenance_work_mem=512MB work_mem=64MB max_wal_size=8GB
          checkpoint_timeout=30min max_connections=50)
pg_start source "${settings[@]}"
pg_start target "${settings[@]}"
chmod 777 "$PG_WORK"

# Whether ONLY lets a method run (baselines always do).
wanted() {
    [ -z "${ONLY:-}" ] || [[ "$1" == 1* ]] || [[ "$1" == *baseline* ]] || echo "$1" | grep -Eq "$ONLY"
}

now() { date +%s.%N; }

declare -A times
# timed NAME FUNCTION PREPARE I: the Ith run of a method, PREPARE first (not timed).
timed() {
    local name="$1" fn="$2" prepare="$3" i="$4"
    $prepare
    local t0 t1
    current="$name"
    t0=$(now)
    if $fn; then
        t1=$(now)
        times[$name]+="$(echo "$t1 - $t0" | bc) "
    else
        times[$name]+="failed "
    fi
    current=""
    echo "   $name run $i: $(echo "${times[$name]}" | awk '{print $NF}') s" >&2
}

# run NAME FUNCTION [PREPARE]: RUNS runs of one method in a row.
run() {
    local name="$1" fn="$2" prepare="${3:-reset_target}"
    local i
    wanted "$name" || return 0
    for i in $(seq 1 "$RUNS"); do
        timed "$name" "$fn" "$prepare" "$i"
    done
}

# rounds "NAME;FUNCTION;PREPARE"...: RUNS rounds, each running every wanted method once in the
# order given, so that a method's runs and its baseline's are minutes apart at most: the
# machine's speed drifts within an invocation (a reload measured 3.5-4.3 s in one invocation
# and 4.3-4.9 s in the next, on the same code), and a ratio of medians taken at different
# moments carries that drift.
rounds() {
    local i spec name fn prepare
    for i in $(seq 1 "$RUNS"); do
        for spec in "$@"; do
            IFS=';' read -r name fn prepare <<< "$spec"
            wanted "$name" || continue
            timed "$name" "$fn" "${prepare:-reset_target}" "$i"
        done
    done
}

median() { tr ' ' '\n' | awk '$1 != "" && $1 != "failed"' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "failed"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2}'; }

# report TITLE MB BASELINE METHOD...: one line per method that ran: median seconds, MB/s, ratio
# to the baseline's median, snapcopy's peak RSS, the runs.
report() {
    local title="$1" mb="$2" baseline="$3"; shift 3
    local base; base=$(echo "${times[$baseline]:-}" | median)
    echo
    echo "$title"
    printf "%-40s %9s %8s %7s %8s   %s\n" method median MB/s ratio "RSS MB" runs
    local name m
    for name in "$baseline" "$@"; do
        [ -n "${times[$name]:-}" ] || continue
        m=$(echo "${times[$name]}" | median)
        if [ "$m" = failed ] || [ "$base" = failed ]; then
            printf "%-40s %9s\n" "$name" failed
            continue
        fi
        local mem="-"
        [ -z "${rss[$name]:-}" ] || mem=$(echo "scale=1; ${rss[$name]} / 1024" | bc)
        printf "%-40s %9.2f %8.1f %7.2f %8s   %s\n" "$name" "$m" "$(echo "$mb / $m" | bc -l)" \
            "$(echo "$m / $base" | bc -l)" "$mem" "${times[$name]}"
    done
}

# goal LABEL METHOD BASELINE LIMIT: whether METHOD's median is at most LIMIT times BASELINE's.
goals=()
goal() {
    local label="$1" method="$2" baseline="$3" limit="$4"
    [ -n "${times[$method]:-}" ] && [ -n "${times[$baseline]:-}" ] || return 0
    local m b; m=$(echo "${times[$method]}" | median); b=$(echo "${times[$baseline]}" | median)
    if [ "$m" = failed ] || [ "$b" = failed ]; then
        goals+=("$(printf "%-58s %s" "$label" "failed")")
        return 0
    fi
    local ratio; ratio=$(echo "$m / $b" | bc -l)
    local verdict="not met"
    [ "$(echo "$ratio <= $limit" | bc -l)" = 1 ] && verdict="met"
    goals+=("$(printf "%-58s %5.2fx (goal <= %s): %s" "$label" "$ratio" "$limit" "$verdict")")
}

reset_db() {
    pg_psql target postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
}

# ---------------------------------------------------------------- large: one big table and two
if has_workload large; then
pg_psql source postgres -c "CREATE DATABASE bench"

# About 210 bytes of heap per row of the large table.
rows=$(( SIZE_MB * 1024 * 1024 / 210 ))
echo "== large: creating the source: events ($rows rows, ~${SIZE_MB} MB) and related tables" >&2

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

reset_target() { reset_db bench; }

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

m4_snapcopy_1() { snap -q --source "$S" --target "$T" --jobs 1 'public.*' >/dev/null; }
m4_snapcopy_default() { snap -q --source "$S" --target "$T" 'public.*' >"$PG_WORK/summary"; }
m4_snapcopy_one_statement() { SNAPCOPY_BATCH_MB=0 m4_snapcopy_default; }
m4_snapcopy_fdw() { snap -q --source "$S" --target "$T" --link postgres_fdw 'public.*' >/dev/null; }
m7_subset() { snap -q --source "$S" --target "$T" --where 'customers=id <= 200' 'public.*' >/dev/null; }

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
m5_incremental() { snap -q --source "$S" --target "$T" --mode incremental >/dev/null; }
if wanted "5 snapcopy incremental (+1% rows)"; then
    reset_target
    m4_snapcopy_default
    run "5 snapcopy incremental (+1% rows)" m5_incremental add_rows
fi
m5_incremental_fdw() { snap -q --source "$S" --target "$T" --link postgres_fdw --mode incremental >/dev/null; }
if wanted "5 snapcopy incremental, postgres_fdw"; then
    reset_target
    m4_snapcopy_fdw
    run "5 snapcopy incremental, postgres_fdw" m5_incremental_fdw add_rows
fi
m6_verify() { snap verify --source "$S" --target "$T" public.events >/dev/null; }
run "6 snapcopy verify (events)" m6_verify true
run "7 snapcopy subset (1% of customers)" m7_subset
# A full reload of tables snapcopy manages (a full copy first, not timed): keys and indexes of
# large tables are built after their rows, as in a first copy.
m8_reload() { snap -q --source "$S" --target "$T" 'public.*' >/dev/null; }
copied_target() { reset_target; m4_snapcopy_default; }
run "8 snapcopy full reload (managed)" m8_reload copied_target

echo
echo "snapcopy's summary of its last full copy with the default jobs:"
cat "$PG_WORK/summary"
report "large: ${mb} MB source tables" "$mb" "1 binary COPY pipe + keys" \
    "2 pg_dump -Fc + pg_restore -j 2" "3 pgcopydb clone" \
    "4 snapcopy full --jobs 1" "4 snapcopy full (default jobs)" "4 snapcopy full, no batches" \
    "4 snapcopy full, postgres_fdw" "5 snapcopy incremental (+1% rows)" \
    "5 snapcopy incremental, postgres_fdw" "6 snapcopy verify (events)" \
    "7 snapcopy subset (1% of customers)" "8 snapcopy full reload (managed)" > "$PG_WORK/report.large"
fi

# ---------------------------------------------------------------- many: 401 tables, one hub
if has_workload many; then
echo "== many: creating the source: a hub table and 400 tables that reference it" >&2
pg_psql source postgres -c "CREATE DATABASE many"
{
    echo "CREATE TABLE hub (id bigint PRIMARY KEY, name text NOT NULL);"
    echo "INSERT INTO hub SELECT g, 'hub ' || g FROM generate_series(1, 1000) g;"
    for k in $(seq -w 1 400); do
        echo "CREATE TABLE t$k (id bigserial PRIMARY KEY, hub_id bigint NOT NULL REFERENCES hub (id), label text, amount numeric(10,2), at timestamptz NOT NULL DEFAULT now());"
        echo "CREATE INDEX ON t$k (hub_id);"
        echo "INSERT INTO t$k (hub_id, label, amount, at) SELECT 1 + g % 1000, 'row ' || g, g / 7.0, timestamptz '2024-01-01' + g * interval '1 hour' FROM generate_series(1, 1000) g;"
    done
    echo "VACUUM ANALYZE;"
} | pg_psql source many >/dev/null
many_mb=$(pg_psql source many -At -c "SELECT round(sum(pg_total_relation_size(relid)) / 1048576.0) FROM pg_stat_user_tables")
SM="$(pg_conninfo source many)"
TM="$(pg_conninfo target many)"
reset_many() { reset_db many; many_done=; }
many_copied() { [ -n "${many_done:-}" ] || { reset_many; m_many_first; many_done=1; }; }
m_many_dump() { "$PG_BIN/pg_dump" -d "$SM" | "$PG_BIN/psql" -X -q -d "$TM" >/dev/null; }
m_many_first() { snap -q --source "$SM" --target "$TM" 'public.*' >/dev/null && many_done=1; }
m_many_incremental() { snap -q --source "$SM" --target "$TM" --mode incremental >/dev/null; }
rounds "many baseline: pg_dump | psql;m_many_dump;reset_many" \
    "many: snapcopy first copy;m_many_first;reset_many" \
    "many: snapcopy full re-run;m_many_first;many_copied" \
    "many: snapcopy incremental, nothing new;m_many_incremental;many_copied"
report "many: 401 tables, ${many_mb} MB" "$many_mb" "many baseline: pg_dump | psql" \
    "many: snapcopy first copy" "many: snapcopy full re-run" \
    "many: snapcopy incremental, nothing new" > "$PG_WORK/report.many"
goal "many: first copy vs pg_dump | psql" "many: snapcopy first copy" "many baseline: pg_dump | psql" 1.0
goal "many: full re-run vs pg_dump | psql" "many: snapcopy full re-run" "many baseline: pg_dump | psql" 1.0
goal "many: incremental, nothing new vs first copy" "many: snapcopy incremental, nothing new" "many: snapcopy first copy" 0.3
fi

# ---------------------------------------------------------------- uuid: a uuid key, 1M rows
if has_workload uuid; then
UUID_ROWS="${UUID_ROWS:-1000000}"
echo "== uuid: creating the source: items ($UUID_ROWS rows, uuid primary key)" >&2
pg_psql source postgres -c "CREATE DATABASE uu"
pg_psql source uu >/dev/null <<SQL
CREATE TABLE items (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account bigint NOT NULL,
    title text NOT NULL,
    body text,
    price numeric(12,2),
    created timestamptz NOT NULL,
    attrs jsonb
);
INSERT INTO items (account, title, body, price, created, attrs)
SELECT g % 5000, 'item ' || g, md5(g::text) || repeat(' lorem ipsum', 6), (g % 100000) / 100.0,
       timestamptz '2024-01-01' + g * interval '1 second', jsonb_build_object('n', g, 'c', g % 7)
FROM generate_series(1, $UUID_ROWS) g;
CREATE INDEX ON items (account);
VACUUM ANALYZE items;
SQL
uuid_mb=$(pg_psql source uu -At -c "SELECT round(pg_table_size('items') / 1048576.0)")
SU="$(pg_conninfo source uu)"
TU="$(pg_conninfo target uu)"
reset_uu() { reset_db uu; uu_done=; }
uu_copied() { [ -n "${uu_done:-}" ] || { reset_uu; m_uu_copy; uu_done=1; }; }
uu_add() {
    uu_copied
    pg_psql source uu -c "INSERT INTO items (account, title, body, price, created, attrs) SELECT g % 5000, 'new ' || g, md5(g::text), 1, now(), '{}' FROM generate_series(1, $((UUID_ROWS / 100))) g" >/dev/null
}
m_uu_copy() { snap -q --source "$SU" --target "$TU" public.items >/dev/null; }
m_uu_first() { m_uu_copy && uu_done=1; }
m_uu_incremental() { snap -q --source "$SU" --target "$TU" --mode incremental public.items >/dev/null; }
m_uu_sync() { snap -q --source "$SU" --target "$TU" --mode sync --json public.items > "$PG_WORK/sync.json"; }
# The changes a sync run finds: 10,000 inserts, 5,000 updates of the most recent rows, 2,000
# deletes anywhere; from a target equal to the source.
uu_changes() {
    uu_copied
    # Two syncs first, so that the one measured starts where a daily sync does: from the marks
    # and the key buckets the sync before it left. (The incremental runs of the round keep
    # local edits, after which a sync hashes every row and leaves the marks; the next one reads
    # what was written since and keeps the buckets.)
    m_uu_sync
    m_uu_sync
    pg_psql source uu >/dev/null <<'SQL'
INSERT INTO items (account, title, body, price, created, attrs)
SELECT g % 5000, 'synced ' || g, md5(g::text), 2, now(), '{"new": true}' FROM generate_series(1, 10000) g;
UPDATE items SET price = price + 1, title = title || ' (edited)'
WHERE id IN (SELECT id FROM items WHERE title NOT LIKE 'synced %' ORDER BY created DESC LIMIT 5000);
DELETE FROM items WHERE id IN (SELECT id FROM items TABLESAMPLE SYSTEM (1) LIMIT 2000);
SQL
}
rounds "uuid baseline: snapcopy first copy;m_uu_first;reset_uu" \
    "uuid: snapcopy full reload;m_uu_copy;uu_copied" \
    "uuid: snapcopy incremental, nothing new;m_uu_incremental;uu_copied" \
    "uuid: snapcopy incremental (+1% rows);m_uu_incremental;uu_add" \
    "uuid: snapcopy sync (17,000 rows changed);m_uu_sync;uu_changes"
report "uuid: ${uuid_mb} MB table" "$uuid_mb" "uuid baseline: snapcopy first copy" \
    "uuid: snapcopy full reload" "uuid: snapcopy incremental (+1% rows)" \
    "uuid: snapcopy incremental, nothing new" "uuid: snapcopy sync (17,000 rows changed)" \
    > "$PG_WORK/report.uuid"
goal "uuid: full reload vs first copy" "uuid: snapcopy full reload" "uuid baseline: snapcopy first copy" 1.15
goal "uuid: incremental +1% vs first copy" "uuid: snapcopy incremental (+1% rows)" "uuid baseline: snapcopy first copy" 0.15
goal "uuid: incremental, nothing new vs first copy" "uuid: snapcopy incremental, nothing new" "uuid baseline: snapcopy first copy" 0.05
goal "uuid: sync (17,000 rows changed) vs first copy" "uuid: snapcopy sync (17,000 rows changed)" "uuid baseline: snapcopy first copy" 0.3
if [ -s "$PG_WORK/sync.json" ]; then
    # Rows the last sync wrote (inserted and updated), against the table's rows.
    written=$(grep -oE '"(inserted|updated)": [0-9]+' "$PG_WORK/sync.json" | awk '{s += $2} END {print s + 0}')
    total=$(pg_psql source uu -At -c "SELECT count(*) FROM items")
    share=$(echo "scale=4; $written / $total" | bc)
    verdict="not met"
    [ "$(echo "$share < 0.10" | bc -l)" = 1 ] && verdict="met"
    goals+=("$(printf "%-58s %5.2f%% of %s rows (goal < 10%%): %s" "uuid: sync, rows written" "$(echo "$share * 100" | bc -l)" "$total" "$verdict")")
    sync_note=$(grep -oE '"ranges(_differed)?": [0-9]+|"link_bytes": [0-9]+|"(inserted|updated|deleted)": [0-9]+' "$PG_WORK/sync.json" | tr '\n' ' ')
    goals+=("$(printf "%-58s %s" "uuid: the last sync's counts" "$sync_note")")
fi
fi

echo
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), $(nproc) cores, $RUNS runs, median seconds"
for w in large many uuid; do
    [ -f "$PG_WORK/report.$w" ] && cat "$PG_WORK/report.$w"
done
if [ "${#goals[@]}" -gt 0 ]; then
    echo
    echo "goals (issues 16 and 17):"
    printf '%s\n' "${goals[@]}"
fi
