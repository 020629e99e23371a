//! The expressions masks become, evaluated on the source. Each reads the key from the source
//! transaction's setting [`KEY_SETTING`](super::KEY_SETTING) (a query run without it fails,
//! instead of returning raw values) and hashes with SHA-256, which every PostgreSQL since 11
//! has built in: nothing is installed on the source. NULLs stay NULL.

use super::{is_unique, text_length, MaskRule, KEY_SETTING};
use crate::source::{Column, Table};
use crate::sql::literal;

/// First names the `name` rule picks from.
const FIRST: &[&str] = &[
    "Ada", "Alan", "Alice", "Amara", "Ana", "Arjun", "Ben", "Carmen", "Chen", "Clara", "David",
    "Elena", "Emma", "Farid", "Grace", "Hana", "Ines", "Ivan", "Jonas", "Kofi", "Lea", "Leo",
    "Lina", "Luis", "Maya", "Mei", "Nadia", "Noah", "Omar", "Paul", "Priya", "Rosa", "Sam", "Sara",
    "Tom", "Yuki",
];

/// Last names the `name` rule picks from.
const LAST: &[&str] = &[
    "Adams", "Alvarez", "Berg", "Brown", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia",
    "Haddad", "Ito", "Jensen", "Kim", "Kowalski", "Lopez", "Martin", "Meyer", "Mori", "Nguyen",
    "Novak", "Okafor", "Olsen", "Park", "Petrov", "Rossi", "Santos", "Silva", "Smith", "Tanaka",
    "Weber", "Wong", "Yilmaz",
];

/// The key, read on the source.
fn key() -> String {
    format!("pg_catalog.current_setting({})", literal(KEY_SETTING))
}

/// The keyed SHA-256 of the text `value`, 64 hex digits.
fn hash(value: &str) -> String {
    format!(
        "pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to({} || pg_catalog.chr(31) || \
         {value}, 'UTF8')), 'hex')",
        key()
    )
}

/// A non-negative number from `digits` hex digits of `hex` starting at `from` (1-based).
fn number(hex: &str, from: usize, digits: usize) -> String {
    format!(
        "('x' || pg_catalog.lpad(pg_catalog.substr({hex}, {from}, {digits}), 16, '0'))::bit(64)::bigint"
    )
}

/// An SQL array of text literals.
fn array(words: &[&str]) -> String {
    let items: Vec<String> = words.iter().map(|w| literal(w)).collect();
    format!("ARRAY[{}]", items.join(", "))
}

/// The digits of the text `value` replaced through a keyed permutation of the strings of its
/// length (a four-round Feistel network over its two halves), each other character kept where
/// it is: distinct values stay distinct, and the length and format stay.
fn permuted_digits(value: &str) -> String {
    // Round `i` adds a keyed hash of one half to the other, modulo the other's size: each
    // round can be undone, so the whole is a permutation.
    let round = |i: u32, of: &str| number(&hash(&format!("'{i}:' || {of}::text")), 1, 15);
    let size = |n: &str| format!("('1' || pg_catalog.repeat('0', {n}))::numeric");
    let feistel = format!(
        "(SELECT pg_catalog.lpad(l2::text, a, '0') || pg_catalog.lpad(r2::text, b, '0') \
         FROM (SELECT coalesce(nullif(pg_catalog.left(d, a), '')::numeric, 0) AS l0, \
                      coalesce(nullif(pg_catalog.right(d, b), '')::numeric, 0) AS r0) s0, \
         LATERAL (SELECT pg_catalog.mod(l0 + {f0}, {sa}) AS l1) s1, \
         LATERAL (SELECT pg_catalog.mod(r0 + {f1}, {sb}) AS r1) s2, \
         LATERAL (SELECT pg_catalog.mod(l1 + {f2}, {sa}) AS l2) s3, \
         LATERAL (SELECT pg_catalog.mod(r1 + {f3}, {sb}) AS r2) s4)",
        f0 = round(0, "r0"),
        f1 = round(1, "l1"),
        f2 = round(2, "r1"),
        f3 = round(3, "l2"),
        sa = size("a"),
        sb = size("b"),
    );
    // All digits (the common case): the permuted string; else each digit put back where the
    // value has one.
    format!(
        "(SELECT CASE WHEN d = '' THEN v WHEN d = v THEN m ELSE \
           (SELECT pg_catalog.string_agg(CASE WHEN pg_catalog.substr(v, p, 1) ~ '[0-9]' \
              THEN pg_catalog.substr(m, pg_catalog.length(pg_catalog.regexp_replace(pg_catalog.left(v, p), '[^0-9]', '', 'g')), 1) \
              ELSE pg_catalog.substr(v, p, 1) END, '' ORDER BY p) \
            FROM pg_catalog.generate_series(1, pg_catalog.length(v)) p) END \
         FROM (SELECT v, d, a, b, {feistel} AS m \
               FROM (SELECT v, d, pg_catalog.length(d) / 2 AS a, pg_catalog.length(d) - pg_catalog.length(d) / 2 AS b \
                     FROM (SELECT {value} AS v, pg_catalog.regexp_replace({value}, '[^0-9]', '', 'g') AS d) s0) s1) s2)"
    )
}

/// The masked value of `column` of `table` by `rule`, as an expression of the column's type
/// over the source's row; `None` for `keep`.
pub fn expression(table: &Table, column: &Column, rule: &MaskRule) -> Option<String> {
    let c = column.name.to_string();
    let ty = &column.type_sql;
    let text = format!("{c}::text");
    let h = hash(&text);
    let fit = |expr: String| match text_length(ty) {
        Some(n) => format!("pg_catalog.left({expr}, {n})"),
        None => expr,
    };
    let unique = is_unique(table, &column.name);
    let masked = match rule {
        MaskRule::Keep => return None,
        MaskRule::Null => return Some(format!("NULL::{ty}")),
        MaskRule::Sql(expr) => return Some(format!("({expr})::{ty}")),
        MaskRule::Value(v) => format!("{}::{ty}", literal(v)),
        MaskRule::Hash => fit(h),
        MaskRule::Email => {
            let local = text_length(ty).map_or(32, |n| n.saturating_sub(14).min(32));
            format!("('u' || pg_catalog.left({h}, {local}) || '@example.com')")
        }
        MaskRule::Name => {
            let suffix = if unique {
                format!(" || ' ' || pg_catalog.substr({h}, 17, 16)")
            } else {
                String::new()
            };
            fit(format!(
                "({first})[1 + {a} % {nf}] || ' ' || ({last})[1 + {b} % {nl}]{suffix}",
                first = array(FIRST),
                last = array(LAST),
                a = number(&h, 1, 8),
                b = number(&h, 9, 8),
                nf = FIRST.len(),
                nl = LAST.len(),
            ))
        }
        MaskRule::Phone | MaskRule::Digits => permuted_digits(&text),
    };
    Some(format!(
        "CASE WHEN {c} IS NULL THEN NULL ELSE ({masked})::{ty} END"
    ))
}
