//! The one door through which names and values enter generated SQL.
//!
//! Every identifier snapcopy writes into a statement is an [`Ident`], which can only be made by
//! quoting; every literal goes through [`literal`]. Both use postgres-protocol's escaping, the
//! same rules as libpq's `PQescapeIdentifier` / `PQescapeLiteral`, so a table named
//! `x"; DROP TABLE y; --` stays a name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A quoted SQL identifier. The raw name is kept for messages and matching.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ident(String);

impl Ident {
    /// Wraps a raw name as PostgreSQL stores it (case and all).
    pub fn new(name: impl Into<String>) -> Ident {
        Ident(name.into())
    }

    /// The raw, unquoted name.
    pub fn raw(&self) -> &str {
        &self.0
    }

    /// The name quoted for SQL.
    pub fn quoted(&self) -> String {
        postgres_protocol::escape::escape_identifier(&self.0)
    }
}

impl fmt::Display for Ident {
    /// Displays the quoted form, which is what SQL text needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted())
    }
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.quoted())
    }
}

/// A schema-qualified object name.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QualifiedName {
    /// The schema.
    pub schema: Ident,
    /// The object's name inside the schema.
    pub name: Ident,
}

impl QualifiedName {
    /// Builds a qualified name from raw schema and object names.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> QualifiedName {
        QualifiedName {
            schema: Ident::new(schema),
            name: Ident::new(name),
        }
    }

    /// `schema.name` as a person reads it: unquoted unless a part needs quotes, like psql's `\d`.
    pub fn human(&self) -> String {
        format!(
            "{}.{}",
            human_ident(self.schema.raw()),
            human_ident(self.name.raw())
        )
    }
}

impl fmt::Display for QualifiedName {
    /// The quoted `"schema"."name"` form for SQL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

impl fmt::Debug for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// `s` with its control characters shown as psql shows them (`\x1B`, `\u0085`), so that text
/// from a server or the command line cannot move the cursor, colour or clear a terminal; line
/// breaks and tabs stay when `keep_lines` (messages that span lines).
fn escape_controls(s: &str, keep_lines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' if keep_lines => out.push(c),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Text for the terminal: control characters escaped, lines kept.
pub fn printable(s: &str) -> String {
    escape_controls(s, true)
}

/// A name or pattern on one line: every control character escaped.
pub fn one_line(s: &str) -> String {
    escape_controls(s, false)
}

/// A name as psql shows it: bare when it is a plain lower-case identifier, quoted otherwise;
/// control characters escaped.
pub fn human_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_string()
    } else {
        one_line(&postgres_protocol::escape::escape_identifier(name))
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `body` dollar-quoted with a tag it does not contain (`$snapcopy$`, else `$snapcopy1$`, ...),
/// so that no name or value inside it can end the quote.
pub fn dollar_quoted(body: &str) -> String {
    let tag = (0..)
        .map(|n| match n {
            0 => "$snapcopy$".to_string(),
            n => format!("$snapcopy{n}$"),
        })
        .find(|tag| !body.contains(tag.as_str()))
        .expect("some tag is not in the body");
    format!("{tag}{body}{tag}")
}

/// A quoted SQL string literal (`E'...'` when it holds a backslash).
pub fn literal(value: &str) -> String {
    postgres_protocol::escape::escape_literal(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(Ident::new("orders").quoted(), "\"orders\"");
        assert_eq!(Ident::new("Order\"Items").quoted(), "\"Order\"\"Items\"");
        assert_eq!(
            Ident::new("x\"; DROP TABLE y; --").quoted(),
            "\"x\"\"; DROP TABLE y; --\""
        );
        assert_eq!(
            QualifiedName::new("My Schema", "t").to_string(),
            "\"My Schema\".\"t\""
        );
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\b"), r" E'a\\b'");
    }

    // Regression: control characters and ANSI escapes in names reached the terminal raw.
    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(
            QualifiedName::new("public", "red\u{1b}[31mtext").human(),
            "public.\"red\\x1B[31mtext\""
        );
        assert_eq!(printable("a\nb\u{7}c\u{85}"), "a\nb\\x07c\\u0085");
        assert_eq!(one_line("a\nb"), "a\\x0Ab");
    }

    #[test]
    fn dollar_quotes_never_end_inside_their_body() {
        assert_eq!(dollar_quoted("SELECT 1"), "$snapcopy$SELECT 1$snapcopy$");
        assert_eq!(
            dollar_quoted("x$snapcopy$y"),
            "$snapcopy1$x$snapcopy$y$snapcopy1$"
        );
    }

    #[test]
    fn human_names_quote_only_when_needed() {
        assert_eq!(
            QualifiedName::new("public", "orders").human(),
            "public.orders"
        );
        assert_eq!(
            QualifiedName::new("Sales", "order items").human(),
            "\"Sales\".\"order items\""
        );
    }
}
