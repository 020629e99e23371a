//! Masks: what a column's values become before they leave the source. A rule per column,
//! given as `--mask 'TABLE.COLUMN=RULE'` or in the config, becomes an expression the source
//! evaluates in the query that reads the table, so that raw values never cross the link. Masks
//! are keyed (`SNAPCOPY_MASK_KEY`, or the file `mask.key_file` names) and deterministic: the
//! same value masks the same way in every table and on every run, so foreign keys between
//! masked columns stay joined; a rule on a column joined to others by foreign keys applies to
//! all of them.
//!
//! This module parses rules and resolves them against the catalog ([`resolve`]); [`sql`]
//! writes the expressions; [`audit`] finds columns that look sensitive and have no rule.

pub mod audit;
pub mod sql;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::pattern::TablePattern;
use crate::source::{Catalog, ConstraintKind, Table};
use crate::sql::{Ident, QualifiedName};

/// The setting that holds the key, on the target session and in the source transaction that
/// reads masked rows: never in a statement's text, a view definition or the registry.
pub const KEY_SETTING: &str = "snapcopy.mask_key";

/// The shortest key accepted: a short key would let someone who sees masked values try keys.
pub const MIN_KEY_LEN: usize = 16;

/// The mask key: what makes masks deterministic and not reversible by someone who knows the
/// rules. It reaches the target session and the source transaction as a setting, and is never
/// printed: its `Debug` shows stars.
#[derive(Clone, PartialEq, Eq)]
pub struct MaskKey(String);

impl fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskKey(********)")
    }
}

impl MaskKey {
    /// The key from `SNAPCOPY_MASK_KEY`, else from `key_file` (its trailing line break
    /// dropped); the file must be readable by its owner only. A key must have at least
    /// [`MIN_KEY_LEN`] characters. `None` when neither is set.
    pub fn load(
        env_value: Option<&str>,
        key_file: Option<&std::path::Path>,
    ) -> Result<Option<MaskKey>, String> {
        let text = match (env_value, key_file) {
            (Some(v), _) => v.to_string(),
            (None, Some(path)) => {
                let shown = path.display();
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let meta = std::fs::metadata(path)
                        .map_err(|e| format!("mask.key_file {shown}: could not read it: {e}"))?;
                    if meta.permissions().mode() & 0o077 != 0 {
                        return Err(format!(
                            "mask.key_file {shown} is readable by other users: chmod 600 it"
                        ));
                    }
                }
                std::fs::read_to_string(path)
                    .map_err(|e| format!("mask.key_file {shown}: could not read it: {e}"))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string()
            }
            (None, None) => return Ok(None),
        };
        if text.chars().count() < MIN_KEY_LEN {
            return Err(format!(
                "the mask key has {} characters; use a secret of at least {MIN_KEY_LEN}",
                text.chars().count()
            ));
        }
        Ok(Some(MaskKey(text)))
    }

    /// The key itself, to bind as a parameter; never to print.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What a column's values become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskRule {
    /// NULL.
    Null,
    /// An address that looks like one (`u<32 hex>@example.com`), distinct per value.
    Email,
    /// A first and last name from a list, with a suffix that keeps a unique column unique.
    Name,
    /// The value's digits replaced (its format kept: `+33 6 12 34 56 78`), distinct per value.
    Phone,
    /// The value's keyed SHA-256, in hex.
    Hash,
    /// The value's digits replaced, its length and other characters kept, distinct per value.
    Digits,
    /// One value for every row (NULLs stay NULL).
    Value(String),
    /// An SQL expression over the row, evaluated on the source.
    Sql(String),
    /// Not sensitive: copied as it is (and not reported by `snapcopy audit`).
    Keep,
}

impl MaskRule {
    /// Parses `null`, `email`, `name`, `phone`, `hash`, `digits`, `keep`, `value:<literal>` or
    /// `sql:<expression>`.
    pub fn parse(text: &str) -> Result<MaskRule, String> {
        if let Some(value) = text.strip_prefix("value:") {
            return Ok(MaskRule::Value(value.to_string()));
        }
        if let Some(expression) = text.strip_prefix("sql:") {
            if expression.trim().is_empty() {
                return Err("sql: needs an expression over the row".into());
            }
            return Ok(MaskRule::Sql(expression.to_string()));
        }
        Ok(match text {
            "null" => MaskRule::Null,
            "email" => MaskRule::Email,
            "name" => MaskRule::Name,
            "phone" => MaskRule::Phone,
            "hash" => MaskRule::Hash,
            "digits" => MaskRule::Digits,
            "keep" => MaskRule::Keep,
            other => {
                return Err(format!(
                    "unknown mask rule {other:?}: use null, email, name, phone, hash, digits, \
                     keep, value:<literal> or sql:<expression>"
                ))
            }
        })
    }

    /// Whether the rule changes values (all but `keep`).
    pub fn masks(&self) -> bool {
        *self != MaskRule::Keep
    }
}

impl fmt::Display for MaskRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskRule::Null => f.write_str("null"),
            MaskRule::Email => f.write_str("email"),
            MaskRule::Name => f.write_str("name"),
            MaskRule::Phone => f.write_str("phone"),
            MaskRule::Hash => f.write_str("hash"),
            MaskRule::Digits => f.write_str("digits"),
            MaskRule::Keep => f.write_str("keep"),
            MaskRule::Value(v) => write!(f, "value:{v}"),
            MaskRule::Sql(e) => write!(f, "sql:{e}"),
        }
    }
}

/// A rule the user gave: for the columns named `column` of the tables `table` matches.
#[derive(Debug, Clone)]
pub struct MaskSpec {
    /// The tables.
    pub table: TablePattern,
    /// The column.
    pub column: Ident,
    /// The rule.
    pub rule: MaskRule,
    /// As given, for messages.
    pub text: String,
}

impl MaskSpec {
    /// Parses `TABLE.COLUMN=RULE`: split at the first `=` outside double quotes, then at the
    /// last `.` outside them (TABLE is a pattern as elsewhere; COLUMN a name, quoted to keep
    /// case).
    pub fn parse(text: &str) -> Result<MaskSpec, String> {
        let (target, rule) = split_outside_quotes(text, '=', false)
            .ok_or_else(|| format!("--mask {text:?}: expected TABLE.COLUMN=RULE"))?;
        let (table, column) = split_outside_quotes(target, '.', true)
            .ok_or_else(|| format!("--mask {text:?}: expected TABLE.COLUMN=RULE"))?;
        MaskSpec::new(table, column, rule, text)
    }

    /// A rule for `column` of the tables `table` matches, from the config's table sections.
    pub fn new(table: &str, column: &str, rule: &str, text: &str) -> Result<MaskSpec, String> {
        let table = TablePattern::parse(table).map_err(|e| format!("--mask {text:?}: {e}"))?;
        let column = match column.strip_prefix('"').and_then(|c| c.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => column.to_lowercase(),
        };
        if column.is_empty() {
            return Err(format!("--mask {text:?}: no column"));
        }
        let rule = MaskRule::parse(rule.trim()).map_err(|e| format!("--mask {text:?}: {e}"))?;
        Ok(MaskSpec {
            table,
            column: Ident::new(column),
            rule,
            text: text.to_string(),
        })
    }
}

/// Splits at the first (or, with `last`, the last) `sep` outside double quotes.
pub fn split_outside_quotes(text: &str, sep: char, last: bool) -> Option<(&str, &str)> {
    let mut quoted = false;
    let mut found = None;
    for (at, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                found = Some(at);
                if !last {
                    break;
                }
            }
            _ => {}
        }
    }
    found.map(|at| (&text[..at], &text[at + sep.len_utf8()..]))
}

/// The rules of a run, per table and column, after they were matched to the catalog and
/// carried along foreign keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Masks {
    /// Each table's masked columns (rules other than `keep`).
    pub columns: BTreeMap<QualifiedName, BTreeMap<Ident, MaskRule>>,
    /// Columns marked `keep`.
    pub kept: BTreeSet<(QualifiedName, Ident)>,
}

impl Masks {
    /// Whether any column is masked.
    pub fn any(&self) -> bool {
        !self.columns.is_empty()
    }

    /// The rule for a column, if it is masked.
    pub fn rule(&self, table: &QualifiedName, column: &Ident) -> Option<&MaskRule> {
        self.columns.get(table)?.get(column)
    }
}

/// Matches the rules to the catalog's tables, carries each rule along the foreign keys that
/// join its column to others (both ways, through every level), and checks each against its
/// column: the column exists, the rule fits its type, a NOT NULL column is not nulled, a
/// unique one does not get one value for every row. An error names the column and what to do.
pub fn resolve(catalog: &Catalog, specs: &[MaskSpec]) -> Result<Masks, String> {
    let mut given: BTreeMap<(QualifiedName, Ident), (MaskRule, String)> = BTreeMap::new();
    for spec in specs {
        let tables: Vec<&Table> = catalog
            .tables
            .iter()
            .flat_map(|t| std::iter::once(t).chain(&t.partitions))
            .filter(|t| spec.table.matches(&t.name))
            .collect();
        for table in &tables {
            if !table.columns.iter().any(|c| c.name == spec.column) {
                if spec.table.is_glob() {
                    continue;
                }
                return Err(format!(
                    "--mask {:?}: {} has no column {}; check the name (quote it to keep case)",
                    spec.text,
                    table.name.human(),
                    spec.column.raw()
                ));
            }
            given.insert(
                (table.name.clone(), spec.column.clone()),
                (spec.rule.clone(), spec.text.clone()),
            );
        }
    }
    let joined = foreign_key_classes(catalog);
    let mut masks = Masks::default();
    for class in joined.values() {
        let rules: Vec<&(MaskRule, String)> = class
            .iter()
            .filter_map(|member| given.get(member))
            .collect();
        let Some((rule, _)) = rules.first() else {
            continue;
        };
        if let Some((other, _)) = rules.iter().find(|(r, _)| r != rule) {
            let names: Vec<String> = class
                .iter()
                .map(|(t, c)| format!("{}.{}", t.human(), c.raw()))
                .collect();
            return Err(format!(
                "the columns {} are joined by foreign keys, so they must be masked alike, but \
                 they are given {rule} and {other}: give them one rule",
                names.join(", ")
            ));
        }
        for (table, column) in class {
            if rule.masks() {
                masks
                    .columns
                    .entry(table.clone())
                    .or_default()
                    .insert(column.clone(), (*rule).clone());
            } else {
                masks.kept.insert((table.clone(), column.clone()));
            }
        }
    }
    for (table, columns) in &masks.columns {
        let Some(t) = find(catalog, table) else {
            continue;
        };
        for (column, rule) in columns {
            check(t, column, rule)?;
        }
    }
    Ok(masks)
}

/// A table of the catalog, partitions included.
fn find<'a>(catalog: &'a Catalog, name: &QualifiedName) -> Option<&'a Table> {
    catalog
        .tables
        .iter()
        .flat_map(|t| std::iter::once(t).chain(&t.partitions))
        .find(|t| &t.name == name)
}

/// Every column of the catalog's tables, grouped with the columns foreign keys join it to
/// (through any number of keys), keyed by one member. A column no key joins is alone.
fn foreign_key_classes(
    catalog: &Catalog,
) -> BTreeMap<(QualifiedName, Ident), BTreeSet<(QualifiedName, Ident)>> {
    type Node = (QualifiedName, Ident);
    let mut parent: BTreeMap<Node, Node> = BTreeMap::new();
    fn root(parent: &mut BTreeMap<Node, Node>, n: &Node) -> Node {
        let mut at = n.clone();
        while let Some(p) = parent.get(&at) {
            if *p == at {
                break;
            }
            at = p.clone();
        }
        at
    }
    let tables: Vec<&Table> = catalog
        .tables
        .iter()
        .flat_map(|t| std::iter::once(t).chain(&t.partitions))
        .collect();
    for t in &tables {
        for c in &t.columns {
            let n = (t.name.clone(), c.name.clone());
            parent.insert(n.clone(), n);
        }
    }
    for t in &tables {
        for con in &t.constraints {
            let ConstraintKind::ForeignKey { references } = &con.kind else {
                continue;
            };
            for (from, to) in con.columns.iter().zip(&con.ref_columns) {
                let a = (t.name.clone(), from.clone());
                let b = (references.clone(), to.clone());
                // A referenced table outside the run has no node: nothing to join.
                if !parent.contains_key(&b) {
                    continue;
                }
                let (ra, rb) = (root(&mut parent, &a), root(&mut parent, &b));
                if ra != rb {
                    parent.insert(ra, rb);
                }
            }
        }
    }
    let nodes: Vec<Node> = parent.keys().cloned().collect();
    let mut classes: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
    for n in nodes {
        let r = root(&mut parent, &n);
        classes.entry(r).or_default().insert(n);
    }
    classes
}

/// Whether a column's values must stay distinct: it is (part of) a primary key or a unique
/// constraint, or a unique index names it.
pub fn is_unique(table: &Table, column: &Ident) -> bool {
    table.constraints.iter().any(|c| {
        matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique)
            && c.columns.contains(column)
    }) || table.indexes.iter().any(|x| {
        x.definition.starts_with("CREATE UNIQUE INDEX ")
            && x.body.as_deref().is_some_and(|b| mentions(b, column.raw()))
    })
}

/// Whether `text` holds `word` as a whole word (or quoted identifier).
fn mentions(text: &str, word: &str) -> bool {
    let quoted = format!("\"{}\"", word.replace('"', "\"\""));
    text.contains(&quoted)
        || text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == word)
}

/// Whether a type is text-like: what email, name, phone and hash produce.
pub fn is_text(type_sql: &str) -> bool {
    let t = type_sql.trim_start_matches("pg_catalog.");
    if t.ends_with("[]") {
        return false;
    }
    t == "text"
        || t.starts_with("character varying")
        || t.starts_with("character(")
        || t == "character"
        || t.starts_with("varchar")
        || t == "name"
        || t.ends_with("citext")
}

/// The declared length of a `character varying(n)` or `character(n)` column.
pub fn text_length(type_sql: &str) -> Option<usize> {
    let (_, rest) = type_sql.split_once('(')?;
    rest.trim_end_matches([')', ']', '[']).parse().ok()
}

/// Checks a rule against its column.
fn check(table: &Table, column: &Ident, rule: &MaskRule) -> Result<(), String> {
    let Some(col) = table.columns.iter().find(|c| &c.name == column) else {
        return Ok(());
    };
    let name = format!("{}.{}", table.name.human(), column.raw());
    let unique = is_unique(table, column);
    match rule {
        MaskRule::Null if col.not_null => Err(format!(
            "mask null on {name}, which is NOT NULL: give it value:<literal> or another rule"
        )),
        MaskRule::Value(_) if unique => Err(format!(
            "mask {rule} gives every row of {name} the same value, but {name} is unique: give \
             it hash, digits or email"
        )),
        MaskRule::Email | MaskRule::Name | MaskRule::Phone | MaskRule::Hash
            if !is_text(&col.type_sql) =>
        {
            Err(format!(
                "mask {rule} makes text, but {name} is {}: give it digits, value:<literal> or \
                 sql:<expression>",
                col.type_sql
            ))
        }
        MaskRule::Email if text_length(&col.type_sql).is_some_and(|n| n < 22) => Err(format!(
            "mask email needs at least 22 characters, but {name} is {}: give it hash or digits",
            col.type_sql
        )),
        _ if col.generated_sql.is_some() => Err(format!(
            "{name} is a generated column, computed on the target from the others: mask those \
             instead"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print_as_given() {
        for text in [
            "null",
            "email",
            "name",
            "phone",
            "hash",
            "digits",
            "keep",
            "value:redacted",
            "value:",
            "sql:upper(name)",
        ] {
            assert_eq!(MaskRule::parse(text).unwrap().to_string(), text);
        }
        assert!(MaskRule::parse("EMAIL")
            .unwrap_err()
            .contains("unknown mask rule"));
        assert!(MaskRule::parse("sql: ").is_err());
    }

    #[test]
    fn a_mask_splits_outside_quotes() {
        let m = MaskSpec::parse(r#""Odd.Schema"."Ta=ble"."E.mail"=sql:a=b"#).unwrap();
        assert_eq!(m.column.raw(), "E.mail");
        assert_eq!(m.rule, MaskRule::Sql("a=b".into()));
        assert!(m.table.matches(&QualifiedName::new("Odd.Schema", "Ta=ble")));
        let m = MaskSpec::parse("public.users.Email=email").unwrap();
        assert_eq!(m.column.raw(), "email");
        assert!(MaskSpec::parse("users=email").is_err());
        assert!(MaskSpec::parse("users.email").is_err());
    }

    #[test]
    fn text_types_and_lengths() {
        assert!(is_text("text"));
        assert!(is_text("character varying(40)"));
        assert!(is_text("public.citext"));
        assert!(!is_text("integer"));
        assert!(!is_text("text[]"));
        assert_eq!(text_length("character varying(40)"), Some(40));
        assert_eq!(text_length("text"), None);
    }
}
