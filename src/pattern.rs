//! Table patterns with psql's rules (`\d` patterns): `schema.table`, a bare name meaning
//! `public.name`, `*` and `?` wildcards, and double quotes that keep a name exactly as written.

use std::fmt;

use crate::sql::QualifiedName;

/// A pattern that cannot be parsed, such as an unterminated quote.
#[derive(Debug, thiserror::Error)]
#[error("invalid table pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pattern: String,
    reason: String,
}

/// One parsed `TABLE` argument or `--exclude` value.
#[derive(Clone, PartialEq, Eq)]
pub struct TablePattern {
    text: String,
    schema: Vec<Piece>,
    name: Vec<Piece>,
}

/// A pattern is a sequence of literal characters and wildcards.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Char(char),
    /// `*`: any run of characters.
    Star,
    /// `?`: exactly one character.
    One,
}

impl fmt::Debug for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for TablePattern {
    /// The pattern as typed, control characters escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::sql::one_line(&self.text))
    }
}

impl TablePattern {
    /// Parses a pattern as psql does: outside double quotes letters fold to lower case and a
    /// dot separates schema from table; inside them every character stands for itself (`""` is
    /// one quote). Without a dot the schema is `public`.
    pub fn parse(text: &str) -> Result<TablePattern, PatternError> {
        let err = |reason: &str| PatternError {
            pattern: text.to_string(),
            reason: reason.to_string(),
        };
        let mut parts: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut chars = text.chars().peekable();
        let mut in_quotes = false;
        while let Some(c) = chars.next() {
            if in_quotes {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        parts.last_mut().unwrap().push(Piece::Char('"'));
                    } else {
                        in_quotes = false;
                    }
                } else {
                    parts.last_mut().unwrap().push(Piece::Char(c));
                }
                continue;
            }
            match c {
                '"' => in_quotes = true,
                '.' => parts.push(Vec::new()),
                '*' => parts.last_mut().unwrap().push(Piece::Star),
                '?' => parts.last_mut().unwrap().push(Piece::One),
                c => parts
                    .last_mut()
                    .unwrap()
                    .extend(c.to_lowercase().map(Piece::Char)),
            }
        }
        if in_quotes {
            return Err(err("unterminated double quote"));
        }
        let (schema, name) =
            match parts.len() {
                1 => (
                    "public".chars().map(Piece::Char).collect(),
                    parts.pop().unwrap(),
                ),
                2 => {
                    let name = parts.pop().unwrap();
                    (parts.pop().unwrap(), name)
                }
                _ => return Err(err(
                    "too many dots; write schema.table, and double-quote names that contain a dot",
                )),
            };
        if name.is_empty() || schema.is_empty() {
            return Err(err("empty schema or table name"));
        }
        Ok(TablePattern {
            text: text.to_string(),
            schema,
            name,
        })
    }

    /// Whether the pattern names this table.
    pub fn matches(&self, table: &QualifiedName) -> bool {
        glob_match(&self.schema, table.schema.raw()) && glob_match(&self.name, table.name.raw())
    }

    /// The one table a pattern without wildcards names.
    pub fn exact_name(&self) -> Option<QualifiedName> {
        let text = |pieces: &[Piece]| {
            pieces
                .iter()
                .map(|p| match p {
                    Piece::Char(c) => Some(*c),
                    _ => None,
                })
                .collect::<Option<String>>()
        };
        Some(QualifiedName::new(text(&self.schema)?, text(&self.name)?))
    }

    /// A pattern that names exactly this table.
    pub fn exact(name: &QualifiedName) -> TablePattern {
        TablePattern {
            text: name.human(),
            schema: name.schema.raw().chars().map(Piece::Char).collect(),
            name: name.name.raw().chars().map(Piece::Char).collect(),
        }
    }

    /// Whether the pattern has wildcards (a pattern without them names exactly one table).
    pub fn is_glob(&self) -> bool {
        self.schema
            .iter()
            .chain(&self.name)
            .any(|p| !matches!(p, Piece::Char(_)))
    }
}

/// Matches a wildcard pattern against a whole name (iterative, with star backtracking).
fn glob_match(pattern: &[Piece], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(Piece::Star) => {
                star = Some((p, n));
                p += 1;
            }
            Some(Piece::One) => {
                p += 1;
                n += 1;
            }
            Some(Piece::Char(c)) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|piece| *piece == Piece::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, schema: &str, name: &str) -> bool {
        TablePattern::parse(pattern)
            .unwrap()
            .matches(&QualifiedName::new(schema, name))
    }

    #[test]
    fn bare_name_means_public() {
        assert!(m("orders", "public", "orders"));
        assert!(!m("orders", "sales", "orders"));
    }

    #[test]
    fn unquoted_names_fold_to_lower_case() {
        assert!(m("Public.Orders", "public", "orders"));
        assert!(!m("Public.Orders", "public", "Orders"));
    }

    #[test]
    fn quotes_keep_case_dots_and_spaces() {
        assert!(m(
            r#""My Schema"."Order.Items""#,
            "My Schema",
            "Order.Items"
        ));
        assert!(m(r#""a""b".c"#, "a\"b", "c"));
        assert!(
            !m(r#""Order*""#, "public", "Orders"),
            "a quoted star is literal"
        );
        assert!(m(r#""Order*""#, "public", "Order*"));
    }

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(m("public.*", "public", "anything"));
        assert!(m("sales.order_*", "sales", "order_items"));
        assert!(!m("sales.order_*", "sales", "orders"));
        assert!(m("*.t?", "x", "t1"));
        assert!(!m("*.t?", "x", "t12"));
        assert!(m("a*b*c", "public", "axxbyyc"));
        assert!(!m("a*b*c", "public", "axxbyy"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        assert!(TablePattern::parse("a.b.c").is_err());
        assert!(TablePattern::parse("\"open").is_err());
        assert!(TablePattern::parse("public.").is_err());
    }

    #[test]
    fn globs_are_told_from_exact_names() {
        assert!(TablePattern::parse("public.*").unwrap().is_glob());
        assert!(!TablePattern::parse("public.orders").unwrap().is_glob());
    }
}
