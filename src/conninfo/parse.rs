//! Parsing libpq's two formats, `key=value` conninfo and `postgres://` URLs, into
//! parameters. Errors name the parameter or part and where it starts, never the text.

use std::collections::BTreeMap;

use super::{ConnInfoError, KEYWORDS};

/// Parses `key = value key='quoted value'` as libpq's `conninfo_parse` does.
pub(super) fn parse_keyword_value(s: &str) -> Result<BTreeMap<String, String>, ConnInfoError> {
    let mut params = BTreeMap::new();
    let mut chars = s.chars().enumerate().peekable();
    let skip_space = |chars: &mut std::iter::Peekable<std::iter::Enumerate<std::str::Chars>>| {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
    };
    loop {
        skip_space(&mut chars);
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        skip_space(&mut chars);
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(ConnInfoError(format!(
                "missing \"=\" after {} (write key=value pairs, or a postgresql:// URL)",
                word(&key, start)
            )));
        }
        skip_space(&mut chars);
        let mut value = String::new();
        if chars.peek().map(|(_, c)| *c) == Some('\'') {
            chars.next();
            loop {
                match chars.next().map(|(_, c)| c) {
                    None => {
                        return Err(ConnInfoError(format!(
                            "the quoted value of {} has no closing quote",
                            word(&key, start)
                        )))
                    }
                    Some('\\') => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if !KEYWORDS.iter().any(|(k, _)| *k == key) {
            return Err(unknown_parameter(&key, start));
        }
        params.insert(key, value);
    }
    Ok(params)
}

/// How an error names a word of a connection string: by name when it is one of libpq's
/// keywords, else only by its place (it may be a piece of a password with a space in it).
fn word(key: &str, at: usize) -> String {
    if KEYWORDS.iter().any(|(k, _)| *k == key) {
        format!("\"{key}\"")
    } else {
        format!("the word at character {}", at + 1)
    }
}

/// An unknown parameter, by its place, with the keyword it most resembles (never its own
/// text, which may be a piece of a password).
fn unknown_parameter(key: &str, at: usize) -> ConnInfoError {
    let nearest = KEYWORDS
        .iter()
        .map(|(k, _)| (edit_distance(key, k), *k))
        .min()
        .filter(|(d, _)| *d <= 2);
    ConnInfoError(format!(
        "unknown parameter at character {}{}; libpq's parameters are listed at \
         https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS",
        at + 1,
        nearest
            .map(|(_, k)| format!(" (did you mean \"{k}\"?)"))
            .unwrap_or_default()
    ))
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Parses `postgresql://[user[:password]@][host][:port][,...][/dbname][?key=value&...]`.
/// Errors name the part and the character where it starts, never its text: in a URL whose
/// password holds an unencoded `/`, `?` or `@`, pieces of the password land in the other parts.
pub(super) fn parse_url(s: &str) -> Result<BTreeMap<String, String>, ConnInfoError> {
    let rest = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
        .expect("caller checked the scheme");
    // Character position of a slice of `s`, for messages.
    let at = |part: &str| {
        s[..part.as_ptr() as usize - s.as_ptr() as usize]
            .chars()
            .count()
            + 1
    };
    let mut params = BTreeMap::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hostspec)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.insert("user".into(), percent_decode(user, "user name", at(user))?);
            }
            if let Some(p) = password {
                params.insert("password".into(), percent_decode(p, "password", at(p))?);
            }
            hostspec
        }
        None => authority,
    };
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for part in hostspec.split(',').filter(|p| !p.is_empty()) {
        let (host, port) = if let Some(inner) = part.strip_prefix('[') {
            let (h, after) = inner.split_once(']').ok_or_else(|| {
                ConnInfoError(format!(
                    "the IPv6 host address at character {} has no closing \"]\"",
                    at(part)
                ))
            })?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match part.split_once(':') {
                Some((h, p)) => (percent_decode(h, "host", at(h))?, Some(p)),
                None => (percent_decode(part, "host", at(part))?, None),
            }
        };
        if let Some(p) = port {
            if p.parse::<u16>().is_err() {
                return Err(ConnInfoError(format!(
                    "the port at character {} is not a port number (a password with / ? @ or : \
                     in it must be percent-encoded: %2F %3F %40 %3A)",
                    at(p)
                )));
            }
        }
        hosts.push(host);
        ports.push(port.unwrap_or_default().to_string());
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        params.insert("host".into(), hosts.join(","));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        params.insert("port".into(), ports.join(","));
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        params.insert(
            "dbname".into(),
            percent_decode(db, "database name", at(db))?,
        );
    }
    if let Some(query) = query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ConnInfoError(format!(
                    "the URL parameter at character {} has no \"=\" (a password with / ? @ or : \
                     in it must be percent-encoded: %2F %3F %40 %3A)",
                    at(pair)
                ))
            })?;
            let key = match percent_decode(k, "parameter name", at(k))?.as_str() {
                "ssl" if v == "true" => {
                    params.insert("sslmode".into(), "require".into());
                    continue;
                }
                other => other.to_string(),
            };
            if !KEYWORDS.iter().any(|(known, _)| *known == key) {
                return Err(unknown_parameter(&key, at(k) - 1));
            }
            let value = percent_decode(v, &format!("value of \"{key}\""), at(v))?;
            params.insert(key, value);
        }
    }
    Ok(params)
}

/// Decodes `%XX` escapes in `s`, the part of a URL that `what` names, starting at character
/// `at`; an error says where, never what.
fn percent_decode(s: &str, what: &str, at: usize) -> Result<String, ConnInfoError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ConnInfoError(format!(
                        "the {what} at character {at} holds a % that is not followed by two hex \
                         digits (write a % itself as %25)"
                    ))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        ConnInfoError(format!(
            "the {what} at character {at} is not UTF-8 once decoded"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn parses_keyword_value_with_quotes_and_escapes() {
        let c = ConnInfo::parse(r"host=/tmp port = 5433 password='it\'s a \\ secret' dbname=app")
            .unwrap();
        assert_eq!(c.get("host"), Some("/tmp"));
        assert_eq!(c.get("port"), Some("5433"));
        assert_eq!(c.get("password"), Some(r"it's a \ secret"));
        assert_eq!(c.get("dbname"), Some("app"));
    }

    #[test]
    fn parses_url_with_percent_encoding_and_query() {
        let c = ConnInfo::parse(
            "postgresql://bob:p%40ss@db.example.com:6543/my%20db?sslmode=require&application_name=x",
        )
        .unwrap();
        assert_eq!(c.get("user"), Some("bob"));
        assert_eq!(c.get("password"), Some("p@ss"));
        assert_eq!(c.get("host"), Some("db.example.com"));
        assert_eq!(c.get("port"), Some("6543"));
        assert_eq!(c.get("dbname"), Some("my db"));
        assert_eq!(c.get("sslmode"), Some("require"));
    }

    #[test]
    fn parses_url_with_socket_dir_and_ipv6() {
        let c = ConnInfo::parse("postgres://%2Fvar%2Frun%2Fpostgresql/app").unwrap();
        assert_eq!(c.get("host"), Some("/var/run/postgresql"));
        let c = ConnInfo::parse("postgresql://[::1]:5433/app?host=/tmp").unwrap();
        assert_eq!(c.get("host"), Some("/tmp"));
        assert_eq!(c.get("port"), Some("5433"));
        let c = ConnInfo::parse("postgresql:///app").unwrap();
        assert_eq!(c.get("host"), None);
        assert_eq!(c.get("dbname"), Some("app"));
    }

    #[test]
    fn rejects_malformed_strings_without_echoing_the_password() {
        let err = ConnInfo::parse("host=x password").unwrap_err().to_string();
        assert!(err.contains("missing \"=\" after \"password\""), "{err}");
        let err = ConnInfo::parse("hots=x").unwrap_err().to_string();
        assert!(
            err.contains("unknown parameter at character 1 (did you mean \"host\"?)"),
            "{err}"
        );
        let secret = "Qx7/zK?w9@Jm%zz";
        for (text, says) in [
            (
                format!("password='{secret}"),
                "the quoted value of \"password\" has no closing quote",
            ),
            (
                format!("host=h password={secret} x"),
                "missing \"=\" after the word at character",
            ),
            (
                "host=h password=Qx7 zK?w9@Jm%zz".to_string(),
                "missing \"=\" after the word at character 21",
            ),
            (
                format!("postgresql://u:{secret}@h/db"),
                "the port at character 16 is not a port number",
            ),
            (
                "postgresql://u:Qx7%zzK@h/db".to_string(),
                "the password at character 16 holds a %",
            ),
            (
                "postgresql://u:Qx7?zK@h/db".to_string(),
                "the port at character 16 is not a port number",
            ),
            (
                "postgresql://u@h/db?sslmode=disable&Qx7zK".to_string(),
                "the URL parameter at character 37 has no \"=\"",
            ),
        ] {
            let err = ConnInfo::parse(&text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
            for piece in ["Qx7", "zK", "w9", "Jm", "zz"] {
                assert!(!err.contains(piece), "{text}: {err} shows {piece}");
            }
        }
    }
}
