//! What a user would compare between the source and the target: a table's definition and
//! an order-independent checksum of its rows.

use super::{Pair, PgServer};

/// Asserts that each table has the same definition and rows on the target as on the source.
pub fn assert_copied_exactly<T: AsRef<str>>(pair: &Pair, tables: &[T]) {
    assert!(!tables.is_empty());
    for table in tables {
        let table = table.as_ref();
        assert_eq!(
            definition(&pair.target, "dev", table),
            definition(&pair.source, "app", table),
            "definition of {table}"
        );
        assert_eq!(
            checksum(&pair.target, "dev", table),
            checksum(&pair.source, "app", table),
            "rows of {table}"
        );
    }
}

/// Row count and an order-independent checksum of a table's rows, with the output settings
/// pinned so that servers configured differently print the same values the same way.
pub fn checksum(server: &PgServer, db: &str, table: &str) -> String {
    // An inheritance parent's own rows only; a partitioned table's rows are its partitions'.
    let kind = server.psql(
        db,
        &format!("SELECT relkind FROM pg_class WHERE oid = '{table}'::regclass"),
    );
    let only = if kind == "p" { "" } else { "ONLY " };
    server.psql(
        db,
        &format!(
            "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; \
             SET extra_float_digits = 1; \
             SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) \
             FROM {only}{table} t"
        ),
    )
}

/// Everything a user would compare about a table's definition: columns with types, defaults,
/// identity, generation, collation and comments; constraints; indexes; the table comment.
pub fn definition(server: &PgServer, db: &str, table: &str) -> String {
    let t = format!("'{table}'::regclass");
    // Positions among live columns (dropped ones leave gaps in attnum on the source), and
    // constants in defaults printed the same way whatever the server's DateStyle.
    let columns = server.psql(
        db,
        &format!(
            "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; \
             SELECT row_number() OVER (ORDER BY a.attnum) || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
             || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-') \
             || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text \
             || ' collation=' || coalesce(co.collname, '-') \
             || ' comment=' || coalesce(col_description(a.attrelid, a.attnum), '-') \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             WHERE a.attrelid = {t} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ),
    );
    let constraints = server.psql(
        db,
        &format!(
            "SELECT conname || ' ' || contype::text || ' ' || pg_get_constraintdef(oid) || ' valid=' || convalidated \
             || ' deferrable=' || condeferrable FROM pg_constraint WHERE conrelid = {t} ORDER BY conname"
        ),
    );
    let indexes = server.psql(
        db,
        &format!(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = {t} \
             ORDER BY indexrelid::regclass::text"
        ),
    );
    let comment = server.psql(
        db,
        &format!("SELECT coalesce(obj_description({t}, 'pg_class'), '-')"),
    );
    format!(
        "columns:\n{columns}\nconstraints:\n{constraints}\nindexes:\n{indexes}\ncomment: {comment}"
    )
}

/// One table's row of a `--json` summary (the command's stdout), as the user would read it.
pub fn summary_row(stdout: &[u8], table: &str) -> serde_json::Value {
    let summary: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    summary["tables"]
        .as_array()
        .and_then(|rows| rows.iter().find(|t| t["name"] == table))
        .cloned()
        .unwrap_or_else(|| panic!("no row for {table} in {summary}"))
}
